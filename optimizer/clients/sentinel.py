"""Sentinel: report what the optimizer did about an anomaly, and read Sentinel's insights.

The upstream Sentinel takes no reports (it sends its anomalies out by webhook, which the
receiver accepts); in that style a report is not sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from optimizer.clients._http import Style, StyledClient, query_time
from optimizer.schemas.sentinel import AnomalyInsights, AnomalyReport, AnomalyReported


class SentinelClient(StyledClient):
    service = "sentinel"

    def detect_style(self) -> Style:
        """The spec's if it answers for its insights, else upstream's."""
        end = datetime.now(UTC)
        return self.probe("GET", "anomalies/insights", answered="spec", missing="upstream",
                          params={"start_time": query_time(end - timedelta(hours=1)), "end_time": query_time(end)})

    def report_anomaly(self, report: AnomalyReport) -> AnomalyReported | None:
        """Sentinel's acknowledgement, or None where Sentinel takes no reports."""
        if self.style.upstream:
            return None
        return self.call("POST", "anomalies", AnomalyReported, json=report.to_wire())

    def insights(
        self,
        start: datetime,
        end: datetime,
        *,
        category: str | None = None,
        severity_min: float | None = None,
    ) -> AnomalyInsights:
        params: dict[str, str] = {"start_time": query_time(start), "end_time": query_time(end)}
        if category:
            params["category"] = category
        if severity_min is not None:
            params["severity_min"] = str(severity_min)
        return self.call("GET", "anomalies/insights", AnomalyInsights, params=params)
