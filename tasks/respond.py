"""Tasks of the event-triggered flows: what to propose for an alert, and telling Sentinel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from optimizer.analysis import compression
from optimizer.clients import PlatformClients
from optimizer.rollout import strategies
from optimizer.schemas.rollout import ProposedChange, ResponseOutcome
from optimizer.schemas.sentinel import AnomalyReport
from optimizer.warehouse import Warehouse
from tasks._common import retry_if_transient, settings
from tasks.rollout import adopted_changes


@task(name="propose-response", cache_policy=NO_CACHE)
def propose_response(
    warehouse: Path, strategy: str, alert: dict[str, Any], analysis_days: int, max_quality_drop: float, alpha: float
) -> tuple[list[str], list[ProposedChange]]:
    """(applications concerned, changes proposed) for an alert, from the last `analysis_days`."""
    logger = get_run_logger()
    end = datetime.now(UTC)
    with Warehouse(warehouse) as store:
        latest = store.loads.latest_window_end() or end
        window = (latest - timedelta(days=analysis_days), latest)
        source = store.request_source(window)
        current = {p.application_id: p.model for p in source.application_profiles()}
        teams = store.reference.application_teams()
        model, application = strategies.affected(alert)
        apps = [application] if application in current else sorted(a for a, m in current.items() if m == model)
        if strategy == "faster_model":
            details = alert.get("anomaly_details") or {}
            degraded = details.get("current_p95_ms") or alert.get("actual_value_ms")
            changes = strategies.faster_alternatives(
                {a: current[a] for a in apps}, store.reference.model_profiles(), affected_model=model, degraded_p95_ms=float(degraded) if degraded else None, teams=teams,
                max_quality_drop=max_quality_drop,
            )
        elif strategy == "compression_and_caching":
            found = compression.recommend(source.compression_data(store.reference.input_prices()),
                                          max_quality_drop=max_quality_drop, alpha=alpha)
            changes = strategies.cost_reductions(found, apps, teams)
        elif strategy == "higher_quality_model":
            changes = strategies.quality_upgrades({a: current[a] for a in apps}, store.reference.model_profiles(), teams)
        else:
            changes = []
    logger.info("strategy %s for %s: %d change(s)", strategy, apps or "no application", len(changes))
    return apps, changes


@task(name="team-changes", cache_policy=NO_CACHE)
def team_changes(warehouse: Path, team_id: str) -> tuple[list[str], list[ProposedChange]]:
    """The latest nightly run's adopted recommendations for one team's applications."""
    with Warehouse(warehouse) as store:
        apps = sorted(a for a, t in store.reference.application_teams().items() if t == team_id)
    changes = adopted_changes(warehouse, team_id)
    get_run_logger().info("team %s: %d application(s), %d change(s) to propose", team_id, len(apps), len(changes))
    return apps, changes


@task(name="report-to-sentinel", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def report_to_sentinel(outcome: ResponseOutcome) -> ResponseOutcome:
    status = outcome.rollout.status if outcome.rollout else "no_change"
    report = AnomalyReport(
        source="llm-auto-optimizer", type="optimization_response",
        severity="low" if status in {"applied", "no_change"} else "medium",
        timestamp=datetime.now(UTC),
        context={"alert_id": outcome.alert_id, "event_id": outcome.event_id, "trigger": outcome.trigger,
                 "strategy": outcome.strategy, "applications": outcome.applications},
        details={"outcome": status, "message": outcome.message,
                 "rollout_id": outcome.rollout.rollout_id if outcome.rollout else None,
                 "applied_version": outcome.rollout.applied_version if outcome.rollout else None,
                 "changes": len(outcome.changes)},
    )
    with PlatformClients.from_settings(settings()) as clients:
        reported = clients.sentinel.report_anomaly(report)
    if reported is None:
        get_run_logger().info("Sentinel takes no reports in its upstream API: outcome kept in this run")
        return outcome
    return outcome.model_copy(update={"reported_anomaly_id": reported.anomaly_id})
