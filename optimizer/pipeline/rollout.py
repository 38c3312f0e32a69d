"""The rollout's steps: build the proposal, ask Governance, change the routing, watch the
canary, keep the record. The flow (`flows.rollout`) decides between them and pauses for
approval."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from optimizer import telemetry
from optimizer.clients import PlatformClients
from optimizer.errors import OptimizerError
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.rollout import plan
from optimizer.rollout.events import outcome_event
from optimizer.rollout.evidence import render_evidence, render_request
from optimizer.rollout.experiments import experiment_definition, optimization_after
from optimizer.rollout.guardrails import judge
from optimizer.schemas.governance import LLMRequestSpec, PolicyEvaluationRequest, RequestContext
from optimizer.schemas.rollout import (
    ApprovalRequest,
    GuardrailReading,
    Guardrails,
    GuardrailVerdict,
    PolicyCheck,
    Proposal,
    ProposedChange,
    RolloutOutcome,
)
from optimizer.schemas.routing import RoutingConfig, RoutingConfigApplied, RoutingConfigUpdate


def adopted_changes(runtime: Runtime, team_id: str | None = None, run_id: str | None = None) -> list[ProposedChange]:
    """The routing changes the adopted recommendations of run `run_id` (by default the latest
    nightly run) ask for (only `team_id`'s applications, if given), with the savings and
    Registry ids it recorded."""
    with runtime.warehouse() as store:
        adopted = store.results.latest_adopted(run_id)
        teams = store.reference.application_teams()
    changes = []
    for recorded in adopted:
        team = teams.get(recorded.entry.application_id)
        if team_id is not None and team != team_id:
            continue
        change = plan.change_from_recommendation(
            recorded.entry, team_id=team, monthly_savings_usd=recorded.monthly_savings_usd,
            recommendation_id=recorded.recommendation_id,
        )
        if change is not None:
            changes.append(change)
    return changes


def build_proposal(runtime: Runtime, changes: Sequence[ProposedChange] | None, *, log: Log = LOG) -> Proposal:
    """The routing configuration the changes lead to (by default, the latest nightly run's
    adopted recommendations), checked and diffed against the one in force."""
    if changes is None:
        changes = adopted_changes(runtime)
    with runtime.clients() as clients:
        current = clients.orchestrator.routing()
        known = [m.model_id for m in clients.registry.list_models().models]
    proposed = plan.apply_changes(current, changes)
    proposal = Proposal(changes=list(changes), current=current, proposed=proposed,
                        diff=plan.diff(current, proposed), problems=plan.validate(proposed, known))
    log.info("proposal against %s: %d change(s), %d rule(s) differ, %d problem(s)",
             current.version, len(proposal.changes), len(proposal.diff), len(proposal.problems))
    return proposal


def check_policies(
    runtime: Runtime, rollout_id: str, changes: Sequence[ProposedChange], *, log: Log = LOG
) -> list[PolicyCheck]:
    """The verdict of Governance (or the policy engine) on every model each change would send
    an application's traffic to."""
    checks = []
    with runtime.clients() as clients:
        providers = {m.model_id: m.provider for m in clients.registry.list_models().models}
        for change in changes:
            for model in dict.fromkeys(change.models()):
                verdict = clients.evaluate_policy(PolicyEvaluationRequest(
                    request_id=f"rollout-{rollout_id}-{change.application_id}-{model}",
                    context=RequestContext(team_id=change.team_id, application_id=change.application_id,
                                           environment=runtime.settings.environment),
                    llm_request=LLMRequestSpec(model=model),
                ), provider=providers.get(model))
                checks.append(PolicyCheck(
                    application_id=change.application_id, model=model, allowed=not verdict.denials(),
                    blocking=verdict.denials(), warnings=verdict.cautions(),
                ))
    log.info("policy checks: %d, blocked: %d", len(checks), sum(not c.allowed for c in checks))
    return checks


def approval_request(
    runtime: Runtime, rollout_id: str, proposal: Proposal, policy: Sequence[PolicyCheck], *,
    canary_percent: float, watch_minutes: float, guardrails: Guardrails, experiment_percent: float | None = None,
) -> ApprovalRequest:
    """The evidence and the form for the approvers the settings name; without any, nobody
    could approve, which is a configuration error rather than a rejection."""
    approvers = runtime.settings.approvers
    if not approvers:
        raise OptimizerError("no approvers configured: set AUTO_OPTIMIZER_APPROVERS to who may approve rollouts")
    current = proposal.current.version
    return ApprovalRequest(
        evidence=render_evidence(rollout_id=rollout_id, changes=proposal.changes, diff=proposal.diff, policy=policy,
                                 current_version=current, canary_percent=canary_percent, watch_minutes=watch_minutes,
                                 guardrails=guardrails, approvers=approvers, experiment_percent=experiment_percent),
        description=render_request(rollout_id=rollout_id, changes=proposal.changes, current_version=current,
                                   approvers=approvers),
        approvers=list(approvers),
    )


# Read-modify-write of the routing by the rollouts of one process, one at a time.
_ROUTING_WRITES = threading.Lock()


def start_experiment(
    runtime: Runtime, optimization_id: str, proposal: Proposal, percent: float, max_quality_drop: float, *,
    log: Log = LOG,
) -> tuple[str, str]:
    """The proposal live as an A/B experiment: its arms in a new routing version, then the
    experiment registered in the Registry from the moment they took effect. Returns the
    experiment's id and the routing version."""
    experiment_id, version = f"exp-{optimization_id}", f"{optimization_id}-experiment"
    with _ROUTING_WRITES, runtime.clients() as clients:
        # The routing as it is now, not as it was when the proposal was made: other approved
        # changes may have gone live since, and their arms must stay.
        current = clients.orchestrator.routing()
        config = plan.experiment(current, plan.apply_changes(current, proposal.changes), percent,
                                 optimization_id=optimization_id, experiment_id=experiment_id)
        applied = apply_routing(runtime, config, version, log=log)
    with runtime.clients() as clients:
        clients.registry.record_experiment(experiment_definition(
            experiment_id, optimization_id, proposal.changes, percent, applied.effective_time, max_quality_drop))
    log.info("experiment %s live from %s on %g%% of the traffic", experiment_id, applied.effective_time, percent)
    return experiment_id, version


def apply_routing(runtime: Runtime, config: RoutingConfig, version: str, *, log: Log = LOG) -> RoutingConfigApplied:
    with runtime.clients() as clients:
        applied = clients.orchestrator.update_routing(
            RoutingConfigUpdate(version=version, routing_rules=config.routing_rules,
                                default_policy=config.default_policy))
    log.info("routing version %s is %s", applied.version, applied.status)
    return applied


def guardrail_reading(
    clients: PlatformClients, application: str, window: Literal["baseline", "canary"], start: datetime,
    end: datetime, *, models: Sequence[str] = (), variant: tuple[str, str] | None = None,
) -> GuardrailReading:
    """An application's traffic over [start, end) from the Observatory, as a guardrail reads
    it: all of it, that of some models, or that of one experiment variant."""
    stats = clients.observatory.traffic(start, end, application=application, models=models, variant=variant)
    return GuardrailReading(application_id=application, window=window, requests=stats.requests,
                            error_rate=stats.error_rate, p95_latency_ms=stats.p95_latency_ms,
                            quality=stats.quality, evaluated=stats.evaluated or 0)


def watch_guardrails(
    runtime: Runtime, scopes: Mapping[str, Sequence[str]], started: datetime, watch_minutes: float,
    guardrails: Guardrails, baseline_minutes: float = 60.0, poll_seconds: float = 2.0, *, log: Log = LOG,
) -> GuardrailVerdict:
    """Wait until the Observatory holds `watch_minutes` of canary traffic (by the platform's
    clock), then compare each application with the hour before the canary. `scopes` maps
    each application to the models its changed routing sends traffic to (what an Observatory
    without an application dimension is asked about)."""
    end = started + timedelta(minutes=watch_minutes)
    deadline = time.monotonic() + watch_minutes * 60 * 1.5 + 120
    with runtime.clients() as clients, telemetry.operation("watch.guardrails", "rollout"):
        while True:
            covered = clients.observatory.data_until(started, end)
            if covered >= end or time.monotonic() > deadline:
                break
            log.info("canary watched up to %s of %s", covered.isoformat(), end.isoformat())
            time.sleep(poll_seconds)

        baseline = {a: guardrail_reading(clients, a, "baseline", started - timedelta(minutes=baseline_minutes),
                                         started, models=scopes[a]) for a in scopes}
        canary = {a: guardrail_reading(clients, a, "canary", started, end, models=scopes[a]) for a in scopes}
    verdict = judge(baseline, canary, guardrails)
    log.info("guardrails: %s", "healthy" if verdict.healthy else "; ".join(verdict.breaches))
    for note in verdict.unchecked:
        log.warning(note)
    return verdict


def audit(runtime: Runtime, rollout_id: str, actor: str, action: str, details: dict[str, object]) -> None:
    with runtime.warehouse() as store:
        store.audit.record(actor, action, f"rollout/{rollout_id}", details)


def record_rollout(
    runtime: Runtime, outcome: RolloutOutcome, actor: str, action: str, flow_run_id: str, *, log: Log = LOG
) -> RolloutOutcome:
    """The outcome into the rollouts table, a line into the audit log, an event into the outbox."""
    with runtime.warehouse() as store:
        store.rollouts.save(outcome, flow_run_id)
        store.audit.record(actor, action, f"rollout/{outcome.rollout_id}", {
            "status": outcome.status, "message": outcome.message, "previous_version": outcome.previous_version,
            "canary_version": outcome.canary_version, "applied_version": outcome.applied_version,
            "restored_version": outcome.restored_version,
            "comment": outcome.approval.comment if outcome.approval else None,
        })
        event = outcome_event(outcome, datetime.now(UTC))
        if event is not None:
            store.outbox.queue([event])
        optimization = store.optimizations.get(outcome.optimization_id) if outcome.optimization_id else None
        if optimization is not None:
            store.optimizations.save([optimization_after(optimization, outcome, datetime.now(UTC))])
    log.info("rollout %s: %s (%s)", outcome.rollout_id, outcome.status, outcome.message)
    return outcome
