"""What the platform hears when a rollout ends: the CloudEvent (`optimization.applied` or
`optimization.failed`) and, for a response to an alert, the report back to Sentinel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from optimizer.rollout.experiments import EXPERIMENT_TYPES, described
from optimizer.schemas.analysis import ExperimentAnalysis, VariantUsage
from optimizer.schemas.events import (
    EXPERIMENT_STARTED,
    EXPERIMENTS_SOURCE,
    OPTIMIZATION_APPLIED,
    OPTIMIZATION_FAILED,
    OPTIMIZATION_TYPES,
    SOURCE,
    OutgoingEvent,
)
from optimizer.schemas.optimizations import Optimization
from optimizer.schemas.rollout import (
    GuardrailReading,
    ProposedChange,
    ResponseOutcome,
    RolloutOutcome,
)
from optimizer.schemas.sentinel import AnomalyReport


def _reading(readings: Sequence[GuardrailReading]) -> dict[str, float]:
    """One window's guardrail readings over every application it covers: error rate and
    quality weighted by requests, the highest p95 latency."""
    requests = sum(r.requests for r in readings)
    found: dict[str, float] = {"requests": float(requests)}
    rated = [r for r in readings if r.error_rate is not None and r.requests]
    if rated:
        found["error_rate"] = sum(r.error_rate * r.requests for r in rated if r.error_rate is not None) / sum(
            r.requests for r in rated)
    latencies = [r.p95_latency_ms for r in readings if r.p95_latency_ms is not None]
    if latencies:
        found["p95_latency_ms"] = max(latencies)
    scored = [r for r in readings if r.quality is not None and r.evaluated]
    if scored:
        found["quality_score"] = sum(r.quality * r.evaluated for r in scored if r.quality is not None) / sum(
            r.evaluated for r in scored)
    return found


def _measured(outcome: RolloutOutcome) -> dict[str, object]:
    """The specification's `original_metrics` (the hour before), `optimized_metrics` (the
    canary), `improvement` and `quality_metrics`; only what was measured or forecast."""
    readings = outcome.guardrails.readings if outcome.guardrails else []
    original = _reading([r for r in readings if r.window == "baseline"]) if readings else {}
    optimized = _reading([r for r in readings if r.window == "canary"]) if readings else {}
    improvement: dict[str, float] = {
        "expected_monthly_savings_usd": round(sum(c.monthly_savings_usd or 0.0 for c in outcome.changes), 2)}
    for name, key in (("error_rate_change", "error_rate"), ("p95_latency_change_ms", "p95_latency_ms"),
                      ("quality_change", "quality_score")):
        if key in original and key in optimized:
            improvement[name] = optimized[key] - original[key]
    intervals = [c.quality_change_ci for c in outcome.changes if c.quality_change_ci]
    quality = {"quality_score": optimized.get("quality_score"),
               "expected_quality_change": min((c.quality_change for c in outcome.changes
                                               if c.quality_change is not None), default=None),
               "quality_change_ci": list(min(intervals)) if intervals else None}
    return {"original_metrics": original, "optimized_metrics": optimized, "improvement": improvement,
            "quality_metrics": {k: v for k, v in quality.items() if v is not None}}


def optimization_type(changes: Sequence[ProposedChange]) -> str:
    """The specification's name for what the (first) change does."""
    kinds = dict.fromkeys(OPTIMIZATION_TYPES[c.kind] for c in changes)
    return next(iter(kinds), "model_selection")


def outcome_event(outcome: RolloutOutcome, now: datetime) -> OutgoingEvent | None:
    """Applied for a promoted rollout; failed for a blocked or rolled-back one; nothing when a
    person said no (a decision, not a failure) or there was nothing to change."""
    data = {
        "optimization_id": outcome.rollout_id,
        "optimization_type": optimization_type(outcome.changes),
        "technique": next((c.technique for c in outcome.changes if c.technique), None),
        **_measured(outcome),
        "metadata": {"application_id": next(iter(outcome.applications), None),
                     "model": next((m for c in outcome.changes for m in c.models()), None)},
        "status": outcome.status,
        "message": outcome.message,
        "applications": outcome.applications,
        "changes": [c.model_dump(mode="json", exclude_none=True) for c in outcome.changes],
        "previous_version": outcome.previous_version,
        "expected_monthly_savings_usd": round(sum(c.monthly_savings_usd or 0.0 for c in outcome.changes), 2),
    }
    if outcome.status == "applied":
        kind = OPTIMIZATION_APPLIED
        data |= {"version": outcome.applied_version,
                 "approver": outcome.approval.approver if outcome.approval else None}
    elif outcome.status in {"blocked", "rolled_back"}:
        kind = OPTIMIZATION_FAILED
        data |= {"reason": outcome.status, "restored_version": outcome.restored_version,
                 "breaches": outcome.guardrails.breaches if outcome.guardrails else [],
                 "policy_violations": [v for p in outcome.policy for v in p.blocking]}
    elif outcome.status == "experimenting" and outcome.experiment_id:
        return experiment_started(outcome, data, now)
    else:
        return None
    return OutgoingEvent(id=f"evt-rollout-{outcome.rollout_id}-{outcome.status}", type=kind, source=SOURCE,
                         subject=f"rollout/{outcome.rollout_id}", time=now, data=data)


def experiment_started(outcome: RolloutOutcome, rollout: dict[str, object], now: datetime) -> OutgoingEvent:
    """`experiment.started` for an approved change gone live as an A/B experiment: the
    Experiment Result Event's fields that exist at its start, and the rollout's."""
    percent = outcome.experiment_percent or 0.0
    treatment = "; ".join(described(c) for c in outcome.changes)
    data = {
        "experiment_id": outcome.experiment_id, "experiment_name": treatment,
        "experiment_type": EXPERIMENT_TYPES.get(outcome.changes[0].kind, "routing") if outcome.changes else "routing",
        "status": "running",
        "variants": [{"variant_id": "control", "description": "the current routing", "traffic_percentage": 100 - percent},
                     {"variant_id": "treatment", "description": treatment, "traffic_percentage": percent}],
        "optimization_id": outcome.optimization_id, "rollout_id": outcome.rollout_id,
        "version": outcome.experiment_version,
        "approver": outcome.approval.approver if outcome.approval else None,
        **{k: rollout[k] for k in ("optimization_type", "applications", "changes", "previous_version",
                                   "expected_monthly_savings_usd", "metadata")},
    }
    return OutgoingEvent(id=f"evt-{outcome.experiment_id}-started", type=EXPERIMENT_STARTED,
                         source=EXPERIMENTS_SOURCE, subject=f"experiment/{outcome.experiment_id}", time=now, data=data)


def sentinel_report(outcome: ResponseOutcome, now: datetime) -> AnomalyReport:
    """The response to an alert, reported back to Sentinel: medium severity unless the change
    went out or nothing needed changing."""
    status = outcome.rollout.status if outcome.rollout else "no_change"
    return AnomalyReport(
        source="llm-auto-optimizer", type="optimization_response",
        severity="low" if status in {"applied", "no_change"} else "medium",
        timestamp=now,
        context={"alert_id": outcome.alert_id, "event_id": outcome.event_id, "trigger": outcome.trigger,
                 "strategy": outcome.strategy, "applications": outcome.applications},
        details={"outcome": status, "message": outcome.message,
                 "rollout_id": outcome.rollout.rollout_id if outcome.rollout else None,
                 "applied_version": outcome.rollout.applied_version if outcome.rollout else None,
                 "changes": len(outcome.changes)},
    )


_METRIC_NAMES = {"cost_usd": "average_cost_usd", "latency_ms": "average_latency_ms",
                 "quality_score": "quality_score", "error_rate": "error_rate"}


def optimization_event(
    optimization: Optimization, analysis: ExperimentAnalysis | None, version: str, now: datetime,
    usage: Mapping[str, VariantUsage] | None = None,
) -> OutgoingEvent:
    """`optimization.applied` for an experiment's winner deployed to all traffic,
    `optimization.failed` for one stopped or rolled back: in the specification's shape, with
    control's figures as the original metrics and the treatment's as the optimized ones."""
    found = {c.metric: c for c in (analysis.comparisons if analysis else []) if c.variant_id == "treatment"}
    original = {_METRIC_NAMES[m]: c.control_mean for m, c in found.items()}
    optimized = {_METRIC_NAMES[m]: c.treatment_mean for m, c in found.items()}
    improvement: dict[str, float] = {}
    if "cost_usd" in found:
        cost = found["cost_usd"]
        improvement["cost_saved_usd"] = cost.control_mean - cost.treatment_mean
        if cost.control_mean:
            improvement["reduction_percentage"] = 100 * (cost.control_mean - cost.treatment_mean) / cost.control_mean
    treated = (usage or {}).get("treatment")
    if treated is not None and treated.compressed:  # prompt tokens per compressed request
        original["prompt_tokens"] = treated.original_prompt_tokens / treated.compressed
        optimized["prompt_tokens"] = treated.prompt_tokens / treated.compressed
        improvement["tokens_saved"] = original["prompt_tokens"] - optimized["prompt_tokens"]
    if "latency_ms" in found:
        improvement["latency_change_ms"] = found["latency_ms"].absolute_diff
    if "quality_score" in found:
        improvement["quality_change"] = found["quality_score"].absolute_diff
    first = optimization.changes[0]
    data: dict[str, object] = {
        "optimization_id": optimization.optimization_id,
        "optimization_type": optimization_type(optimization.changes),
        "technique": first.technique or first.kind,
        "status": optimization.status,
        "reason": optimization.reason,
        "experiment_id": optimization.experiment_id,
        "version": version,
        "original_metrics": original,
        "optimized_metrics": optimized,
        "improvement": improvement,
        "quality_metrics": {"quality_score": optimized.get("quality_score"),
                            "quality_change_ci": list(found["quality_score"].sequential_ci)
                            if "quality_score" in found else None},
        "expected_monthly_savings_usd": round(optimization.forecast_monthly_savings_usd, 2),
        "metadata": {"application_id": optimization.application_id,
                     "model": first.primary_model or next(iter(first.preferred_models), None)},
    }
    kind = OPTIMIZATION_APPLIED if optimization.status == "deployed" else OPTIMIZATION_FAILED
    return OutgoingEvent(id=f"evt-{optimization.optimization_id}-{optimization.status}", type=kind, source=SOURCE,
                         subject=f"optimization/{optimization.optimization_id}", time=now, data=data)
