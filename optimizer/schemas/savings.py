"""Results of the analyses that change no model: response caching and batch pricing.

Both are decided per application from the savings the window's own traffic shows, with an
interval over days (docs/methods.md); both become routing hints (`optimization_hints`).
"""

from __future__ import annotations

from pydantic import Field

from optimizer.schemas.analysis import Decision, InputSummary, Interval, ResultModel


class TtlOption(ResultModel):
    """What a cache with this time-to-live would have answered in the window."""

    ttl_seconds: int
    hits: int
    hit_rate: float  # hits over hashed requests
    monthly_savings_usd: float


class CachingRecommendation(ResultModel):
    application_id: str
    decision: Decision
    ttl_seconds: int | None
    hashed_requests: int  # served requests with a prompt hash
    requests: int  # served requests
    hit_rate: float | None
    hit_rate_ci: Interval | None
    monthly_savings_usd: float | None
    monthly_savings_ci: Interval | None
    days: int  # UTC days the interval is taken over
    reason: str
    options: list[TtlOption] = Field(default_factory=list)


class CachingReport(ResultModel):
    recommendations: list[CachingRecommendation]
    alpha: float
    min_monthly_savings_usd: float
    input: InputSummary | None = None


class BatchingRecommendation(ResultModel):
    application_id: str
    decision: Decision
    task_types: list[str]  # the latency-tolerant task types found
    models: list[str]  # the models of that traffic that have batch prices
    tolerant_requests: int
    requests: int
    monthly_savings_usd: float | None
    monthly_savings_ci: Interval | None
    cost_reduction_pct: float | None  # of the latency-tolerant traffic's cost
    days: int
    max_delay_hours: float  # how long a batch API may take to answer
    reason: str


class BatchingReport(ResultModel):
    recommendations: list[BatchingRecommendation]
    alpha: float
    min_monthly_savings_usd: float
    latency_tolerant_task_types: list[str]
    input: InputSummary | None = None
