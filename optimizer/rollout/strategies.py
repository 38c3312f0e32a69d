"""How the optimizer answers an alert: which strategy, and which routing changes it proposes.

latency -> a faster model of about the same quality; cost -> prompt compression and response
caching, each where the recent traffic's evidence supports it; quality -> a higher-quality model.
Every proposal goes through the same approval-gated rollout as a nightly one, and its
canary's guardrails judge it on real traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from optimizer.recommendations import monthly_savings_usd
from optimizer.rollout import plan
from optimizer.schemas.analysis import CachingReport, CompressionReport
from optimizer.schemas.rollout import ProposedChange
from optimizer.schemas.selection import ModelRanking

Strategy = Literal["faster_model", "compression_and_caching", "higher_quality_model", "stop_optimization", "monitor"]

_BY_ALERT_TYPE: dict[str, Strategy] = {
    "latency_anomaly": "faster_model",
    "latency_spike": "faster_model",
    "throughput_degradation": "faster_model",
    "cost_spike": "compression_and_caching",
    "cost_anomaly": "compression_and_caching",
    "token_usage_spike": "compression_and_caching",
    "quality_degradation": "higher_quality_model",
    "hallucination": "higher_quality_model",
    "optimization_side_effect": "stop_optimization",
}


def named_optimization(alert: Mapping[str, Any]) -> str | None:
    """The live optimization an anomaly blames (the specification's `optimization_side_effect`,
    recommending `rollback_optimization`), if it names one."""
    details = alert.get("anomaly_details") or {}
    named = alert.get("optimization_id") or details.get("optimization_id")
    return str(named) if named else None


def strategy_for(event_type: str, alert: Mapping[str, Any]) -> Strategy:
    if named_optimization(alert) and (alert.get("alert_type") == "optimization_side_effect"
                                      or alert.get("recommendation") == "rollback_optimization"):
        return "stop_optimization"
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


def faster_alternatives(
    current_models: Mapping[str, str],
    ranking: ModelRanking,
    *,
    affected_model: str | None,
    degraded_p95_ms: float | None,
    teams: Mapping[str, str],
    max_quality_drop: float,
) -> list[ProposedChange]:
    """Applications served by the slow model move to the best model that is about as good
    (quality within the margin) and whose p95 latency beats the slow model's p95 now (from
    the alert, else its own figure), keeping the slow model second. Figures are the ranking's:
    measured on these applications' traffic, the Registry's for a model without any. The
    canary's guardrails then check latency and quality on the real traffic."""
    by_id = {r.model_id: r for r in ranking.ranked}
    slow = by_id.get(affected_model or "")
    if slow is None or slow.quality_score is None:
        return []
    now_p95 = degraded_p95_ms or slow.latency_p95_ms
    if now_p95 is None:
        return []
    candidates = [
        r for r in ranking.ranked
        if r.model_id != slow.model_id and r.quality_score is not None and r.latency_p95_ms is not None
        and r.quality_score >= slow.quality_score - max_quality_drop and r.latency_p95_ms < now_p95
    ]
    if not candidates:
        return []
    best = max(candidates, key=lambda r: (r.quality_score or 0.0, -(r.latency_p95_ms or 0.0)))
    return [
        ProposedChange(
            application_id=app, kind="preferred_model", team_id=teams.get(app),
            preferred_models=[best.model_id, model],
            reason=(f"{best.model_id}'s quality {best.quality_score:.3f} against {model}'s {slow.quality_score:.3f} "
                    f"and its p95 {best.latency_p95_ms:.0f} ms against {now_p95:.0f} ms now; "
                    f"{best.model_id}: {best.rationale}; {model}: {slow.rationale}"),
        )
        for app, model in sorted(current_models.items())
        if model == slow.model_id
    ]


def cost_reductions(
    compression: CompressionReport, applications: Sequence[str], teams: Mapping[str, str], caching: CachingReport,
) -> list[ProposedChange]:
    """Per application, compression and response caching where their analyses adopted them
    (caching: prompts that repeat within a TTL, saving significantly); nothing otherwise."""
    changes = []
    compressed = {r.application_id: r for r in compression.recommendations}
    cached = {r.application_id: r for r in caching.recommendations}
    for app in applications:
        for result in (compressed.get(app), cached.get(app)):
            if result is not None and (adopted := plan.change_from_recommendation(
                result, team_id=teams.get(app), monthly_savings_usd=monthly_savings_usd(result, None),
                recommendation_id=None,
            )):
                changes.append(adopted)
    return changes


def quality_upgrade(
    application_id: str, current_model: str, ranking: ModelRanking, teams: Mapping[str, str]
) -> ProposedChange | None:
    """The application moves to the model of highest quality on its own traffic (the Registry's
    benchmark placed against a measured model for one it never used; cheaper first on a tie),
    keeping its current model second; None if none beats the current one."""
    current = next((r for r in ranking.ranked if r.model_id == current_model), None)
    floor = current.quality_score if current is not None and current.quality_score is not None else -1.0
    better = [r for r in ranking.ranked if r.quality_score is not None and r.quality_score > floor]
    if not better:
        return None
    best = max(better, key=lambda r: (r.quality_score or 0.0, -(r.cost_per_request_usd or 0.0)))
    was = f"{current.quality_score:.3f} ({current.rationale})" if current and current.quality_score is not None \
        else "unknown"
    return ProposedChange(
        application_id=application_id, kind="preferred_model", team_id=teams.get(application_id),
        preferred_models=[best.model_id, current_model],
        reason=f"{best.model_id}'s quality {best.quality_score:.3f} ({best.rationale}) against {current_model}'s {was}",
    )
