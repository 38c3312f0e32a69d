"""Observatory: traffic figures, cost summaries and the per-request log search the
extractor pages through.

Two APIs: the platform specification's (`GET metrics/query`, one metric at a time, with
GenAI attribute filters) and the upstream service's analytics API (`POST metrics/query`
with several metrics, fixed dimensions, and `GET costs/summary`). Log search is the
specification's in both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from optimizer.clients._http import Style, StyledClient, query_time
from optimizer.schemas.observatory import (
    Aggregation,
    AnalyticsFilter,
    AnalyticsMetric,
    AnalyticsQuery,
    AnalyticsResult,
    CostsSummary,
    LogSearchPage,
    LogSearchRequest,
    MetricQueryResult,
    Trace,
    TrafficStats,
)

_INTERVALS = {"one_minute": timedelta(minutes=1), "five_minutes": timedelta(minutes=5),
              "one_hour": timedelta(hours=1), "one_day": timedelta(days=1)}


def _weighted(rows: Sequence[Mapping[str, Any]], key: str, weight: str) -> float | None:
    pairs = [(float(r[key]), float(r.get(weight) or 0)) for r in rows if r.get(key) is not None]
    total = sum(w for _, w in pairs)
    if not pairs:
        return None
    return sum(v * w for v, w in pairs) / total if total else sum(v for v, _ in pairs) / len(pairs)


class ObservatoryClient(StyledClient):
    service = "observatory"

    def detect_style(self) -> Style:
        """Upstream if the analytics API answers a one-metric query, else the spec's."""
        end = datetime.now(UTC)
        query = AnalyticsQuery(metrics=[AnalyticsMetric(metric="request_count", aggregation="sum")],
                               start_time=end - timedelta(minutes=5), end_time=end, limit=1)
        return self.probe("POST", "metrics/query", answered="upstream", missing="spec", json=query.to_wire())

    # ---- the specification's API ---------------------------------------------------

    def query_metrics(
        self,
        metric_name: str,
        start: datetime,
        end: datetime,
        aggregation: Aggregation = "sum",
        *,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
        interval: str | None = None,
    ) -> MetricQueryResult:
        params: list[tuple[str, str]] = [
            ("metric_name", metric_name),
            ("start_time", query_time(start)),
            ("end_time", query_time(end)),
            ("aggregation", aggregation),
        ]
        params += [("group_by", name) for name in group_by]
        if filters:
            params.append(("filters", json.dumps(dict(filters))))
        if interval:
            params.append(("interval", interval))
        return self.call("GET", "metrics/query", MetricQueryResult, params=params)

    def search_logs(
        self, start: datetime, end: datetime, *, query: str = "", page_size: int = 1000
    ) -> Iterator[LogSearchPage]:
        """Every log record in [start, end), oldest first, one page at a time."""
        request = LogSearchRequest(
            query=query, start_time=start, end_time=end, limit=page_size
        )
        yield from self.paginate(
            "POST", "logs/search", LogSearchPage, request.model_dump(mode="json", exclude_none=True)
        )

    def get_trace(self, trace_id: str) -> Trace:
        return self.call("GET", f"traces/{trace_id}", Trace)

    # ---- the upstream analytics API -------------------------------------------------

    def analytics(self, query: AnalyticsQuery) -> AnalyticsResult:
        return self.call("POST", "metrics/query", AnalyticsResult, json=query.to_wire())

    def costs_summary(self, start: datetime, end: datetime) -> CostsSummary:
        params = {"start_time": query_time(start), "end_time": query_time(end), "include_trends": "false"}
        return self.call("GET", "costs/summary", CostsSummary, params=params)

    # ---- what the optimizer asks, in either API --------------------------------------

    def traffic(
        self, start: datetime, end: datetime, *, application: str, models: Sequence[str] = (),
        variant: tuple[str, str] | None = None,
    ) -> TrafficStats:
        """Served requests, error rate, p95 latency and quality of an application's traffic,
        or of one variant of an experiment on it (`variant`: experiment id, variant id).

        The analytics API has no application dimension and no quality metric: there the
        figures are those of the models the application's traffic goes to, without quality.
        """
        if not self.style.upstream:
            filters = {"llm.application_name": application, "llm.shadow": "false"}
            if variant is not None:
                filters |= {"llm.experiment_id": variant[0], "llm.variant_id": variant[1]}

            def value(metric: str, aggregation: Aggregation) -> float | None:
                points = self.query_metrics(metric, start, end, aggregation, filters=filters).data_points
                return points[0].value if points else None

            return TrafficStats(
                requests=int(value("llm.request.count", "sum") or 0),
                error_rate=value("llm.request.errors", "avg"),
                p95_latency_ms=value("gen_ai.client.operation.duration", "p95"),
                quality=value("llm.quality_score", "avg"),
                evaluated=int(value("llm.quality_score", "count") or 0),
            )
        query = AnalyticsQuery(
            metrics=[AnalyticsMetric(metric="request_count", aggregation="sum", alias="requests"),
                     AnalyticsMetric(metric="error_rate", aggregation="avg", alias="error_rate"),
                     AnalyticsMetric(metric="duration", aggregation="p95", alias="p95")],
            interval="one_day", start_time=start, end_time=end,
            filters=[AnalyticsFilter(dimension="model", operator="in", value=list(models))] if models else [],
        )
        rows = self.analytics(query).data
        # A window across a day boundary comes back as two rows: requests add up, rates and
        # percentiles are averaged weighted by requests (for p95, an approximation).
        return TrafficStats(
            requests=int(sum(float(r.get("requests") or 0) for r in rows)),
            error_rate=_weighted(rows, "error_rate", "requests"),
            p95_latency_ms=_weighted(rows, "p95", "requests"),
        )

    def data_until(self, start: datetime, end: datetime) -> datetime:
        """How far into [start, end) the Observatory's figures reach (it may lag the clock)."""
        if not self.style.upstream:
            return self.query_metrics("llm.request.count", start, end, "sum").time_range.end
        query = AnalyticsQuery(metrics=[AnalyticsMetric(metric="request_count", aggregation="sum")],
                               interval="one_minute", start_time=start, end_time=end, limit=10000)
        result = self.analytics(query)
        reported = result.metadata.get("end_time")
        if reported:
            return min(datetime.fromisoformat(str(reported).replace("Z", "+00:00")), end)
        stamps = [datetime.fromisoformat(str(r["timestamp"]).replace("Z", "+00:00")) for r in result.data
                  if r.get("timestamp")]
        return min(max(stamps) + _INTERVALS["one_minute"], end) if stamps else start

    def cost_summary_upstream(self, first_day: date, last_day: date) -> CostsSummary:
        """Spend over whole UTC days, both inclusive, from the analytics API."""
        start = datetime.combine(first_day, time(), UTC)
        end = datetime.combine(last_day + timedelta(days=1), time(), UTC)
        return self.costs_summary(start, end)
