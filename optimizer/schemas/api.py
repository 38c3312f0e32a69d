"""The optimizer's own API (docs/api.md): what the nightly run publishes for it, and the
strategy and experiment answers of the specification's OpenAPI.

Field names are the specification's; fields beyond its schemas are additions, marked so.
The model selection payloads are in `selection`, the experiment request in `registry`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from optimizer.schemas._base import WireModel
from optimizer.schemas.selection import TrafficCell

ExperimentStatus = Literal["running", "completed", "failed"]


class Strategy(WireModel):
    """One strategy recommendation: an adopted finding of the latest night."""

    strategy_type: str  # model_cascade | prompt_compression
    confidence: float
    estimated_impact: dict[str, Any] = Field(default_factory=dict)
    implementation: dict[str, Any] = Field(default_factory=dict)
    # Additions: whose traffic it is for, and what the night recorded of it.
    application_id: str
    team_id: str | None = None
    model: str | None = None  # the model serving the application's traffic
    description: str = ""
    recommendation_id: str | None = None
    monthly_savings_usd: float | None = None


class StrategyRecommendations(WireModel):
    recommendations: list[Strategy]
    # Additions: the night the recommendations come from.
    run_id: str | None = None
    window_end: datetime | None = None


class ExperimentSummary(WireModel):
    experiment_id: str
    name: str
    status: str
    winning_variant: str | None = None
    # The winner's cost reduction against control, in percent (None without a winner).
    improvement_percentage: float | None = None
    # Additions: the application it runs on and the night's recommendation.
    application_id: str | None = None
    recommendation: str | None = None


class ExperimentSummaries(WireModel):
    experiments: list[ExperimentSummary]


class ApiError(WireModel):
    """The specification's BadRequest body, used for every error answer."""

    error: str
    details: dict[str, Any] = Field(default_factory=dict)


class PublishedNight(BaseModel):
    """What the latest nightly run published for the API, written atomically beside the
    warehouse: the API reads this file, never the warehouse the nightly run writes."""

    run_id: str
    window_end: datetime
    published_at: datetime
    strategies: list[Strategy] = Field(default_factory=list)
    experiments: list[ExperimentSummary] = Field(default_factory=list)
    serving: dict[str, str] = Field(default_factory=dict)  # application -> the model serving it
    traffic: list[TrafficCell] = Field(default_factory=list)  # the analysis window, for model selection
