"""The upstream Observatory's analytics API over the same traffic: `POST metrics/query` with
several metrics at once, fixed dimensions and interval buckets, and `GET costs/summary`.

It sees every LLM call the platform made, shadow calls included, as a gateway-level
analytics service would; it has no application dimension and no quality metric.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request, Response

from optimizer.sandbox.services._common import NS_PER_S, as_utc, iso, problem, reply, state_of
from optimizer.sandbox.services.observatory import _aggregate, _values
from optimizer.schemas.observatory import AnalyticsQuery

router = APIRouter(prefix="/observatory/api/v1", tags=["observatory analytics (upstream)"])

MEASURES = {
    "request_count": "one", "duration": "latency_ms", "total_cost": "cost_usd", "prompt_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens", "error_rate": "is_error", "time_to_first_token": "time_to_first_token",
}
INTERVAL_NS = {"one_minute": 60 * NS_PER_S, "five_minutes": 300 * NS_PER_S, "one_hour": 3600 * NS_PER_S,
               "one_day": 86400 * NS_PER_S}
_COMPARE = {"gt": np.greater, "gte": np.greater_equal, "lt": np.less, "lte": np.less_equal, "eq": np.equal}


def _dimensions(frame: pd.DataFrame) -> pd.DataFrame:
    """The analytics API's dimensions of each request."""
    return pd.DataFrame({
        "provider": frame["provider"], "model": frame["model"], "environment": frame["environment"],
        "status_code": np.where(frame["status"] == "error", "500", "200"),
        "user_id": None, "session_id": None,
    }, index=frame.index)


def _measure(frame: pd.DataFrame, metric: str) -> pd.Series:
    measure = MEASURES[metric]
    if measure == "time_to_first_token":  # not recorded by the platform's telemetry
        return pd.Series(np.nan, index=frame.index)
    return _values(frame, measure, None)


@router.post("/metrics/query")
def query(body: AnalyticsQuery, request: Request) -> Response:
    started = time.perf_counter()
    state = state_of(request)
    start, end = as_utc(body.start_time), as_utc(body.end_time)
    if end <= start:
        return problem(400, "end_time must be after start_time")
    frame = state.visible_requests(start, end)
    dims = _dimensions(frame)
    keep = np.ones(len(frame), dtype=bool)
    for condition in body.filters:
        wanted = condition.value if isinstance(condition.value, list) else [condition.value]
        matches = dims[condition.dimension].astype(str).isin([str(v) for v in wanted]).to_numpy()
        keep &= ~matches if condition.operator in {"ne", "not_in"} else matches
    frame, dims = frame[keep], dims[keep]
    bucket = INTERVAL_NS[body.interval]
    work = dims[list(body.group_by)].copy()
    work["_bucket"] = frame["ts_ns"].to_numpy() // bucket * bucket
    names = [m.alias or m.metric for m in body.metrics]
    for metric, name in zip(body.metrics, names, strict=True):
        work[f"_m_{name}"] = _measure(frame, metric.metric)
    rows: list[dict[str, Any]] = []
    for key, group in work.groupby([*body.group_by, "_bucket"], sort=True, dropna=False):
        parts: tuple[Any, ...] = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = {"timestamp": iso(datetime.fromtimestamp(int(parts[-1]) / NS_PER_S, tz=UTC))}
        row |= {dimension: value for dimension, value in zip(body.group_by, parts[:-1], strict=True)}
        for metric, name in zip(body.metrics, names, strict=True):
            row[name] = _aggregate(group[f"_m_{name}"], metric.aggregation)
        rows.append(row)
    for rule in body.having:
        target, operator, value = str(rule.get("metric")), str(rule.get("operator", "gt")), rule.get("value")
        if target not in names or operator not in _COMPARE or not isinstance(value, int | float):
            return problem(400, "having entries look like {metric: <alias>, operator: gt|gte|lt|lte|eq, value: n}")
        rows = [r for r in rows if r[target] is not None and _COMPARE[operator](r[target], value)]
    if body.sort_by:
        name = body.sort_by.lstrip("-")
        if name not in {"timestamp", *names, *body.group_by}:
            return problem(400, f"cannot sort by {name!r}")
        rows.sort(key=lambda r: (r.get(name) is None, r.get(name)), reverse=body.sort_by.startswith("-"))
    total = len(rows)
    return reply({
        "metadata": {
            "start_time": iso(start), "end_time": iso(min(end, max(start, state.now()))),
            "interval": body.interval, "total_rows": total, "returned_rows": min(total, body.limit),
            "query_time_ms": round(1000 * (time.perf_counter() - started), 2),
        },
        "data": rows[: body.limit],
    })


def _shares(frame: pd.DataFrame, column: str, total: float) -> list[dict[str, Any]]:
    grouped = frame.groupby(column).agg(cost=("cost_usd", "sum"), requests=("cost_usd", "size"))
    return [
        {"name": str(name), "cost": round(float(row.cost), 6), "requests": int(row.requests),
         "percentage": round(100 * float(row.cost) / total, 2) if total else 0.0,
         "avg_cost_per_request": round(float(row.cost) / int(row.requests), 6) if row.requests else 0.0}
        for name, row in grouped.sort_values("cost", ascending=False).iterrows()
    ]


@router.get("/costs/summary")
def costs_summary(
    request: Request,
    start_time: datetime,
    end_time: datetime,
    provider: str | None = None,
    model: str | None = None,
    environment: str | None = None,
    include_trends: bool = False,
) -> Response:
    state = state_of(request)
    start, end = as_utc(start_time), as_utc(end_time)
    if end <= start:
        return problem(400, "end_time must be after start_time")
    frame = state.billed_requests(start, end)
    for column, wanted in (("provider", provider), ("model", model), ("environment", environment)):
        if wanted:
            frame = frame[frame[column] == wanted]
    total, count = float(frame["cost_usd"].sum()), len(frame)
    trends = None
    if include_trends:
        days = (frame["ts_ns"] // INTERVAL_NS["one_day"]).rename("day")
        daily = frame.groupby(days).agg(cost=("cost_usd", "sum"), requests=("cost_usd", "size"))
        trends = {"daily": [
            {"date": (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=int(str(day)))).date().isoformat(),
             "cost": round(float(row.cost), 6), "requests": int(row.requests)}
            for day, row in daily.iterrows()
        ]}
    return reply({
        "metadata": {"start_time": iso(start), "end_time": iso(end), "currency": "USD"},
        "overview": {
            "total_cost": round(total, 6), "total_requests": count,
            "avg_cost_per_request": round(total / count, 6) if count else 0.0,
            "total_tokens": int((frame["prompt_tokens"] + frame["completion_tokens"]).sum()),
        },
        "by_provider": _shares(frame, "provider", total),
        "by_model": _shares(frame, "model", total),
        "by_environment": _shares(frame, "environment", total),
        "trends": trends,
    })
