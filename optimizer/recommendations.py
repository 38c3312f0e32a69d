"""From analysis results to what the platform is told: Registry records and CloudEvents.

Pure translation, no I/O: the nightly flow's tasks send what these functions build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from optimizer.analysis.compression import DAYS_PER_MONTH
from optimizer.rollout.plan import change_from_recommendation
from optimizer.schemas.analysis import (
    AdoptedRecommendation,
    BatchingRecommendation,
    CachingRecommendation,
    CascadeRecommendation,
    CompressionRecommendation,
)
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.events import (
    OPTIMIZATION_RECOMMENDED,
    SOURCE,
    OutgoingEvent,
)
from optimizer.schemas.optimizations import fingerprint
from optimizer.schemas.registry import (
    CurrentConfiguration,
    EstimatedImpact,
    Recommendation,
    RecommendationGoals,
    RecommendationRequest,
)

Finding = CascadeRecommendation | CompressionRecommendation | CachingRecommendation | BatchingRecommendation


@dataclass
class Adoption:
    """What one night adopts: the Registry's recommendations per application, the summary
    kept in the warehouse, what each saves a month, and the events announcing them."""

    recommendations: dict[str, list[Recommendation]] = field(default_factory=dict)
    adopted: list[AdoptedRecommendation] = field(default_factory=list)
    monthly_savings: dict[str, float] = field(default_factory=dict)  # "<kind>:<application>" -> USD
    events: list[OutgoingEvent] = field(default_factory=list)

    def savings_by_team(self, profiles: Mapping[str, ApplicationProfile]) -> dict[str, float]:
        by_team: dict[str, float] = {}
        for item in self.adopted:
            profile = profiles.get(item.application_id)
            if profile and profile.team_id:
                by_team[profile.team_id] = by_team.get(profile.team_id, 0.0) + item.monthly_savings_usd
        return by_team


def adopt(
    entries: Sequence[Finding],
    profiles: Mapping[str, ApplicationProfile],
    *,
    run_id: str,
    alpha: float,
    now: datetime,
) -> Adoption:
    """The adopted entries among `entries`, each as a Registry recommendation with its savings
    and its `optimization.recommended` event."""
    adoption = Adoption()
    for entry in entries:
        profile = profiles.get(entry.application_id)
        recommendation = registry_recommendation(entry, profile, run_id=run_id, alpha=alpha)
        if recommendation is None:
            continue
        monthly = monthly_savings_usd(entry, profile)
        adoption.monthly_savings[f"{recommendation.type}:{entry.application_id}"] = monthly
        adoption.recommendations.setdefault(entry.application_id, []).append(recommendation)
        adoption.adopted.append(AdoptedRecommendation(
            recommendation_id=recommendation.recommendation_id, kind=recommendation.type,
            application_id=entry.application_id, description=recommendation.description, monthly_savings_usd=monthly,
        ))
        change = change_from_recommendation(entry, team_id=None, monthly_savings_usd=None, recommendation_id=None)
        adoption.events.append(recommendation_event(recommendation, entry.application_id, now,
                                                    fingerprint([change]) if change else recommendation.recommendation_id))
    return adoption


def monthly_savings_usd(
    entry: Finding, profile: ApplicationProfile | None
) -> float:
    """What adopting a recommendation saves a month at the application's current spend."""
    if entry.decision != "adopt":
        return 0.0
    if isinstance(entry, CompressionRecommendation):
        return entry.estimated_monthly_savings_usd or 0.0
    if isinstance(entry, CachingRecommendation | BatchingRecommendation):
        return entry.monthly_savings_usd or 0.0
    if profile is None or entry.cost_reduction_pct is None:
        return 0.0
    return entry.cost_reduction_pct / 100 * profile.daily_cost_usd * DAYS_PER_MONTH


def monthly_tokens_saved(entry: CascadeRecommendation | CompressionRecommendation,
                         input_prices: Mapping[str, float]) -> float:
    """Prompt tokens an adopted compression saves a month: its savings are prompt tokens at
    its model's input price. A cascade moves tokens between models rather than saving them."""
    if not isinstance(entry, CompressionRecommendation) or entry.decision != "adopt" or entry.model is None:
        return 0.0
    price = input_prices.get(entry.model)
    return (entry.estimated_monthly_savings_usd or 0.0) / price * 1000 if price else 0.0


def registry_recommendation(
    entry: Finding,
    profile: ApplicationProfile | None,
    *,
    run_id: str,
    alpha: float,
) -> Recommendation | None:
    """The specification's recommendation shape for an adopted result; None otherwise."""
    if entry.decision != "adopt":
        return None
    savings_daily = monthly_savings_usd(entry, profile) / DAYS_PER_MONTH
    daily_cost = profile.daily_cost_usd if profile else 0.0
    if isinstance(entry, CachingRecommendation | BatchingRecommendation):
        return _savings_recommendation(entry, savings_daily, daily_cost, run_id=run_id, alpha=alpha)
    if isinstance(entry, CascadeRecommendation):
        return Recommendation(
            recommendation_id=f"{run_id}-cascade-{entry.application_id}",
            type="model_cascade",
            description=f"Implement model cascading with {entry.primary_model} as primary",
            estimated_impact=EstimatedImpact(
                cost_reduction_percentage=round(entry.cost_reduction_pct or 0.0, 2),
                cost_savings_daily_usd=round(savings_daily, 4),
                quality_impact=round(entry.quality_change or 0.0, 5),
                latency_impact_ms=round(entry.latency_change_ms or 0.0, 1),
            ),
            implementation={
                "primary_model": entry.primary_model,
                "escalation_model": entry.fallback_model,
                "escalation_criteria": {"confidence_threshold": entry.confidence_threshold,
                                        **({"complexity_threshold": entry.complexity_threshold}
                                           if entry.complexity_threshold is not None else {})},
                "estimated_escalation_rate": entry.escalation_rate,
                "quality_change_ci": list(entry.quality_change_ci or ()),
                "n_pairs": entry.n_pairs,
            },
            confidence=1 - alpha,
            based_on_experiments=[],
        )
    reduction = entry.token_reduction_pct or 0.0
    return Recommendation(
        recommendation_id=f"{run_id}-compression-{entry.application_id}",
        type="prompt_compression",
        description=(
            f"Enable {entry.technique} prompt compression"
            + (f" for prompts of {entry.min_prompt_tokens}+ tokens" if entry.min_prompt_tokens else "")
        ),
        estimated_impact=EstimatedImpact(
            cost_reduction_percentage=round(100 * savings_daily / daily_cost, 2) if daily_cost else 0.0,
            cost_savings_daily_usd=round(savings_daily, 4),
            quality_impact=round(entry.quality_change or 0.0, 5),
            latency_impact_ms=round(entry.latency_impact_ms or 0.0, 1),
        ),
        implementation={
            "technique": entry.technique,
            "compression_ratio": round(1 - reduction / 100, 3),
            "min_prompt_length": entry.min_prompt_tokens,
            "model": entry.model,
            "quality_change_ci": list(entry.quality_change_ci or ()),
            "latency_impact_ms_ci": list(entry.latency_impact_ms_ci or ()),
        },
        confidence=1 - alpha,
        based_on_experiments=[entry.experiment_id] if entry.experiment_id else [],
    )


def _savings_recommendation(
    entry: CachingRecommendation | BatchingRecommendation, savings_daily: float, daily_cost: float, *, run_id: str,
    alpha: float,
) -> Recommendation:
    """Caching or batch pricing in the specification's recommendation shape: what it saves,
    no quality impact assumed (the reason says why), and what it does to latency."""
    impact = {"cost_reduction_percentage": round(100 * savings_daily / daily_cost, 2) if daily_cost else 0.0,
              "cost_savings_daily_usd": round(savings_daily, 4), "quality_impact": 0.0}
    ci = [round(x, 2) for x in entry.monthly_savings_ci or ()]
    if isinstance(entry, CachingRecommendation):
        return Recommendation(
            recommendation_id=f"{run_id}-caching-{entry.application_id}", type="caching",
            description=f"Cache responses to repeated prompts for {entry.ttl_seconds} s",
            estimated_impact=EstimatedImpact(**impact, latency_impact_ms=0.0),
            implementation={"enable_caching": True, "cache_ttl_seconds": entry.ttl_seconds,
                            "hit_rate": entry.hit_rate, "hit_rate_ci": list(entry.hit_rate_ci or ()),
                            "monthly_savings_ci_usd": ci, "assumption": "a repeated prompt's earlier answer is "
                            "as good as a new one"},
            confidence=1 - alpha,
        )
    return Recommendation(
        recommendation_id=f"{run_id}-batching-{entry.application_id}", type="batching",
        description=f"Send {', '.join(entry.task_types)} requests to the batch API (answers within "
                    f"{entry.max_delay_hours:g} hours)",
        estimated_impact=EstimatedImpact(**impact, latency_impact_ms=entry.max_delay_hours * 3600 * 1000),
        implementation={"enable_batching": True, "task_types": entry.task_types, "models": entry.models,
                        "max_delay_hours": entry.max_delay_hours, "monthly_savings_ci_usd": ci},
        confidence=1 - alpha,
    )


def recommendation_request(
    profile: ApplicationProfile, recommendations: Sequence[Recommendation], max_quality_drop: float
) -> RecommendationRequest:
    return RecommendationRequest(
        application_id=profile.application_id,
        current_configuration=CurrentConfiguration(
            model=profile.model,
            average_prompt_tokens=round(profile.average_prompt_tokens, 1),
            average_completion_tokens=round(profile.average_completion_tokens, 1),
            requests_per_day=round(profile.requests_per_day, 1),
            current_daily_cost_usd=round(profile.daily_cost_usd, 4),
        ),
        goals=RecommendationGoals(acceptable_quality_drop=max_quality_drop),
        recommendations=list(recommendations),
    )


def recommendation_event(
    recommendation: Recommendation, application_id: str, now: datetime, change_key: str
) -> OutgoingEvent:
    """Announced once per change: its id comes from what the change is (`change_key`, the
    optimization's fingerprint), not from the run that found it again, so a later night's same
    finding is not a new event to anyone who deduplicates by id (nor to the outbox)."""
    return OutgoingEvent(
        id=f"evt-recommended-{application_id}-{change_key}",
        type=OPTIMIZATION_RECOMMENDED,
        source=SOURCE,
        subject=f"application/{application_id}",
        time=now,
        data={"application_id": application_id, **recommendation.to_wire()},
    )
