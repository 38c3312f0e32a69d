"""Batch pricing: what latency-tolerant traffic would cost at a model's batch prices.

Latency-tolerant means nobody waits for the answer: requests whose `task_type` is one of
`LATENCY_TOLERANT_TASK_TYPES` (scheduled jobs, backfills, offline evaluation; the request
record carries no other sign of it). Such requests of a model with `batch_pricing` in the
catalog could go through the provider's batch API, which answers within hours (OpenAI's and
Anthropic's promise at most 24) at about half the list price. The model and the prompt stay
the same, so quality is assumed unchanged; what changes is the latency, stated in the
recommendation.

Savings per UTC day are the day's cost of that traffic less the same tokens at batch prices;
the monthly figure is the mean day's times 30, with a t interval over days (as for caching),
and batching is recommended when its lower end clears `min_monthly_savings_usd`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from optimizer.analysis import caching
from optimizer.analysis.compression import DAYS_PER_MONTH
from optimizer.analysis.statistics import block_mean_interval
from optimizer.schemas.analysis import BatchingRecommendation, BatchingReport
from optimizer.schemas.registry import TokenPrices

LATENCY_TOLERANT_TASK_TYPES: tuple[str, ...] = ("batch", "offline")
BATCH_MAX_DELAY_HOURS = 24.0
MIN_DAYS = caching.MIN_DAYS  # the same bar as caching
MIN_MONTHLY_SAVINGS_USD = caching.MIN_MONTHLY_SAVINGS_USD


@dataclass(frozen=True)
class TolerantDay:
    """One UTC day of an application's latency-tolerant traffic on one model."""

    day: int  # days since 1970-01-01
    model: str
    task_type: str
    requests: int
    cost_usd: float
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class BatchingData:
    application_id: str
    requests: int  # served requests in the window
    first_day: int
    last_day: int
    days: tuple[TolerantDay, ...]


def recommend_application(
    data: BatchingData, batch_prices: Mapping[str, TokenPrices], *, alpha: float,
    min_monthly_savings_usd: float = MIN_MONTHLY_SAVINGS_USD,
) -> BatchingRecommendation:
    priced = [d for d in data.days if d.model in batch_prices]
    calendar = list(range(data.first_day, data.last_day + 1))
    task_types, models = sorted({d.task_type for d in data.days}), sorted({d.model for d in priced})
    common = {
        "application_id": data.application_id, "requests": data.requests, "days": len(calendar),
        "task_types": task_types, "models": models,
        "tolerant_requests": sum(d.requests for d in data.days), "max_delay_hours": BATCH_MAX_DELAY_HOURS,
    }
    if not priced or len(calendar) < MIN_DAYS:
        return BatchingRecommendation(
            **common, decision="insufficient_data", monthly_savings_usd=None, monthly_savings_ci=None,
            cost_reduction_pct=None,
            reason="no latency-tolerant traffic" if not data.days
            else "no batch price in the catalog for the models of its latency-tolerant traffic" if not priced
            else f"{len(calendar)} day(s) of traffic, fewer than the {MIN_DAYS} an interval over days needs",
        )
    daily = dict.fromkeys(calendar, 0.0)
    cost = 0.0
    for d in priced:
        price = batch_prices[d.model]
        at_batch = (d.prompt_tokens * price.input_cost_per_1k_tokens
                    + d.completion_tokens * price.output_cost_per_1k_tokens) / 1000
        daily[d.day] = daily.get(d.day, 0.0) + d.cost_usd - at_batch
        cost += d.cost_usd
    savings = [daily[day] for day in calendar]
    monthly = sum(savings) / len(calendar) * DAYS_PER_MONTH
    low, high = (DAYS_PER_MONTH * bound for bound in block_mean_interval(savings, alpha))
    adopt = low > max(min_monthly_savings_usd, 0.0)
    what = (f"{sum(d.requests for d in priced):,} latency-tolerant requests ({', '.join(task_types)}) "
            f"on {', '.join(models)}")
    return BatchingRecommendation(
        **common, decision="adopt" if adopt else "reject", monthly_savings_usd=monthly,
        monthly_savings_ci=(low, high), cost_reduction_pct=100 * sum(savings) / cost if cost else None,
        reason=(
            f"{what} at batch prices save {monthly:,.2f} USD a month (CI {low:,.2f} to {high:,.2f} over "
            f"{len(calendar)} days); answers then take up to {BATCH_MAX_DELAY_HOURS:g} hours instead of seconds. "
            "Same model, same prompts: quality assumed unchanged"
            if adopt else
            f"{what}: the savings' interval ({low:,.2f} to {high:,.2f} USD a month) does not clear "
            f"{min_monthly_savings_usd:,.2f} USD a month"
        ),
    )


def recommend(
    applications: Sequence[BatchingData], batch_prices: Mapping[str, TokenPrices], *, alpha: float = 0.05,
    min_monthly_savings_usd: float = MIN_MONTHLY_SAVINGS_USD,
    task_types: Sequence[str] = LATENCY_TOLERANT_TASK_TYPES,
) -> BatchingReport:
    return BatchingReport(
        recommendations=[
            recommend_application(a, batch_prices, alpha=alpha, min_monthly_savings_usd=min_monthly_savings_usd)
            for a in sorted(applications, key=lambda a: a.application_id)
        ],
        alpha=alpha, min_monthly_savings_usd=min_monthly_savings_usd, latency_tolerant_task_types=list(task_types),
    )
