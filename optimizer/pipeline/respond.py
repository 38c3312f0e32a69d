"""Answering an alert: which applications it concerns, what to change (by its strategy), and
telling Sentinel what came of it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from optimizer.analysis import caching, compression
from optimizer.pipeline.models import rank_with
from optimizer.pipeline.rollout import adopted_changes
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.rollout import strategies
from optimizer.rollout.events import sentinel_report
from optimizer.schemas.rollout import ProposedChange, ResponseOutcome
from optimizer.schemas.selection import (
    ModelRanking,
    ModelSelectionRequest,
    SelectionPreferences,
    SelectionRequirements,
    TrafficCell,
)
from optimizer.warehouse import Warehouse
from optimizer.warehouse.analytics import RequestSource


@dataclass(frozen=True)
class _Situation:
    """What a strategy decides from: the alert, the applications it concerns (with the model
    serving each), the recent traffic, and `select`: the Registry's matching models ranked on
    that traffic (`optimizer.pipeline.models`)."""

    alert: Mapping[str, Any]
    serving: dict[str, str]
    affected_model: str | None
    teams: dict[str, str]
    select: Callable[[ModelSelectionRequest], ModelRanking]
    store: Warehouse
    source: RequestSource
    max_quality_drop: float
    alpha: float


def _faster_model(s: _Situation) -> list[ProposedChange]:
    details = s.alert.get("anomaly_details") or {}
    degraded = details.get("current_p95_ms") or s.alert.get("actual_value_ms")
    if s.affected_model is None:
        return []
    apps = sorted(a for a, m in s.serving.items() if m == s.affected_model)
    ranking = s.select(ModelSelectionRequest(
        requirements=SelectionRequirements(applications=apps), current_model=s.affected_model,
        preferences=SelectionPreferences(optimize_for="latency"),
    ))
    return strategies.faster_alternatives(s.serving, ranking, affected_model=s.affected_model,
                                          degraded_p95_ms=float(degraded) if degraded else None, teams=s.teams,
                                          max_quality_drop=s.max_quality_drop)


def _compression_and_caching(s: _Situation) -> list[ProposedChange]:
    """Compression and caching where the recent traffic's own evidence supports them: caching
    only for applications whose prompts repeat enough to save a significant amount."""
    found = compression.recommend(s.source.compression_data(s.store.reference.input_prices()),
                                  max_quality_drop=s.max_quality_drop, alpha=s.alpha)
    cached = caching.recommend([d for d in s.source.caching_data() if d.application_id in s.serving], alpha=s.alpha)
    return strategies.cost_reductions(found, sorted(s.serving), s.teams, cached)


def _higher_quality_model(s: _Situation) -> list[ProposedChange]:
    """Each application's own traffic ranks the candidates for it."""
    changes = []
    for app, model in sorted(s.serving.items()):
        ranking = s.select(ModelSelectionRequest(
            requirements=SelectionRequirements(applications=[app]), current_model=model,
            preferences=SelectionPreferences(optimize_for="quality"),
        ))
        if (change := strategies.quality_upgrade(app, model, ranking, s.teams)) is not None:
            changes.append(change)
    return changes


# Each strategy's proposal; a strategy without one ("monitor") only acknowledges the alert.
RESPONSES: dict[strategies.Strategy, Callable[[_Situation], list[ProposedChange]]] = {
    "faster_model": _faster_model,
    "compression_and_caching": _compression_and_caching,
    "higher_quality_model": _higher_quality_model,
}


def propose_response(
    runtime: Runtime, strategy: strategies.Strategy, alert: Mapping[str, Any], analysis_days: int,
    max_quality_drop: float, alpha: float, *, log: Log = LOG,
) -> tuple[list[str], list[ProposedChange]]:
    """(applications concerned, changes proposed) for an alert, from the last `analysis_days`
    the warehouse holds."""
    with runtime.warehouse() as store, runtime.clients() as clients:
        latest = store.loads.latest_window_end() or datetime.now(UTC)
        source = store.request_source((latest - timedelta(days=analysis_days), latest))
        current = {p.application_id: p.model for p in source.application_profiles()}
        model, application = strategies.affected(alert)
        apps = [application] if application in current else sorted(a for a, m in current.items() if m == model)
        respond = RESPONSES.get(strategy)
        traffic: list[TrafficCell] = []

        def select(request: ModelSelectionRequest) -> ModelRanking:
            if not traffic:
                traffic.extend(source.traffic_cells())
            return rank_with(clients, request, traffic)

        changes = respond(_Situation(
            alert=alert, serving={a: current[a] for a in apps}, affected_model=model,
            teams=store.reference.application_teams(), select=select, store=store,
            source=source, max_quality_drop=max_quality_drop, alpha=alpha,
        )) if respond else []
    log.info("strategy %s for %s: %d change(s)", strategy, apps or "no application", len(changes))
    return apps, changes


def team_changes(runtime: Runtime, team_id: str, *, log: Log = LOG) -> tuple[list[str], list[ProposedChange]]:
    """The latest nightly run's adopted recommendations for one team's applications."""
    with runtime.warehouse() as store:
        apps = sorted(a for a, t in store.reference.application_teams().items() if t == team_id)
    changes = adopted_changes(runtime, team_id)
    log.info("team %s: %d application(s), %d change(s) to propose", team_id, len(apps), len(changes))
    return apps, changes


def report_to_sentinel(runtime: Runtime, outcome: ResponseOutcome, *, log: Log = LOG) -> ResponseOutcome:
    """Sentinel hears the outcome; the warehouse keeps it (`responded` on `anomaly/<alert id>`
    or `budget-alert/<alert id>`) until an `anomaly-resolved` event closes it."""
    if outcome.alert_id:
        kind = "budget-alert" if outcome.trigger.endswith("budget-alert") else "anomaly"
        with runtime.warehouse() as store:
            store.audit.record("anomaly-response" if kind == "anomaly" else "budget-response", "responded",
                               f"{kind}/{outcome.alert_id}",
                               {"event_id": outcome.event_id, "strategy": outcome.strategy,
                                "applications": outcome.applications, "message": outcome.message,
                                "rollout_id": outcome.rollout.rollout_id if outcome.rollout else None})
    with runtime.clients() as clients:
        reported = clients.sentinel.report_anomaly(sentinel_report(outcome, datetime.now(UTC)))
    if reported is None:
        log.info("Sentinel takes no reports in its upstream API: outcome kept in this run")
        return outcome
    return outcome.model_copy(update={"reported_anomaly_id": reported.anomaly_id})
