"""Observatory payloads: metric queries, log search pages, traces, threshold events."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from optimizer.schemas._base import WireModel
from optimizer.schemas.governance import (
    CostBreakdown,
    CostSummary,
    DateRange,
    EnvironmentCost,
    ModelCost,
)

Aggregation = Literal["sum", "avg", "min", "max", "count", "p50", "p95", "p99"]


class TimeRange(WireModel):
    start: datetime
    end: datetime


class MetricDataPoint(WireModel):
    timestamp: datetime
    value: float | None
    attributes: dict[str, str] = Field(default_factory=dict)


class MetricQueryResult(WireModel):
    """Answer to `GET /metrics/query`."""

    metric_name: str
    aggregation: str
    time_range: TimeRange
    data_points: list[MetricDataPoint]


class LogSearchRequest(WireModel):
    """Body of `POST /logs/search`.

    `start_time` is inclusive and `end_time` exclusive, so adjacent windows never share a
    record. `cursor` is the opaque `next_cursor` of the previous page.
    """

    query: str = ""
    start_time: datetime
    end_time: datetime
    limit: int = Field(default=1000, ge=1, le=10000)
    order_by: Literal["timestamp ASC", "timestamp DESC"] = "timestamp ASC"
    cursor: str | None = None


class LogSearchPage(WireModel):
    """One page of `POST /logs/search`.

    Records stay as parsed, unchecked: a malformed record (even one that is not an object)
    must reach quarantine with its reason, not fail the whole page at parse time.
    """

    logs: list[Any]
    next_cursor: str | None = None
    total: int | None = None


class Trace(WireModel):
    """Answer to `GET /traces/{trace_id}`."""

    trace_id: str
    spans: list[dict[str, Any]]
    duration_ms: float
    root_span: dict[str, Any]


class ThresholdExceededData(WireModel):
    """`data` of the `io.llm-platform.observatory.threshold-exceeded` event."""

    metric_name: str
    threshold_type: str
    threshold_value_ms: float | None = None
    actual_value_ms: float | None = None
    model: str | None = None
    time_window: str | None = None
    severity: str


class TrafficStats(WireModel):
    """Requests, errors, latency and quality of some traffic over a window: what a canary's
    guardrails read, whichever API the Observatory speaks. `quality` and `evaluated` are
    None where the API has no quality metric."""

    requests: int
    error_rate: float | None = None
    p95_latency_ms: float | None = None
    quality: float | None = None
    evaluated: int | None = None


# ---- the upstream Observatory's analytics API -----------------------------------------

AnalyticsMetricName = Literal[
    "request_count", "duration", "total_cost", "prompt_tokens", "completion_tokens", "error_rate",
    "time_to_first_token",
]
AnalyticsAggregation = Literal["sum", "avg", "min", "max", "count", "p50", "p90", "p95", "p99"]
AnalyticsDimension = Literal["provider", "model", "environment", "status_code", "user_id", "session_id"]


class AnalyticsMetric(WireModel):
    metric: AnalyticsMetricName
    aggregation: AnalyticsAggregation
    alias: str | None = None


class AnalyticsFilter(WireModel):
    dimension: AnalyticsDimension
    operator: Literal["eq", "ne", "in", "not_in"]
    value: str | list[str]


class AnalyticsQuery(WireModel):
    """Body of the analytics API's `POST /api/v1/metrics/query`."""

    metrics: list[AnalyticsMetric] = Field(min_length=1)
    interval: Literal["one_minute", "five_minutes", "one_hour", "one_day"] = "one_hour"
    start_time: datetime
    end_time: datetime
    group_by: list[AnalyticsDimension] = Field(default_factory=list)
    filters: list[AnalyticsFilter] = Field(default_factory=list)
    having: list[dict[str, Any]] = Field(default_factory=list)
    sort_by: str | None = None
    limit: int = Field(default=1000, ge=1, le=10000)


class AnalyticsResult(WireModel):
    """Answer to `POST /api/v1/metrics/query`: one row per interval (and group), each metric
    under its alias or its name."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    data: list[dict[str, Any]]


class CostShare(WireModel):
    name: str
    cost: float
    requests: int = 0
    percentage: float | None = None
    avg_cost_per_request: float | None = None


class CostOverview(WireModel):
    total_cost: float
    total_requests: int = 0
    avg_cost_per_request: float | None = None


class CostsSummary(WireModel):
    """Answer to the analytics API's `GET /api/v1/costs/summary`."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    overview: CostOverview
    by_provider: list[CostShare] = Field(default_factory=list)
    by_model: list[CostShare] = Field(default_factory=list)
    by_environment: list[CostShare] = Field(default_factory=list)
    trends: Any = None

    def as_cost_summary(self, first_day: date, last_day: date) -> CostSummary:
        """In Governance's terms. The analytics API breaks spend down by provider, model and
        environment only: the team and application breakdowns stay empty."""
        return CostSummary(
            period="daily" if first_day == last_day else "custom",
            date_range=DateRange(start=first_day, end=last_day),
            total_cost_usd=self.overview.total_cost,
            breakdown=CostBreakdown(
                by_model=[ModelCost(model=s.name, cost_usd=s.cost, requests=s.requests) for s in self.by_model],
                by_environment=[EnvironmentCost(environment=s.name, cost_usd=s.cost, requests=s.requests)
                                for s in self.by_environment],
            ),
        )
