"""How the optimizer answers an alert: which strategy, and which routing changes it proposes.

latency -> a faster configuration (a cascade whose certified thresholds include one that
cuts latency); cost -> prompt compression and response caching; quality -> a higher-quality
model. The proposals come from the same analyses as the nightly ones, restricted to the
applications the alert concerns, and go through the same approval-gated rollout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from optimizer.schemas.analysis import CascadeReport, CompressionReport
from optimizer.schemas.registry import ModelProfile
from optimizer.schemas.rollout import ProposedChange

Strategy = Literal["faster_model", "compression_and_caching", "higher_quality_model", "monitor"]

_BY_ALERT_TYPE: dict[str, Strategy] = {
    "latency_anomaly": "faster_model",
    "latency_spike": "faster_model",
    "throughput_degradation": "faster_model",
    "cost_spike": "compression_and_caching",
    "cost_anomaly": "compression_and_caching",
    "token_usage_spike": "compression_and_caching",
    "quality_degradation": "higher_quality_model",
    "hallucination": "higher_quality_model",
}


def strategy_for(event_type: str, alert: Mapping[str, Any]) -> Strategy:
    if event_type.endswith("threshold-exceeded"):
        metric = str(alert.get("metric_name", ""))
        if "duration" in metric or "latency" in metric:
            return "faster_model"
        if "cost" in metric or "token" in metric:
            return "compression_and_caching"
        return "higher_quality_model" if "quality" in metric else "monitor"
    return _BY_ALERT_TYPE.get(str(alert.get("alert_type", "")), "monitor")


def affected(alert: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(model, application) the alert names, either may be None."""
    details = alert.get("anomaly_details") or {}
    model = details.get("affected_model") or alert.get("model")
    application = details.get("application_id") or details.get("affected_application") or alert.get("application_id")
    return (str(model) if model else None, str(application) if application else None)


def faster_configurations(
    cascades: CascadeReport, teams: Mapping[str, str], *, max_quality_drop: float
) -> list[ProposedChange]:
    """For each application, the certified cascade threshold that cuts latency most.

    Thresholds are certified in the same fixed sequence as the nightly choice (from the most
    cautious down, stopping at the first whose interval leaves the margin), so any of them
    keeps the quality promise; here the fastest is chosen instead of the cheapest.
    """
    changes = []
    for entry in cascades.recommendations:
        certified = []
        for point in entry.frontier:
            if point.quality_change_ci[0] < -max_quality_drop:
                break
            certified.append(point)
        faster = [p for p in certified if p.escalation_rate < 1 and p.latency_change_ms < 0]
        if not faster or entry.primary_model is None:
            continue
        best = min(faster, key=lambda p: p.latency_change_ms)
        changes.append(ProposedChange(
            application_id=entry.application_id, kind="model_cascade", team_id=teams.get(entry.application_id),
            primary_model=entry.primary_model, fallback_model=entry.fallback_model,
            confidence_threshold=best.confidence_threshold, quality_change=best.quality_change,
            quality_change_ci=best.quality_change_ci,
            reason=(f"latency {best.latency_change_ms:+.0f} ms per request with quality {best.quality_change:+.4f} "
                    f"(CI {best.quality_change_ci[0]:+.4f} to {best.quality_change_ci[1]:+.4f}) on "
                    f"{entry.n_pairs} shadow pairs"),
        ))
    return changes


def cost_reductions(
    compression: CompressionReport, applications: Sequence[str], teams: Mapping[str, str]
) -> list[ProposedChange]:
    """Adopted compression where the evidence allows it, and response caching, per application."""
    changes = []
    adopted = {r.application_id: r for r in compression.recommendations if r.decision == "adopt"}
    for app in applications:
        found = adopted.get(app)
        if found is not None:
            changes.append(ProposedChange(
                application_id=app, kind="prompt_compression", team_id=teams.get(app), technique=found.technique,
                min_prompt_tokens=found.min_prompt_tokens, monthly_savings_usd=found.estimated_monthly_savings_usd,
                quality_change=found.quality_change, quality_change_ci=found.quality_change_ci, reason=found.reason,
            ))
        changes.append(ProposedChange(application_id=app, kind="caching", team_id=teams.get(app),
                                      reason="repeated prompts are answered from cache for 5 minutes"))
    return changes


def quality_upgrades(
    current_models: Mapping[str, str], catalog: Sequence[ModelProfile], teams: Mapping[str, str]
) -> list[ProposedChange]:
    """Each application moves to the catalog's best-scoring model, keeping its current one second."""
    def score(profile: ModelProfile) -> float:
        scores = profile.performance_characteristics.quality_scores
        return float(scores.get("mmlu_score") or max(scores.values(), default=0.0))

    active = [p for p in catalog if p.status == "active"]
    changes = []
    for app, model in sorted(current_models.items()):
        current = next((p for p in active if p.model_id == model), None)
        better = [p for p in active if current is None or score(p) > score(current)]
        if not better:
            continue
        best = max(better, key=score)
        changes.append(ProposedChange(
            application_id=app, kind="preferred_model", team_id=teams.get(app),
            preferred_models=[best.model_id, model],
            reason=f"{best.model_id} scores {score(best):.3f} on its benchmark against {model}'s "
                   f"{score(current) if current else 0:.3f}",
        ))
    return changes
