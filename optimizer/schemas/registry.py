"""Registry payloads: model profiles, experiments and recommendations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import Field

from optimizer.schemas._base import WireModel


class Capabilities(WireModel):
    max_tokens: int | None = None
    context_window: int
    output_tokens_limit: int | None = None
    supported_features: list[str] = Field(default_factory=list)
    reasoning_capability: str | None = None
    knowledge_cutoff: str | None = None
    supported_languages: list[str] = Field(default_factory=list)
    fine_tuning_available: bool = False


class LatencyProfile(WireModel):
    p50_ms: float
    p95_ms: float
    p99_ms: float


class Throughput(WireModel):
    requests_per_minute: int
    tokens_per_minute: int


class PerformanceCharacteristics(WireModel):
    latency: LatencyProfile
    throughput: Throughput | None = None
    quality_scores: dict[str, float] = Field(default_factory=dict)


class TokenPrices(WireModel):
    input_cost_per_1k_tokens: float = Field(ge=0)
    output_cost_per_1k_tokens: float = Field(ge=0)


class CostStructure(TokenPrices):
    currency: str = "USD"
    pricing_model: str = "per_token"
    effective_date: date | None = None
    batch_pricing: TokenPrices | None = None

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """List-price cost of one call."""
        return (
            prompt_tokens * self.input_cost_per_1k_tokens
            + completion_tokens * self.output_cost_per_1k_tokens
        ) / 1000.0


class RateLimits(WireModel):
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    requests_per_day: int | None = None


class DeploymentInfo(WireModel):
    regions: list[str] = Field(default_factory=list)
    endpoint_url: str | None = None
    authentication_type: str | None = None
    rate_limits: RateLimits | None = None


class Compliance(WireModel):
    certifications: list[str] = Field(default_factory=list)
    data_residency_options: list[str] = Field(default_factory=list)
    gdpr_compliant: bool = False
    hipaa_eligible: bool = False


class OptimizationMetadata(WireModel):
    recommended_for: list[str] = Field(default_factory=list)
    not_recommended_for: list[str] = Field(default_factory=list)
    optimization_compatible: dict[str, bool] = Field(default_factory=dict)
    cost_efficiency_score: float | None = None
    quality_cost_ratio: float | None = None


class ModelProfile(WireModel):
    """The full profile of one model (`GET /models/{model_id}`)."""

    model_id: str
    model_name: str
    provider: str
    provider_model_id: str | None = None
    version: str | None = None
    status: str = "active"
    lifecycle_stage: str | None = None
    deprecation_date: date | None = None
    capabilities: Capabilities
    performance_characteristics: PerformanceCharacteristics
    cost_structure: CostStructure
    deployment_info: DeploymentInfo | None = None
    compliance: Compliance = Field(default_factory=Compliance)
    optimization_metadata: OptimizationMetadata | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ModelUpdatedData(WireModel):
    """`data` of the `io.llm-platform.registry.model-updated` event. The specification lists
    the type without a schema: `model_id` names the model; `changed_fields` (dotted paths) and
    the profile as it now is may come along. The optimizer reads the profile from the Registry
    either way."""

    model_id: str
    changed_fields: list[str] = Field(default_factory=list)
    previous: dict[str, Any] = Field(default_factory=dict)
    profile: ModelProfile | None = None


class CapabilitiesSummary(WireModel):
    context_window: int
    features: list[str] = Field(default_factory=list)


class CostSummaryPerK(WireModel):
    input_cost_per_1k: float
    output_cost_per_1k: float


class PerformanceSummary(WireModel):
    p95_latency_ms: float
    quality_score: float | None = None


class ModelSummary(WireModel):
    """One entry of `GET /models`."""

    model_id: str
    model_name: str
    provider: str
    status: str
    capabilities_summary: CapabilitiesSummary
    cost_summary: CostSummaryPerK
    performance_summary: PerformanceSummary


class ModelList(WireModel):
    total: int
    models: list[ModelSummary]
    filters_applied: dict[str, Any] = Field(default_factory=dict)


class RequiredCapabilities(WireModel):
    min_context_window: int | None = None
    features: list[str] = Field(default_factory=list)
    reasoning_capability: str | None = None


class SearchConstraints(WireModel):
    max_cost_per_request_usd: float | None = None
    max_latency_p95_ms: float | None = None
    required_compliance: list[str] = Field(default_factory=list)
    allowed_regions: list[str] = Field(default_factory=list)
    # Addition: a data residency option the model must offer (`EU`), as its profile's
    # `compliance.data_residency_options` names them.
    data_residency: str | None = None


class SearchPreferences(WireModel):
    optimize_for: str = "cost"
    exclude_providers: list[str] = Field(default_factory=list)


class ModelSearchRequest(WireModel):
    required_capabilities: RequiredCapabilities = Field(default_factory=RequiredCapabilities)
    constraints: SearchConstraints = Field(default_factory=SearchConstraints)
    preferences: SearchPreferences = Field(default_factory=SearchPreferences)


class ModelMatch(WireModel):
    model_id: str
    match_score: float
    match_reasons: list[str] = Field(default_factory=list)
    estimated_cost_per_request: float | None = None
    estimated_latency_p95_ms: float | None = None


class ModelSearchResult(WireModel):
    matches: list[ModelMatch]
    total_matches: int


class TestPeriod(WireModel):
    __test__ = False  # a period of an experiment, not a test case

    start: datetime
    end: datetime | None = None


class ExperimentResults(WireModel):
    total_requests: int
    success_rate: float
    metrics: dict[str, float] = Field(default_factory=dict)


class StoredExperiment(WireModel):
    """An experiment as the Registry stores it (`POST /experiments`, `GET /experiments`).

    `status` is not in the specification's example; the Registry adds it to tell running
    experiments from concluded ones. `configuration` carries the variants and the traffic
    allocation of an A/B experiment.
    """

    experiment_id: str
    experiment_type: str
    technique: str | None = None
    hypothesis: str | None = None
    configuration: dict[str, Any] = Field(default_factory=dict)
    test_period: TestPeriod
    results: ExperimentResults | None = None
    conclusion: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: str = "running"

    def traffic_allocation(self) -> dict[str, float]:
        """Planned share of each variant; equal shares when the configuration names none."""
        allocation = self.configuration.get("traffic_allocation")
        if isinstance(allocation, dict) and allocation:
            return {str(k): float(v) for k, v in allocation.items()}
        variants = [v.get("variant_id") for v in self.configuration.get("variants", [])]
        names = [str(v) for v in variants if v] or ["control", "treatment"]
        return {name: 1.0 / len(names) for name in names}


class ExperimentRecorded(WireModel):
    experiment_id: str
    status: str
    created_at: datetime


class ExperimentList(WireModel):
    total: int
    experiments: list[StoredExperiment]


class ExperimentVariant(WireModel):
    variant_id: str
    description: str | None = None
    configuration: dict[str, Any] = Field(default_factory=dict)


class SuccessCriteria(WireModel):
    primary_metric: str
    min_improvement_percentage: float | None = None


class ExperimentRequest(WireModel):
    """A request to start an A/B experiment (the optimizer's own API)."""

    name: str
    description: str | None = None
    variants: list[ExperimentVariant]
    traffic_allocation: dict[str, float] = Field(default_factory=dict)
    success_criteria: SuccessCriteria | None = None
    duration_hours: int | None = None


class ExperimentResponse(WireModel):
    experiment_id: str
    status: str
    start_time: datetime | None = None
    end_time: datetime | None = None


class VariantMetrics(WireModel):
    average_cost_usd: float
    average_latency_ms: float
    quality_score: float | None = None
    error_rate: float


class VariantResult(WireModel):
    variant_id: str
    description: str | None = None
    traffic_percentage: float
    total_requests: int
    metrics: VariantMetrics
    cascade_metrics: dict[str, float] | None = None


class Winner(WireModel):
    variant_id: str
    confidence: float
    improvement_metrics: dict[str, float] = Field(default_factory=dict)


class NextAction(WireModel):
    action: str
    priority: int
    duration_days: int | None = None


class ExperimentResultData(WireModel):
    """`data` of the experiment.completed event (the specification's Experiment Result Event)."""

    experiment_id: str
    experiment_name: str | None = None
    experiment_type: str | None = None
    status: str
    duration_hours: float | None = None
    variants: list[VariantResult]
    winner: Winner | None = None
    conclusion: str
    recommendation: str
    next_actions: list[NextAction] = Field(default_factory=list)


class CurrentConfiguration(WireModel):
    model: str
    average_prompt_tokens: float
    average_completion_tokens: float
    requests_per_day: float
    current_daily_cost_usd: float


class RecommendationGoals(WireModel):
    target_cost_reduction_percentage: float | None = None
    acceptable_quality_drop: float | None = None
    max_latency_increase_ms: float | None = None


class EstimatedImpact(WireModel):
    cost_reduction_percentage: float
    cost_savings_daily_usd: float
    quality_impact: float
    latency_impact_ms: float


class Recommendation(WireModel):
    recommendation_id: str
    type: str
    description: str
    estimated_impact: EstimatedImpact
    implementation: dict[str, Any] = Field(default_factory=dict)
    confidence: float
    based_on_experiments: list[str] = Field(default_factory=list)


class RecommendationRequest(WireModel):
    """Body of `POST /recommendations`.

    `recommendations` extends the specification: the caller's own, evidence-based
    recommendations for this configuration, which the Registry records next to its
    catalog-based suggestions.
    """

    current_configuration: CurrentConfiguration
    goals: RecommendationGoals = Field(default_factory=RecommendationGoals)
    application_id: str | None = None
    recommendations: list[Recommendation] = Field(default_factory=list)


class RecommendationResponse(WireModel):
    recommendations: list[Recommendation]
    recorded: list[str] = Field(default_factory=list)


class RecordedRecommendations(WireModel):
    """Answer to `GET /recommendations`: what callers recorded, newest last."""

    total: int
    recommendations: list[Recommendation]
