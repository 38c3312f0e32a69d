"""Realized savings: what a deployed change did to cost, quality and latency per request,
with intervals, and the monthly figure its forecast is judged against.

The comparison is before/after: the application's requests in the days before its experiment
began against the requests the change served since it was deployed. Mix and season can move
between the two periods; the interval covers sampling noise, not that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from optimizer.analysis.statistics import SampleMean, welch
from optimizer.schemas.optimizations import RealizedSavings

DAYS_PER_MONTH = 30.4


@dataclass(frozen=True)
class ServedTraffic:
    """An application's requests over a period, as sufficient statistics."""

    requests: int
    days: float
    cost: SampleMean
    latency: SampleMean
    quality: SampleMean
    prompt_tokens: float = math.nan  # mean prompt tokens sent per request


def realized_savings(
    optimization_id: str, application_id: str, before: ServedTraffic, after: ServedTraffic,
    forecast_monthly_usd: float, alpha: float = 0.05,
) -> RealizedSavings | None:
    """None until both periods have requests to compare."""
    if before.requests < 2 or after.requests < 2 or after.days <= 0:
        return None
    cost = welch(before.cost, after.cost, alpha)  # after - before: negative is a saving
    per_day = after.requests / after.days
    monthly = -cost.absolute * per_day * DAYS_PER_MONTH
    low, high = (-cost.ci[1] * per_day * DAYS_PER_MONTH, -cost.ci[0] * per_day * DAYS_PER_MONTH)
    quality = welch(before.quality, after.quality, alpha) if before.quality.n > 1 and after.quality.n > 1 else None
    latency = welch(before.latency, after.latency, alpha)
    tokens = (before.prompt_tokens - after.prompt_tokens) * per_day * DAYS_PER_MONTH
    return RealizedSavings(
        optimization_id=optimization_id, application_id=application_id,
        requests_before=before.requests, requests_after=after.requests, days_after=after.days,
        requests_per_day=per_day,
        cost_per_request_before_usd=before.cost.mean, cost_per_request_after_usd=after.cost.mean,
        saving_per_request_usd=-cost.absolute, saving_per_request_ci=(-cost.ci[1], -cost.ci[0]),
        realized_monthly_savings_usd=monthly, realized_monthly_savings_ci=(low, high),
        forecast_monthly_savings_usd=forecast_monthly_usd, forecast_error_usd=monthly - forecast_monthly_usd,
        forecast_error_pct=100 * (monthly - forecast_monthly_usd) / forecast_monthly_usd if forecast_monthly_usd else None,
        quality_change=quality.absolute if quality else None, quality_change_ci=quality.ci if quality else None,
        latency_change_ms=latency.absolute, latency_change_ci=latency.ci,
        realized_monthly_tokens_saved=tokens if math.isfinite(tokens) else None,
    )
