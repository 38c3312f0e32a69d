"""The platform telling the optimizer that something it relied on changed: a model's Registry
profile, a Governance policy a live change now breaks, an anomaly that is over."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from optimizer.errors import PlatformRequestError
from optimizer.pipeline.loop import stop_optimization
from optimizer.pipeline.rollout import check_policies
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.rollout import plan
from optimizer.rollout.events import optimization_type
from optimizer.rollout.revalidation import revalidate
from optimizer.schemas.analysis import (
    BatchingRecommendation,
    CachingRecommendation,
    CascadeRecommendation,
    RecordedRecommendation,
)
from optimizer.schemas.events import OPTIMIZATION_FAILED, SOURCE, OutgoingEvent
from optimizer.schemas.optimizations import LIVE
from optimizer.schemas.registry import ModelProfile
from optimizer.schemas.rollout import ModelRecheck, ProposedChange, Revalidation, ViolationResponse

# Violations of a budget are answered by the budget response (savings), never by undoing a
# change that saves money.
BUDGET_VIOLATIONS = frozenset({"budget_exceeded", "cost_limit"})


def _models_of(recorded: RecordedRecommendation) -> set[str]:
    entry = recorded.entry
    if isinstance(entry, CascadeRecommendation):
        return {m for m in (entry.primary_model, entry.fallback_model) if m}
    if isinstance(entry, BatchingRecommendation):
        return set(entry.models)
    if isinstance(entry, CachingRecommendation):  # repeats the application's own answers, whatever the model
        return set()
    return {entry.model} if entry.model else set()


def _invalidated_event(check: Revalidation, model_id: str, event_id: str, now: datetime) -> OutgoingEvent:
    name = check.subject.replace("/", "-")
    return OutgoingEvent(
        id=f"evt-{name}-model-updated-{event_id}", type=OPTIMIZATION_FAILED, source=SOURCE, subject=check.subject,
        time=now, data={"optimization_id": check.subject.split("/", 1)[1],
                        "optimization_type": optimization_type([ProposedChange(application_id=check.application_id,
                                                                               kind=check.kind)]),
                        "status": "invalidated", "reason": "model_updated", "model_id": model_id,
                        "details": check.reasons, "metadata": {"application_id": check.application_id,
                                                               "model": model_id}})


def recheck_model(runtime: Runtime, model_id: str, event_id: str, *, log: Log = LOG) -> ModelRecheck:
    """Every adopted recommendation of the latest night and every live optimization that sends
    traffic to `model_id`, checked against its new Registry profile; each verdict audited, an
    invalidated one announced (`optimization.failed`, reason `model_updated`), and the
    warehouse's copy of the profile replaced so the next analysis prices with it."""
    with runtime.clients() as clients:
        try:
            after: ModelProfile | None = clients.registry.get_model(model_id)
        except PlatformRequestError as exc:
            if exc.status_code != 404:
                raise
            after = None
    checked: list[Revalidation] = []
    with runtime.warehouse() as store:
        before = next((p for p in store.reference.model_profiles() if p.model_id == model_id), None)
        teams = store.reference.application_teams()
        for recorded in store.results.latest_adopted():
            if model_id not in _models_of(recorded):
                continue
            change = plan.change_from_recommendation(
                recorded.entry, team_id=teams.get(recorded.entry.application_id),
                monthly_savings_usd=recorded.monthly_savings_usd, recommendation_id=recorded.recommendation_id)
            if change is not None:
                checked.append(revalidate(change, f"recommendation/{recorded.recommendation_id}", model_id,
                                          before, after))
        for optimization in store.optimizations.all(*LIVE):
            checked += [revalidate(c, f"optimization/{optimization.optimization_id}", model_id, before, after)
                        for c in optimization.changes if model_id in c.models()]
        now = datetime.now(UTC)
        for check in checked:
            store.audit.record("registry", f"recheck:{check.verdict}", check.subject,
                               {"model_id": model_id, "event_id": event_id, "reasons": check.reasons,
                                "revised_monthly_savings_usd": check.revised_monthly_savings_usd})
        store.outbox.queue([_invalidated_event(c, model_id, event_id, now) for c in checked
                            if c.verdict == "invalidated"])
        if after is not None:
            store.reference.update_model(after)
    counts = {v: sum(c.verdict == v for c in checked) for v in ("invalidated", "savings_changed", "still_valid")}
    message = (f"{model_id}: {len(checked)} recommendation(s) or optimization(s) re-checked: "
               + ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items()))
    log.info(message)
    return ModelRecheck(model_id=model_id, status=after.status if after else None, checked=checked, message=message)


def stop_violating_changes(runtime: Runtime, violation: Mapping[str, Any], *, log: Log = LOG) -> ViolationResponse:
    """Every live optimization of the application (else the team) the violation names,
    evaluated by Governance again: one it now denies is rolled back at once (stopping needs no
    approval, only an audit entry, actor `governance`); a budget violation stops nothing."""
    context = violation.get("context") or {}
    response = ViolationResponse(violation_id=str(violation["violation_id"]), policy_id=str(violation["policy_id"]))
    with runtime.warehouse() as store:
        teams = store.reference.application_teams()
        live = store.optimizations.all(*LIVE)
    application, team = context.get("application_id"), context.get("team_id")
    apps = [application] if application else sorted(a for a, t in teams.items() if team and t == team)
    response.applications = apps
    if violation.get("violation_type") in BUDGET_VIOLATIONS:
        response.message = "a budget violation: answered by the budget response, no live change stopped"
        log.info(response.message)
        return response
    for optimization in [o for o in live if o.application_id in apps]:
        checks = check_policies(runtime, f"violation-{response.violation_id}", optimization.changes, log=log)
        denials = [reason for check in checks for reason in check.blocking]
        if not denials:
            response.kept.append(optimization.optimization_id)
            continue
        reason = f"Governance policy violation {response.violation_id} ({response.policy_id}): " + "; ".join(denials)
        response.stopped.append(stop_optimization(runtime, optimization.optimization_id, reason, actor="governance",
                                                  log=log))
    response.message = (f"stopped {len(response.stopped)} live change(s), kept {len(response.kept)}"
                        if response.stopped or response.kept else f"no live change for {apps or 'no application'}")
    log.info("violation %s: %s", response.violation_id, response.message)
    return response


def close_response(runtime: Runtime, resolved: Mapping[str, Any], event_id: str, *, log: Log = LOG) -> str:
    """Mark the response to a resolved anomaly closed (an audit entry on `anomaly/<alert id>`,
    after the `responded` entry the anomaly response left)."""
    alert_id = str(resolved["alert_id"])
    subject = f"anomaly/{alert_id}"
    with runtime.warehouse() as store:
        history = store.audit.entries(subject)
        if any(e["action"] == "closed" for e in history):
            return f"the response to {alert_id} was closed before"
        store.audit.record("sentinel", "closed", subject, {"event_id": event_id,
                                                          "resolved_at": resolved.get("resolved_at"),
                                                          "resolution": resolved.get("resolution")})
    message = (f"the response to {alert_id} is closed" if any(e["action"] == "responded" for e in history)
               else f"{alert_id} resolved before any response: recorded closed")
    log.info(message)
    return message
