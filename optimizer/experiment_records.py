"""From experiment analyses to what the platform is told: the Registry's experiment record and
the `experiment.completed` (or `optimization.failed`) event.

Pure translation, no I/O: the nightly flow's tasks send what these functions build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from optimizer.schemas.analysis import Comparison, ExperimentAnalysis, VariantUsage
from optimizer.schemas.events import (
    EXPERIMENT_COMPLETED,
    EXPERIMENTS_SOURCE,
    OPTIMIZATION_FAILED,
    SOURCE,
    OutgoingEvent,
)
from optimizer.schemas.registry import (
    ExperimentResultData,
    ExperimentResults,
    NextAction,
    StoredExperiment,
    TestPeriod,
    VariantMetrics,
    VariantResult,
    Winner,
)

CONCLUDED = {"deploy_to_production": "completed", "keep_control": "completed", "invalid_srm": "failed"}


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


def cascade_metrics(usage: VariantUsage | None) -> dict[str, float] | None:
    """A cascade variant's escalation rate and requests per answering model (the specification's
    `gpt35_requests`, `gpt4_requests`, named after the models here); None for other variants."""
    if usage is None or not usage.cascade_requests:
        return None
    return {"escalation_rate": usage.escalated / usage.cascade_requests,
            **{f"{model}_requests": float(n) for model, n in usage.requests_by_model.items()}}


CONCLUSION_PREFIXES = {"deploy_to_production": "Successful", "keep_control": "Failed", "invalid_srm": "Failed"}


def registry_conclusion(recommendation: str, reason: str) -> str:
    """The Registry's conclusion as the specification writes it: `Successful - ...`,
    `Failed - ...` or `Inconclusive - ...` (still running, or out of time)."""
    return f"{CONCLUSION_PREFIXES.get(recommendation, 'Inconclusive')} - {reason}"


def experiment_result_data(
    analysis: ExperimentAnalysis, definition: StoredExperiment, *, alpha: float, now: datetime,
    usage: Mapping[str, VariantUsage] | None = None,
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
                cascade_metrics=cascade_metrics((usage or {}).get(v.variant_id)),
            )
            for v in analysis.variants
        ],
        winner=winner,
        conclusion="; ".join(analysis.reasons) or analysis.recommendation,
        recommendation=analysis.recommendation,
        next_actions=next_actions,
    )


def _record_metrics(analysis: ExperimentAnalysis, focus: str | None, n: int, usage: VariantUsage | None
                   ) -> dict[str, float]:
    """The focus variant against control, in the specification's experiment record metrics."""
    metrics: dict[str, float] = {}
    cost, latency, quality = (_metric(analysis.comparisons, focus or "", m)
                              for m in ("cost_usd", "latency_ms", "quality_score"))
    if usage is not None and usage.compressed:
        metrics["average_compression_ratio"] = usage.prompt_tokens / max(usage.original_prompt_tokens, 1)
        metrics["average_tokens_saved"] = (usage.original_prompt_tokens - usage.prompt_tokens) / usage.compressed
    if cost is not None:
        metrics["average_cost_savings_usd"] = -cost.absolute_diff
        metrics["total_cost_savings_usd"] = -cost.absolute_diff * n
    if quality is not None:
        metrics["quality_score_change"] = quality.absolute_diff
    if latency is not None:
        metrics["latency_change_ms"] = latency.absolute_diff
    return metrics


def stored_experiment(
    analysis: ExperimentAnalysis, definition: StoredExperiment, *, alpha: float, now: datetime,
    usage: Mapping[str, VariantUsage] | None = None,
) -> StoredExperiment:
    """The Registry's record of the experiment, updated with tonight's analysis."""
    data = experiment_result_data(analysis, definition, alpha=alpha, now=now, usage=usage)
    focus = analysis.winner or next((v.variant_id for v in analysis.variants if v.variant_id != "control"), None)
    focus_variant = next((v for v in data.variants if v.variant_id == focus), None)
    metrics = _record_metrics(analysis, focus, focus_variant.total_requests if focus_variant else 0,
                              (usage or {}).get(focus or ""))
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
            "conclusion": registry_conclusion(analysis.recommendation, data.conclusion),
            "metadata": {
                **definition.metadata,
                "recommendation": analysis.recommendation,
                "winner": analysis.winner,
                "analyzed_at": now.isoformat(),
            },
        }
    )


def experiment_event(
    analysis: ExperimentAnalysis, definition: StoredExperiment, *, alpha: float, now: datetime,
    usage: Mapping[str, VariantUsage] | None = None,
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
    data = experiment_result_data(analysis, definition, alpha=alpha, now=now, usage=usage)
    return OutgoingEvent(
        id=f"evt-{analysis.experiment_id}-completed", type=EXPERIMENT_COMPLETED, source=EXPERIMENTS_SOURCE,
        subject=f"experiment/{analysis.experiment_id}", time=now, data=data.to_wire(),
    )
