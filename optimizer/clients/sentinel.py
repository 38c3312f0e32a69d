"""Sentinel: report anomalies the optimizer sees and read Sentinel's insights."""

from __future__ import annotations

from datetime import datetime

from optimizer.clients._http import ServiceClient
from optimizer.clients.observatory import _iso
from optimizer.schemas.sentinel import AnomalyInsights, AnomalyReport, AnomalyReported


class SentinelClient(ServiceClient):
    service = "sentinel"

    def report_anomaly(self, report: AnomalyReport) -> AnomalyReported:
        return self.call("POST", "anomalies", AnomalyReported, json=report.to_wire())

    def insights(
        self,
        start: datetime,
        end: datetime,
        *,
        category: str | None = None,
        severity_min: float | None = None,
    ) -> AnomalyInsights:
        params: dict[str, str] = {"start_time": _iso(start), "end_time": _iso(end)}
        if category:
            params["category"] = category
        if severity_min is not None:
            params["severity_min"] = str(severity_min)
        return self.call("GET", "anomalies/insights", AnomalyInsights, params=params)
