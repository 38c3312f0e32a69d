"""An optimization's experiment: how it is registered, and what its rollout and its nightly
verdicts make of the optimization."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from optimizer.schemas.optimizations import Optimization, OptimizationStatus
from optimizer.schemas.registry import StoredExperiment, TestPeriod
from optimizer.schemas.rollout import ProposedChange, RolloutOutcome, RolloutStatus

EXPERIMENT_TYPES = {"model_cascade": "model_selection", "preferred_model": "model_selection",
                    "prompt_compression": "prompt_optimization", "caching": "caching",
                    "batching": "batching"}

# What a rollout's end makes of the optimization it carried.
AFTER_ROLLOUT: dict[RolloutStatus, OptimizationStatus] = {
    "blocked": "blocked", "rejected": "rejected", "timed_out": "rejected", "no_change": "superseded",
    "experimenting": "experimenting", "applied": "deployed", "rolled_back": "rolled_back",
}


def described(change: ProposedChange) -> str:
    """What a change does, in a phrase (an experiment's treatment)."""
    if change.kind == "model_cascade":
        return (f"{change.primary_model} answers first, {change.fallback_model} below confidence "
                f"{change.confidence_threshold:g}")
    if change.kind == "prompt_compression":
        return f"{change.technique} compression of prompts from {change.min_prompt_tokens or 0} tokens"
    if change.kind == "caching" and change.cache_ttl_seconds:
        return f"repeated prompts answered from a cache for {change.cache_ttl_seconds} s"
    if change.kind == "batching":
        return f"{', '.join(change.batch_task_types)} requests through the batch API"
    return change.kind.replace("_", " ")


def experiment_definition(
    experiment_id: str, optimization_id: str, changes: Sequence[ProposedChange], percent: float, start: datetime,
    max_quality_drop: float,
) -> StoredExperiment:
    """The experiment as the Registry keeps it: both arms, their allocation (the treatment
    `percent` of the application's traffic, the control the rest), and which optimization and
    application it decides about."""
    first = changes[0]
    return StoredExperiment(
        experiment_id=experiment_id,
        experiment_type=EXPERIMENT_TYPES.get(first.kind, "routing"),
        technique=first.kind,
        hypothesis="; ".join(described(c) for c in changes) + " keeps quality while cutting cost",
        configuration={
            "variants": [{"variant_id": "control", "description": "the current routing"},
                         {"variant_id": "treatment", "description": "; ".join(described(c) for c in changes)}],
            "traffic_allocation": {"control": (100 - percent) / 100, "treatment": percent / 100},
            "traffic_percentage": {"control": 100 - percent, "treatment": percent},
            "max_quality_drop": max_quality_drop,  # the margin the change was certified with
        },
        test_period=TestPeriod(start=start),
        metadata={"created_by": "llm-auto-optimizer", "optimization_id": optimization_id,
                  "application_id": first.application_id},
        status="running",
    )


def optimization_after(optimization: Optimization, outcome: RolloutOutcome, now: datetime) -> Optimization:
    update: dict[str, object] = {}
    if outcome.status == "experimenting":
        update = {"experiment_id": outcome.experiment_id, "traffic_percent": outcome.experiment_percent,
                  "started_at": now, "previous_version": outcome.previous_version}
    return optimization.moved(AFTER_ROLLOUT[outcome.status], outcome.message, now, **update)
