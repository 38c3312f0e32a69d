"""Observatory payloads: metric queries, log search pages, traces, threshold events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from optimizer.schemas._base import WireModel

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
