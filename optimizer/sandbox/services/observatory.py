"""The Observatory's query API: metrics, per-request log search, traces."""

from __future__ import annotations

import base64
import json
import re
import threading
import weakref
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Query, Request, Response

from optimizer.sandbox.services._common import (
    NS_PER_S,
    as_utc,
    iso,
    problem,
    reply,
    split_list,
    state_of,
)
from optimizer.sandbox.services.telemetry import RenderedLogs, rows_of, span
from optimizer.sandbox.state import SandboxState
from optimizer.schemas.observatory import LogSearchRequest
from optimizer.schemas.records import REQUEST_COLUMN_NAMES
from optimizer.schemas.telemetry import COLUMN_OF_ATTRIBUTE

router = APIRouter(prefix="/observatory/api/v1", tags=["observatory"])

# metric name -> how to compute one value per request
METRICS: dict[str, str] = {
    "gen_ai.client.operation.duration": "latency_ms",
    "gen_ai.client.token.usage": "tokens",
    "gen_ai.usage.prompt_tokens": "prompt_tokens",
    "gen_ai.usage.input_tokens": "prompt_tokens",
    "gen_ai.usage.completion_tokens": "completion_tokens",
    "gen_ai.usage.output_tokens": "completion_tokens",
    "llm.request.cost_usd": "cost_usd",
    "llm.request.count": "one",
    "llm.request.errors": "is_error",
    "llm.quality_score": "quality_score",
}
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "p50", "p95", "p99"}
_INTERVAL = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TERM = re.compile(r"^([\w.]+):(>=|<=|>|<)?(.+)$")


def column_for(name: str) -> str | None:
    """A column of the request record from an attribute name or the column name itself."""
    if name in REQUEST_COLUMN_NAMES:
        return name
    return COLUMN_OF_ATTRIBUTE.get(name)


def _mask(frame: pd.DataFrame, column: str, operator: str, value: Any) -> np.ndarray:
    series = frame[column]
    if operator:
        number = float(value)
        values = pd.to_numeric(series, errors="coerce").to_numpy()
        return {
            ">": values > number, "<": values < number, ">=": values >= number, "<=": values <= number
        }[operator]
    wanted = value if isinstance(value, list) else [value]
    if series.dtype == bool:
        return series.isin([str(v).lower() in {"true", "1"} for v in wanted]).to_numpy()
    return series.astype(str).isin([str(v) for v in wanted]).to_numpy()


def _parse_query(text: str) -> list[tuple[str, str, str]]:
    terms = []
    for part in re.split(r"\s+AND\s+", text.strip()) if text.strip() else []:
        match = _TERM.match(part.strip())
        if not match:
            raise ValueError(f"cannot read query term {part!r}; use field:value or field:>number")
        field, operator, value = match.groups()
        column = column_for(field)
        if column is None:
            raise ValueError(f"unknown field {field!r}")
        terms.append((column, operator or "", value.strip('"')))
    return terms


def _encode_cursor(ts_ns: int, request_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts_ns, request_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, str]:
    ts_ns, request_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    return int(ts_ns), str(request_id)


@router.post("/logs/search")
def search_logs(body: LogSearchRequest, request: Request) -> Response:
    state = state_of(request)
    start, end = as_utc(body.start_time), as_utc(body.end_time)
    if end <= start:
        return problem(400, "end_time must be after start_time")
    if end - start > timedelta(days=31):
        return problem(400, "a search covers at most 31 days; page through shorter windows")
    try:
        terms = _parse_query(body.query)
    except ValueError as exc:
        return problem(400, str(exc))
    frame = state.visible_requests(start, end)
    for column, operator, value in terms:
        frame = frame[_mask(frame, column, operator, value)]
    descending = body.order_by == "timestamp DESC"
    if descending:
        frame = frame.iloc[::-1]
    total = len(frame)
    # Rows after the cursor by position: taking only the page's rows, not a copy of every
    # later row, and comparing ids only where the timestamp ties (most of a page's cost).
    following = np.arange(len(frame))
    if body.cursor:
        try:
            after_ts, after_id = _decode_cursor(body.cursor)
        except (ValueError, TypeError):
            return problem(400, "cursor is not one this service issued")
        ts = frame["ts_ns"].to_numpy()
        later = ts < after_ts if descending else ts > after_ts
        tied = np.flatnonzero(ts == after_ts)
        ids = frame["request_id"].iloc[tied].to_numpy()
        later[tied] = ids < after_id if descending else ids > after_id
        following = np.flatnonzero(later)
    page = frame.iloc[following[: body.limit]]
    next_cursor = None
    if len(following) > body.limit and len(page):
        next_cursor = _encode_cursor(int(page["ts_ns"].to_numpy()[-1]), str(page["request_id"].to_numpy()[-1]))
    records = _rendered_logs(state).records(state.traffic, page)
    # The body orjson would write for {"logs": [...], "next_cursor": ..., "total": ...}.
    content = (b'{"logs":[' + b",".join(records) + b'],"next_cursor":' + orjson.dumps(next_cursor)
               + b',"total":' + orjson.dumps(total) + b"}")
    return Response(content, media_type="application/json")


_RENDERED: weakref.WeakKeyDictionary[SandboxState, RenderedLogs] = weakref.WeakKeyDictionary()
_RENDERED_LOCK = threading.Lock()


def _rendered_logs(state: SandboxState) -> RenderedLogs:
    with _RENDERED_LOCK:
        found = _RENDERED.get(state)
        if found is None:
            found = _RENDERED[state] = RenderedLogs()
        return found


def _values(frame: pd.DataFrame, measure: str, token_type: str | None) -> pd.Series:
    if measure == "one":
        return pd.Series(1.0, index=frame.index)
    if measure == "is_error":
        return (frame["status"] == "error").astype(float)
    if measure == "tokens":
        if token_type == "input":
            return frame["prompt_tokens"].astype(float)
        if token_type == "output":
            return frame["completion_tokens"].astype(float)
        return (frame["prompt_tokens"] + frame["completion_tokens"]).astype(float)
    return frame[measure].astype(float)


def _aggregate(values: pd.Series, aggregation: str) -> float | None:
    values = values.dropna()
    if values.empty:
        return 0.0 if aggregation in {"sum", "count"} else None
    if aggregation == "count":
        return float(len(values))
    if aggregation.startswith("p"):
        return float(np.quantile(values.to_numpy(), int(aggregation[1:]) / 100))
    if aggregation == "sum":
        return float(values.sum())
    if aggregation == "avg":
        return float(values.mean())
    return float(values.min() if aggregation == "min" else values.max())


@router.get("/metrics/query")
def query_metrics(
    request: Request,
    metric_name: str,
    start_time: datetime,
    end_time: datetime,
    aggregation: str = "sum",
    filters: str | None = None,
    group_by: list[str] = Query(default=[]),  # noqa: B008 - FastAPI's way to read repeated params
    interval: str | None = None,
) -> Response:
    state = state_of(request)
    measure = METRICS.get(metric_name)
    if measure is None:
        return problem(400, f"unknown metric_name {metric_name!r}", known=sorted(METRICS))
    if aggregation not in AGGREGATIONS:
        return problem(400, f"unknown aggregation {aggregation!r}", known=sorted(AGGREGATIONS))
    start, end = as_utc(start_time), as_utc(end_time)
    if end <= start:
        return problem(400, "end_time must be after start_time")
    frame = state.visible_requests(start, end)
    token_type = None
    try:
        wanted = json.loads(filters) if filters else {}
        if not isinstance(wanted, dict):
            raise ValueError("filters must be a JSON object")
    except ValueError as exc:
        return problem(400, f"filters: {exc}")
    for name, value in wanted.items():
        if name == "gen_ai.token.type":
            token_type = str(value)
            continue
        column = column_for(name)
        if column is None:
            return problem(400, f"unknown filter attribute {name!r}")
        frame = frame[_mask(frame, column, "", value)]
    groups = split_list(group_by)
    columns = []
    for name in groups:
        column = column_for(name)
        if column is None:
            return problem(400, f"unknown group_by attribute {name!r}")
        columns.append(column)
    bucket_ns = None
    if interval:
        match = _INTERVAL.match(interval)
        if not match:
            return problem(400, "interval looks like 5m, 1h or 1d")
        bucket_ns = int(match[1]) * _UNIT_S[match[2]] * NS_PER_S
    work = frame[columns].copy() if columns else pd.DataFrame(index=frame.index)
    work["_value"] = _values(frame, measure, token_type)
    start_ns = int(start.timestamp() * NS_PER_S)
    work["_bucket"] = (
        start_ns + (frame["ts_ns"] - start_ns) // bucket_ns * bucket_ns if bucket_ns else start_ns
    )
    points = []
    keys = [*columns, "_bucket"]
    for key, group in work.groupby(keys, sort=True, dropna=False):
        parts: tuple[Any, ...] = key if isinstance(key, tuple) else (key,)
        attributes = {name: str(value) for name, value in zip(groups, parts[:-1], strict=True)}
        points.append(
            {
                "timestamp": iso(datetime.fromtimestamp(int(parts[-1]) / NS_PER_S, tz=start.tzinfo)),
                "value": _aggregate(group["_value"], aggregation),
                "attributes": attributes,
            }
        )
    return reply(
        {
            "metric_name": metric_name,
            "aggregation": aggregation,
            # The range the data covers: the requested end, or the present if that is earlier.
            "time_range": {"start": iso(start), "end": iso(min(end, max(start, state.now())))},
            "data_points": points,
        }
    )


@router.get("/traces/{trace_id}")
def get_trace(trace_id: str, request: Request) -> Response:
    state = state_of(request)
    try:
        day = datetime.fromordinal(int(trace_id[:8], 16)).date()
    except (ValueError, OverflowError):
        return problem(404, f"trace {trace_id} not found")
    if len(trace_id) != 32 or day > state.now().date():
        return problem(404, f"trace {trace_id} not found")
    frame = state.traffic.day(day)
    now_ns = int(state.now().timestamp() * NS_PER_S)
    rows = list(rows_of(frame[(frame["trace_id"].to_numpy() == trace_id) & (frame["visible_ns"].to_numpy() <= now_ns)]))
    if not rows:
        return problem(404, f"trace {trace_id} not found")
    root = next((row for row in rows if not row["shadow"]), rows[0])
    spans = [span(row, None if row is root else root["span_id"]) for row in rows]
    start = min(int(s["startTimeUnixNano"]) for s in spans)
    end = max(int(s["endTimeUnixNano"]) for s in spans)
    return reply(
        {
            "trace_id": trace_id,
            "spans": spans,
            "duration_ms": (end - start) / 1e6,
            "root_span": spans[rows.index(root)],
        }
    )
