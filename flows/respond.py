"""Event-triggered flows: an alert or a budget warning becomes a proposal, which goes through
the same approval-gated rollout as a nightly one, and Sentinel hears what came of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.naming import rename_run, run_name
from flows.rollout import outcome_of, rollout
from optimizer.pipeline.runtime import Runtime
from optimizer.rollout.strategies import affected, named_optimization, strategy_for
from optimizer.schemas.rollout import (
    ModelRecheck,
    ProposedChange,
    ResponseOutcome,
    RolloutOutcome,
    ViolationResponse,
)
from tasks.nightly import deliver_events
from tasks.respond import (
    close_response,
    propose_response,
    recheck_model,
    report_to_sentinel,
    stop_optimization,
    stop_violating_changes,
    team_changes,
)


def _alert_name(kind: str, subject_key: str) -> Callable[[], str]:
    """`<kind>-<subject>-<day>`, the subject being what the alert names (its application, model,
    else `subject_key`), until the response knows the applications it touches."""
    def name() -> str:
        alert = flow_run.get_parameters().get("alert") or {}
        details = alert.get("anomaly_details") or {}
        subject = details.get("application_id") or details.get("affected_model") or alert.get(subject_key)
        return run_name(kind, [str(subject)] if subject else [])
    return name


def _roll_out(
    kind: str, apps: list[str], changes: list[ProposedChange], requested_by: str, *,
    approval_timeout_s: int, approval_poll_s: int, watch_minutes: float,
) -> RolloutOutcome | None:
    """Name the response after the applications it touches and roll its changes out through
    the approval-gated rollout; None when there is nothing to change."""
    if apps:
        rename_run(run_name(kind, apps))
    if not changes:
        return None
    return outcome_of(rollout(changes=changes, requested_by=requested_by, approval_timeout_s=approval_timeout_s,
                              approval_poll_s=approval_poll_s, watch_minutes=watch_minutes, return_state=True))


@flow(name="anomaly-response", flow_run_name=_alert_name("anomaly", "alert_type"))
def anomaly_response(
    alert: dict[str, Any],
    event_type: str = "io.llm-platform.sentinel.alert",
    event_id: str = "manual",
    analysis_days: int = 7,
    max_quality_drop: float = 0.02,
    alpha: float = 0.05,
    approval_timeout_s: int = 24 * 3600,
    approval_poll_s: int = 10,
    watch_minutes: float = 30.0,
) -> ResponseOutcome:
    """Latency anomaly -> faster model, cost spike -> compression and caching, quality
    degradation -> higher-quality model; anything else is only acknowledged. An anomaly
    that blames a live optimization (`optimization_side_effect`, `rollback_optimization`)
    rolls it back at once: stopping needs no approval, only an audit entry."""
    runtime = Runtime.current()
    strategy = strategy_for(event_type, alert)
    optimization_id = named_optimization(alert)
    if strategy == "stop_optimization" and optimization_id:
        stopped = stop_optimization(runtime, optimization_id, str(alert.get("title") or alert.get("description")
                                                                   or "an anomaly in its traffic"))
        deliver_events(runtime)
        return report_to_sentinel(runtime, ResponseOutcome(
            trigger=event_type, event_id=event_id, alert_id=alert.get("alert_id"), strategy=strategy,
            applications=[a for a in [affected(alert)[1]] if a], message=stopped))
    apps, changes = propose_response(runtime, strategy, alert, analysis_days, max_quality_drop, alpha)
    result = _roll_out("anomaly", apps, changes, f"anomaly-{event_id}", approval_timeout_s=approval_timeout_s,
                       approval_poll_s=approval_poll_s, watch_minutes=watch_minutes)
    outcome = ResponseOutcome(
        trigger=event_type, event_id=event_id, alert_id=alert.get("alert_id"), strategy=strategy,
        applications=apps, changes=changes, rollout=result,
        message=result.message if result else f"no change proposed ({strategy})",
    )
    return report_to_sentinel(runtime, outcome)


@flow(name="budget-response", flow_run_name=_alert_name("budget", "team_id"))
def budget_response(
    alert: dict[str, Any],
    event_type: str = "io.llm-platform.governance.budget-alert",
    event_id: str = "manual",
    approval_timeout_s: int = 24 * 3600,
    approval_poll_s: int = 10,
    watch_minutes: float = 30.0,
) -> ResponseOutcome:
    """A team past its budget threshold: propose the latest adopted savings for its applications."""
    runtime = Runtime.current()
    team = str(alert["team_id"])
    apps, changes = team_changes(runtime, team)
    result = _roll_out("budget", apps, changes, f"budget-{team}", approval_timeout_s=approval_timeout_s,
                       approval_poll_s=approval_poll_s, watch_minutes=watch_minutes)
    outcome = ResponseOutcome(
        trigger=event_type, event_id=event_id, alert_id=alert.get("alert_id"), strategy="cost_reduction",
        applications=apps, changes=changes, rollout=result,
        message=result.message if result else f"no adopted recommendation for {team}'s applications",
    )
    return report_to_sentinel(runtime, outcome)


def _data_name(kind: str, *keys: str) -> Callable[[], str]:
    """`<kind>-<subject>-<day>`, the subject being the first of `keys` the event's data has."""
    def name() -> str:
        data = flow_run.get_parameters().get("data") or {}
        context = data.get("context") or {}
        subject = next((v for k in keys if (v := data.get(k) or context.get(k))), None)
        return run_name(kind, [str(subject)] if subject else [])
    return name


@flow(name="model-update-check", flow_run_name=_data_name("model-update", "model_id"))
def model_update_check(data: dict[str, Any], event_id: str = "manual") -> ModelRecheck:
    """A model's Registry profile changed: the latest adopted recommendations and the live
    optimizations that use it are checked again; an invalidated one is announced."""
    runtime = Runtime.current()
    checked = recheck_model(runtime, str(data["model_id"]), event_id)
    deliver_events(runtime)
    return checked


@flow(name="policy-violation-response", flow_run_name=_data_name("violation", "application_id", "team_id"))
def policy_violation_response(data: dict[str, Any], event_id: str = "manual") -> ViolationResponse:
    """A Governance policy violation: a live change Governance now denies is rolled back at once."""
    runtime = Runtime.current()
    answered = stop_violating_changes(runtime, data)
    deliver_events(runtime)
    return answered


@flow(name="anomaly-resolved", flow_run_name=_data_name("resolved", "alert_id"))
def anomaly_resolved(data: dict[str, Any], event_id: str = "manual") -> str:
    """Sentinel says an anomaly is over: the response to it is closed."""
    return close_response(Runtime.current(), data, event_id)
