"""Results of the analyses, shaped as the `analyze` commands print them (docs/cli.md), and
what became of the adopted ones.

Named fields keep their names and meaning; fields beyond the contract's are additions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from optimizer.defaults import MAX_LATENCY_INCREASE_MS as MAX_LATENCY_INCREASE_MS
from optimizer.defaults import MAX_P95_LATENCY_INCREASE_PCT as MAX_P95_LATENCY_INCREASE_PCT
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.registry import StoredExperiment, TokenPrices
from optimizer.schemas.selection import TrafficCell

Decision = Literal["adopt", "reject", "insufficient_data"]
Interval = tuple[float, float]

# The latency limits' defaults (MAX_P95_LATENCY_INCREASE_PCT, MAX_LATENCY_INCREASE_MS) live in
# `optimizer.defaults`, where the command line's help reads them without loading pydantic.

class ResultModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputSummary(ResultModel):
    """What the analysis read: rows, and rows left out because they break the record's rules."""

    rows: int
    rows_excluded: int = 0
    exclusion_reasons: dict[str, int] = Field(default_factory=dict)


class FrontierPoint(ResultModel):
    """One confidence threshold of a cascade: what it costs and what it does to quality."""

    confidence_threshold: float
    escalation_rate: float
    cost_reduction_pct: float
    quality_change: float
    quality_change_ci: Interval
    latency_change_ms: float


class CascadeCandidate(ResultModel):
    primary_model: str
    n_pairs: int
    decision: Decision
    confidence_threshold: float | None
    cost_reduction_pct: float | None
    quality_change: float | None
    quality_change_ci: Interval | None
    reason: str
    # How much the cascade would raise p95 latency at this threshold, from the pairs (None: unknown).
    p95_latency_change_pct: float | None = None
    # Mean latency change per request (ms), its interval, and its one-sided upper bound at alpha.
    latency_impact_ms: float | None = None
    latency_impact_ms_ci: Interval | None = None
    latency_increase_bound_ms: float | None = None
    # The complexity levels sent to the primary first and the spec's score for it (None: the
    # requests carry no complexity, every request goes to the primary first).
    complexity_threshold: float | None = None
    complexity_levels: list[str] | None = None


class CascadeRecommendation(ResultModel):
    application_id: str
    decision: Decision
    primary_model: str | None
    fallback_model: str | None
    confidence_threshold: float | None
    escalation_rate: float | None
    cost_reduction_pct: float | None
    quality_change: float | None
    quality_change_ci: Interval | None
    n_pairs: int
    reason: str
    latency_change_ms: float | None = None
    p95_latency_change_pct: float | None = None
    latency_impact_ms: float | None = None  # = latency_change_ms, under the specification's name
    latency_impact_ms_ci: Interval | None = None
    latency_increase_bound_ms: float | None = None  # one-sided upper bound at alpha
    complexity_threshold: float | None = None  # requests scoring above it go straight to the fallback
    complexity_levels: list[str] | None = None  # the levels the primary answers first
    frontier: list[FrontierPoint] = Field(default_factory=list)
    candidates: list[CascadeCandidate] = Field(default_factory=list)


class CascadeReport(ResultModel):
    recommendations: list[CascadeRecommendation]
    max_quality_drop: float
    alpha: float
    max_latency_increase_ms: float | None = None
    input: InputSummary | None = None


class FloorCheck(ResultModel):
    """Compression restricted to prompts of at least `min_prompt_tokens` original tokens."""

    min_prompt_tokens: int
    n_compressed: int
    n_uncompressed: int
    quality_change: float
    quality_change_ci: Interval
    non_inferior: bool


class CompressionRecommendation(ResultModel):
    application_id: str
    decision: Decision
    technique: str | None
    model: str | None
    token_reduction_pct: float | None
    quality_change: float | None
    quality_change_ci: Interval | None
    estimated_monthly_savings_usd: float | None
    min_prompt_tokens: int | None
    n_compressed: int
    n_uncompressed: int
    reason: str
    experiment_id: str | None = None  # the randomised experiment compared, if any
    floors: list[FloorCheck] = Field(default_factory=list)
    # Mean latency change of a compressed request (ms, compressed minus uncompressed, at the
    # floor shown), its interval, and its one-sided upper bound at alpha.
    latency_impact_ms: float | None = None
    latency_impact_ms_ci: Interval | None = None
    latency_increase_bound_ms: float | None = None


class CompressionReport(ResultModel):
    recommendations: list[CompressionRecommendation]
    max_quality_drop: float
    alpha: float
    max_latency_increase_ms: float | None = None
    input: InputSummary | None = None


class AdoptedRecommendation(BaseModel):
    """An adopted result as the Registry was told it: its id there and what it saves a month."""

    recommendation_id: str
    kind: str  # model_cascade | prompt_compression
    application_id: str
    description: str
    monthly_savings_usd: float


class RecordedRecommendation(ResultModel):
    """An adopted result as the warehouse keeps it, with the Registry id and monthly savings
    recorded beside it (None where the run recorded none)."""

    entry: CascadeRecommendation | CompressionRecommendation | CachingRecommendation | BatchingRecommendation
    recommendation_id: str | None = None
    monthly_savings_usd: float | None = None


Metric = Literal["cost_usd", "latency_ms", "quality_score", "error_rate"]
ExperimentRecommendation = Literal["deploy_to_production", "keep_control", "continue", "invalid_srm"]


class VariantSummary(ResultModel):
    variant_id: str
    n: int
    expected_share: float
    observed_share: float


class Comparison(ResultModel):
    """One variant against control on one metric.

    `p_value`/`ci` are the fixed-horizon results the contract names. `sequential_*` are
    always valid: they stay honest however often the experiment is looked at, and the
    recommendation is taken from them.
    """

    variant_id: str
    metric: Metric
    control_mean: float
    treatment_mean: float
    absolute_diff: float
    relative_diff: float | None
    ci: Interval
    relative_ci: Interval | None
    p_value: float
    p_value_adjusted: float
    significant: bool
    n_control: int
    n_treatment: int
    mde: float
    power: float
    power_reference_effect: float
    sequential_p_value: float
    sequential_p_value_adjusted: float
    sequential_ci: Interval
    sequential_significant: bool


class ExperimentAnalysis(ResultModel):
    experiment_id: str
    srm_p_value: float
    srm_detected: bool
    variants: list[VariantSummary]
    comparisons: list[Comparison]
    winner: str | None
    recommendation: ExperimentRecommendation
    reasons: list[str] = Field(default_factory=list)


class ExperimentReport(ResultModel):
    experiments: list[ExperimentAnalysis]
    alpha: float
    input: InputSummary | None = None


class TeamBudgetStatus(ResultModel):
    """A team's month against its budget, and what the run's recommendations would save it."""

    team_id: str
    team_name: str
    policy_id: str
    limit_usd: float
    month_to_date_usd: float
    utilization_pct: float
    projected_month_usd: float
    projected_utilization_pct: float
    alert_threshold_pct: float
    flagged: bool
    recommended_monthly_savings_usd: float
    projected_with_savings_usd: float


class ApplicationAnalysis(BaseModel):
    """One application's part of a nightly analysis (merged across applications afterwards)."""

    cascades: CascadeReport
    compression: CompressionReport
    profiles: list[ApplicationProfile]
    caching: CachingReport | None = None
    batching: BatchingReport | None = None
    # The window's traffic cells, when it was analysed where it is stored: the API's snapshot
    # publishes them, and they need not be read from the warehouse a second time.
    traffic: list[TrafficCell] | None = None


class VariantUsage(BaseModel):
    """What one variant's requests were served by: the models that answered, how many were
    cascade requests and escalated, and the prompt tokens of the compressed ones."""

    requests_by_model: dict[str, int] = Field(default_factory=dict)
    cascade_requests: int = 0  # rows that say whether they escalated
    escalated: int = 0
    compressed: int = 0
    prompt_tokens: int = 0  # of the compressed rows, as sent
    original_prompt_tokens: int = 0  # of the compressed rows, before compression


class ExperimentFinding(BaseModel):
    """A running experiment as the Registry defines it, and what its data says so far."""

    definition: StoredExperiment
    analysis: ExperimentAnalysis
    usage: dict[str, VariantUsage] = Field(default_factory=dict)  # by variant


class AnalysisInputs(BaseModel):
    """The analysis window, exported for workers: one Parquet folder per application."""

    partitions: dict[str, Path]
    input_prices: dict[str, float]
    batch_prices: dict[str, TokenPrices] = Field(default_factory=dict)  # models with batch prices


# -- the analyses that change no model: response caching and batch pricing ---------------
# Both decided per application from the savings the window's own traffic shows, with an
# interval over days (docs/methods.md); both become routing hints.


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
