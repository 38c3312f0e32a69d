"""Orchestrator routing configuration (`GET/PUT /config/routing`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from optimizer.schemas._base import WireModel

# The request classifier's complexity levels, in order. Each owns a third of the [0, 1]
# complexity score (a level's requests score at its band's middle); a cascade's
# `complexity_score` threshold sends requests scoring above it straight to the fallback, so the
# upper edge of a level's band routes that level and every simpler one to the primary.
COMPLEXITY_LEVELS = ("simple", "moderate", "complex")


def complexity_score(level: int) -> float:
    """The score of a request of this level (index in COMPLEXITY_LEVELS)."""
    return (level + 0.5) / len(COMPLEXITY_LEVELS)


def complexity_threshold(highest_routed_level: int) -> float:
    """The threshold that routes this level and the simpler ones to a cascade's primary."""
    return round((highest_routed_level + 1) / len(COMPLEXITY_LEVELS), 2)


class EscalationThreshold(WireModel):
    confidence_score: float | None = Field(default=None, ge=0, le=1)
    complexity_score: float | None = Field(default=None, ge=0, le=1)  # above it: straight to the fallback


class CascadeConfig(WireModel):
    primary_model: str
    fallback_models: list[str] = Field(min_length=1)
    escalation_threshold: EscalationThreshold = Field(default_factory=EscalationThreshold)


class TargetSelection(WireModel):
    strategy: str
    cascade_config: CascadeConfig | None = None
    required_capabilities: list[str] = Field(default_factory=list)
    preferred_models: list[str] = Field(default_factory=list)

    def models(self) -> list[str]:
        """Every model this selection can send traffic to."""
        named = list(self.preferred_models)
        if self.cascade_config is not None:
            named += [self.cascade_config.primary_model, *self.cascade_config.fallback_models]
        return named


class OptimizationHints(WireModel):
    enable_caching: bool = False
    enable_prompt_compression: bool = False
    cache_ttl_seconds: int | None = None


class RoutingRule(WireModel):
    id: str
    name: str
    priority: int
    conditions: dict[str, Any] = Field(default_factory=dict)
    target_selection: TargetSelection
    optimization_hints: OptimizationHints | None = None


class DefaultPolicy(WireModel):
    strategy: str
    models: list[str] = Field(default_factory=list)


class RoutingConfig(WireModel):
    """The routing rules themselves, without version bookkeeping."""

    routing_rules: list[RoutingRule] = Field(default_factory=list)
    default_policy: DefaultPolicy | None = None


class RoutingConfigUpdate(RoutingConfig):
    """Body of `PUT /config/routing`: a new version of the whole configuration."""

    version: str = Field(min_length=1)
    effective_time: datetime | None = None


class ValidationResult(WireModel):
    valid: bool
    warnings: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


class RoutingConfigApplied(WireModel):
    """Answer to `PUT /config/routing`: `effective_time` is when the version takes (or took) effect."""

    config_id: str
    version: str
    status: str
    effective_time: datetime
    validation_result: ValidationResult


class RoutingConfigState(RoutingConfig):
    """Answer to `GET /config/routing`: the configuration in force and its identity."""

    config_id: str
    version: str
    last_updated: datetime
    status: str


class RoutingConfigHistory(WireModel):
    """Answer to `GET /config/routing/history`: every version, newest first."""

    versions: list[RoutingConfigState]


class StrategyRegistration(WireModel):
    """Body of the Orchestrator's `POST /optimization/strategies`: a strategy it may consult."""

    strategy_id: str
    name: str
    description: str | None = None
    enabled: bool = True
    configuration: dict[str, Any] = Field(default_factory=dict)
    applicable_models: list[str] = Field(default_factory=list)
    webhook_url: str | None = None


class StrategyRegistered(WireModel):
    strategy_id: str
    status: str
    validation: str | None = None
