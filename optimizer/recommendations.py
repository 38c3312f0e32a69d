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
    Comparison,
    CompressionRecommendation,
    ExperimentAnalysis,
)
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.events import (
    EXPERIMENT_COMPLETED,
    EXPERIMENTS_SOURCE,
    OPTIMIZATION_FAILED,
    OPTIMIZATION_RECOMMENDED,
    SOURCE,
    OutgoingEvent,
)
from optimizer.schemas.optimizations import fingerprint
from optimizer.schemas.registry import (
    CurrentConfiguration,
    EstimatedImpact,
    ExperimentResultData,
    ExperimentResults,
    NextAction,
    Recommendation,
    RecommendationGoals,
    RecommendationRequest,
    StoredExperiment,
    TestPeriod,
    VariantMetrics,
    VariantResult,
    Winner,
)

Finding = CascadeRecommendation | CompressionRecommendation | CachingRecommendation | BatchingRecommendation
CONCLUDED = {"deploy_to_production": "completed", "keep_control": "completed", "invalid_srm": "failed"}


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
                "escalation_criteria": {"confidence_threshold": entry.confidence_threshold},
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
            latency_impact_ms=0.0,
        ),
        implementation={
            "technique": entry.technique,
            "compression_ratio": round(1 - reduction / 100, 3),
            "min_prompt_length": entry.min_prompt_tokens,
            "model": entry.model,
            "quality_change_ci": list(entry.quality_change_ci or ()),
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


def _metric(comparisons: Sequence[Comparison], variant: str, metric: str) -> Comparison | None:
    return next((c for c in comparisons if c.variant_id == variant and c.metric == metric), None)


def _variant_metrics(analysis: ExperimentAnalysis, variant: str) -> VariantMetrics:
    def mean(metric: str) -> float | None:
        found = next((c for c in analysis.comparisons if c.metric == metric), None)
        if found is None:
            return None
        if variant == "control":
            return found.control_mean
        own = _metric(analysis.comparisons, variant, metric)
        return own.treatment_mean if own else None

    return VariantMetrics(
        average_cost_usd=mean("cost_usd") or 0.0,
        average_latency_ms=mean("latency_ms") or 0.0,
        quality_score=mean("quality_score"),
        error_rate=mean("error_rate") or 0.0,
    )


def experiment_result_data(
    analysis: ExperimentAnalysis, definition: StoredExperiment, *, alpha: float, now: datetime
) -> ExperimentResultData:
    """The specification's Experiment Result Event data for an analysed experiment."""
    descriptions = {
        str(v.get("variant_id")): v.get("description")
        for v in definition.configuration.get("variants", [])
        if isinstance(v, Mapping)
    }
    winner = None
    if analysis.winner:
        cost = _metric(analysis.comparisons, analysis.winner, "cost_usd")
        latency = _metric(analysis.comparisons, analysis.winner, "latency_ms")
        quality = _metric(analysis.comparisons, analysis.winner, "quality_score")
        winner = Winner(
            variant_id=analysis.winner,
            confidence=1 - alpha,
            improvement_metrics={
                "cost_reduction_percentage": round(-100 * (cost.relative_diff or 0.0), 2) if cost else 0.0,
                "latency_improvement_ms": round(-latency.absolute_diff, 1) if latency else 0.0,
                "quality_change": round(quality.absolute_diff, 5) if quality else 0.0,
            },
        )
    next_actions = {
        "deploy_to_production": [NextAction(action="update_orchestrator_config", priority=1),
                                 NextAction(action="monitor_quality_metrics", priority=2, duration_days=7)],
        "keep_control": [NextAction(action="stop_experiment", priority=1)],
        "invalid_srm": [NextAction(action="investigate_assignment", priority=1)],
    }.get(analysis.recommendation, [])
    return ExperimentResultData(
        experiment_id=analysis.experiment_id,
        experiment_name=definition.hypothesis or analysis.experiment_id,
        experiment_type=definition.experiment_type,
        status=CONCLUDED.get(analysis.recommendation, "running"),
        duration_hours=round((now - definition.test_period.start).total_seconds() / 3600, 1),
        variants=[
            VariantResult(
                variant_id=v.variant_id,
                description=descriptions.get(v.variant_id),
                traffic_percentage=round(100 * v.expected_share, 2),
                total_requests=v.n,
                metrics=_variant_metrics(analysis, v.variant_id),
            )
            for v in analysis.variants
        ],
        winner=winner,
        conclusion="; ".join(analysis.reasons) or analysis.recommendation,
        recommendation=analysis.recommendation,
        next_actions=next_actions,
    )


def stored_experiment(
    analysis: ExperimentAnalysis, definition: StoredExperiment, *, alpha: float, now: datetime
) -> StoredExperiment:
    """The Registry's record of the experiment, updated with tonight's analysis."""
    data = experiment_result_data(analysis, definition, alpha=alpha, now=now)
    focus = analysis.winner or next((v.variant_id for v in analysis.variants if v.variant_id != "control"), None)
    focus_variant = next((v for v in data.variants if v.variant_id == focus), None)
    metrics: dict[str, float] = {}
    for comparison in analysis.comparisons:
        if comparison.variant_id == focus:
            metrics[f"{comparison.metric}_change"] = comparison.absolute_diff
            if comparison.relative_diff is not None:
                metrics[f"{comparison.metric}_relative_change"] = comparison.relative_diff
    concluded = analysis.recommendation in CONCLUDED
    return definition.model_copy(
        update={
            "status": CONCLUDED.get(analysis.recommendation, "running"),
            "test_period": TestPeriod(start=definition.test_period.start, end=now if concluded else None),
            "results": ExperimentResults(
                total_requests=sum(v.n for v in analysis.variants),
                success_rate=1 - focus_variant.metrics.error_rate if focus_variant else 1.0,
                metrics=metrics,
            ),
            "conclusion": data.conclusion,
            "metadata": {
                **definition.metadata,
                "recommendation": analysis.recommendation,
                "winner": analysis.winner,
                "analyzed_at": now.isoformat(),
            },
        }
    )


def experiment_event(
    analysis: ExperimentAnalysis, definition: StoredExperiment, *, alpha: float, now: datetime
) -> OutgoingEvent | None:
    """`experiment.completed` once an experiment is concluded; `optimization.failed` when its
    assignment is broken; nothing while it runs on."""
    if analysis.recommendation == "invalid_srm":
        return OutgoingEvent(
            id=f"evt-{analysis.experiment_id}-invalid-srm", type=OPTIMIZATION_FAILED, source=SOURCE,
            subject=f"experiment/{analysis.experiment_id}", time=now,
            data={"experiment_id": analysis.experiment_id, "reason": "sample_ratio_mismatch",
                  "srm_p_value": analysis.srm_p_value, "details": analysis.reasons},
        )
    if analysis.recommendation not in CONCLUDED:
        return None
    data = experiment_result_data(analysis, definition, alpha=alpha, now=now)
    return OutgoingEvent(
        id=f"evt-{analysis.experiment_id}-completed", type=EXPERIMENT_COMPLETED, source=EXPERIMENTS_SOURCE,
        subject=f"experiment/{analysis.experiment_id}", time=now, data=data.to_wire(),
    )
