"""Model selection: the optimizer API's request and answer (`POST /optimize/model-selection`),
and the ranked candidates behind them.

Field names are the specification's; fields beyond its schemas are additions, marked so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from optimizer.schemas._base import WireModel

OptimizeFor = Literal["cost", "latency", "quality"]
TaskType = Literal["classification", "generation", "reasoning", "coding"]
# Where a candidate's figures come from: the warehouse's traffic in the scope asked about,
# or (a model with too little traffic there) the Registry's catalog and benchmark.
FigureSource = Literal["warehouse", "registry"]


@dataclass(frozen=True)
class TrafficCell:
    """Sufficient statistics of one model's requests for one application and task type: what
    model choice ranks on, computed by the warehouse and published with the night's results."""

    application_id: str
    task_type: str | None
    model_id: str
    requests: int
    cost_usd_sum: float
    scored: int
    quality_sum: float
    errors: int
    prompt_tokens_sum: int
    completion_tokens_sum: int
    latency_buckets: tuple[tuple[int, int], ...]  # (bucket, successful requests in it)


class SelectionRequirements(WireModel):
    task_type: TaskType | None = None
    context_needed: int | None = Field(default=None, ge=0)
    features: list[str] = Field(default_factory=list)
    # Addition: the applications whose traffic the figures are measured on (all, if empty).
    applications: list[str] = Field(default_factory=list)


class SelectionConstraints(WireModel):
    max_cost_per_request: float | None = Field(default=None, ge=0)
    max_latency_ms: int | None = Field(default=None, ge=0)
    # Certifications or regimes the model must meet (`gdpr`, `hipaa`, `SOC2`, ...).
    compliance_requirements: list[str] = Field(default_factory=list)
    # Additions: where the data must stay (a residency option such as `EU`), the regions the
    # model may be deployed in, the lowest quality accepted, and models not to propose.
    data_residency: str | None = None
    allowed_regions: list[str] = Field(default_factory=list)
    min_quality_score: float | None = None
    exclude_models: list[str] = Field(default_factory=list)


class SelectionPreferences(WireModel):
    optimize_for: OptimizeFor = "cost"


class ModelSelectionRequest(WireModel):
    requirements: SelectionRequirements = Field(default_factory=SelectionRequirements)
    constraints: SelectionConstraints = Field(default_factory=SelectionConstraints)
    preferences: SelectionPreferences = Field(default_factory=SelectionPreferences)
    # Addition: the model serving the traffic now; benchmark-derived quality of unmeasured
    # models is anchored on its measured quality.
    current_model: str | None = None


class RankedModel(WireModel):
    """One candidate with the figures it was ranked on, and where each comes from."""

    model_id: str
    score: float
    cost_per_request_usd: float | None
    latency_p95_ms: float | None
    quality_score: float | None
    source: FigureSource
    requests: int  # requests measured in scope (0: figures from the Registry)
    rationale: str


class ExcludedModel(WireModel):
    model_id: str
    reason: str


class ModelRanking(WireModel):
    ranked: list[RankedModel]
    excluded: list[ExcludedModel] = Field(default_factory=list)


class Alternative(WireModel):
    model_id: str
    score: float
    rationale: str
    source: FigureSource | None = None  # addition


class EstimatedMetrics(WireModel):
    cost_per_request_usd: float | None = None
    latency_p95_ms: int | None = None
    quality_score: float | None = None


class ModelSelectionResponse(WireModel):
    recommended_model: str | None
    alternatives: list[Alternative] = Field(default_factory=list)
    estimated_metrics: EstimatedMetrics = Field(default_factory=EstimatedMetrics)
    # Additions: why the recommended model, where its figures come from, what was left out.
    rationale: str | None = None
    source: FigureSource | None = None
    excluded: list[ExcludedModel] = Field(default_factory=list)
