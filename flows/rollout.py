"""Approval-gated rollout: evidence, policy check, a person's approval, canary, guardrails,
then promotion or automatic restore. Nothing reaches the Orchestrator without approval."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed
from pydantic import TypeAdapter

from flows.approval import approval_gate
from flows.naming import rename_run, run_name
from optimizer.errors import OptimizerError
from optimizer.pipeline.rollout import approval_request
from optimizer.pipeline.runtime import Runtime
from optimizer.rollout import outcomes, plan
from optimizer.schemas.rollout import (
    ApprovalAnswer,
    Guardrails,
    ProposedChange,
    RolloutOutcome,
    RolloutStatus,
)
from tasks.nightly import deliver_events
from tasks.rollout import (
    apply_routing,
    audit_step,
    build_proposal,
    check_policies,
    record_rollout,
    start_experiment,
    watch_guardrails,
)

# The final state type of each outcome, for a person scanning the run list: green when the
# routing is as intended, red when a change was refused by policy or undone by its
# guardrails (what `optimization.failed` announces), grey when people did not let it out.
FINAL_STATES: dict[RolloutStatus, Callable[..., State[Any]]] = {
    "applied": Completed, "no_change": Completed,
    "rolled_back": Failed, "blocked": Failed,
    "rejected": Cancelled, "timed_out": Cancelled,
    "experimenting": Completed,
}


def final_state(outcome: RolloutOutcome) -> State[RolloutOutcome]:
    """The rollout's final state, named after its outcome (Promoted, Rolled back, ...)."""
    state: State[RolloutOutcome] = FINAL_STATES[outcome.status](
        name=outcome.title, message=outcome.message, data=outcome)
    return state


def outcome_of(state: State[Any]) -> RolloutOutcome:
    """The outcome of a rollout run from its final state, whatever its type: a rejection or a
    rollback is an answer, not an error. Call the flow with `return_state=True` and read it
    here. A run that failed for another reason raises that reason."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, RolloutOutcome):
        return result
    if isinstance(result, BaseException):
        raise result
    raise OptimizerError(f"the rollout ended {state.name} without an outcome: {state.message}")


def _run_name() -> str:
    """`rollout-<applications>-<day>` when the changes are given, `rollout-<requested_by>-<day>`
    until the proposal names them."""
    parameters = flow_run.get_parameters()
    changes = TypeAdapter(list[ProposedChange] | None).validate_python(parameters.get("changes"))
    subjects = [c.application_id for c in changes or []] or [str(parameters.get("requested_by", "nightly"))]
    return run_name("rollout", subjects)


@flow(name="rollout", flow_run_name=_run_name)
def rollout(
    changes: list[ProposedChange] | None = None,
    requested_by: str = "nightly-optimization",
    approval_timeout_s: int = 24 * 3600,
    approval_poll_s: int = 10,
    canary_percent: float = 10.0,
    watch_minutes: float = 30.0,
    guardrails: Guardrails | None = None,
    optimization_id: str | None = None,
    experiment_percent: float = 10.0,
    max_quality_drop: float = 0.02,
) -> State[RolloutOutcome]:
    """Roll `changes` out (by default the latest nightly run's adopted recommendations).

    The run ends in a state named after the outcome, with the RolloutOutcome as its result:
    read it with `outcome_of(rollout(..., return_state=True))`.

    With an `optimization_id` (a nightly proposal) the approved change goes live as an A/B
    experiment on `experiment_percent`% of the traffic, the rest its control, and the
    run ends there; the nightly analysis deploys or stops it, holding it to the quality margin
    `max_quality_drop` its change was certified with. Without one, it goes out as a
    canary watched for `watch_minutes` and is promoted or restored within the run.
    """
    runtime = Runtime.current()
    guardrails = guardrails or Guardrails()
    rollout_id = uuid.uuid4().hex[:12]
    proposal = build_proposal(runtime, changes)
    outcome = outcomes.proposed(rollout_id, proposal).model_copy(update={"optimization_id": optimization_id})
    if outcome.applications:
        rename_run(run_name("rollout", outcome.applications))

    def finish(result: RolloutOutcome, actor: str, action: str) -> State[RolloutOutcome]:
        recorded = record_rollout(runtime, result, actor, action)
        deliver_events(runtime)
        return final_state(recorded)

    if not proposal.diff:
        return finish(outcome, requested_by, "no_change")
    policy = [] if proposal.problems else check_policies(runtime, rollout_id, proposal.changes)
    outcome = outcomes.blocked(outcome, proposal.problems, policy)
    if outcome.status == "blocked":
        return finish(outcome, "governance", "blocked")

    request = approval_request(runtime, rollout_id, proposal, policy, canary_percent=canary_percent,
                               watch_minutes=watch_minutes, guardrails=guardrails,
                               experiment_percent=experiment_percent if optimization_id else None)
    gate = approval_gate.with_options(flow_run_name=run_name("approve", outcome.applications))(
        rollout_id, request.evidence, request.description, request.approvers, approval_timeout_s, approval_poll_s,
        return_state=True)
    answer = gate.result() if gate.is_completed() else ApprovalAnswer(decision="timeout")
    audit_step(runtime, rollout_id, answer.approver or "nobody", f"approval_{answer.decision}",
               {"comment": answer.comment, "at": answer.answered_at})
    outcome = outcomes.answered(outcome, answer, approval_timeout_s)
    if answer.decision != "approve":
        return finish(outcome, answer.approver or "nobody", outcome.status)

    if optimization_id is not None:
        experiment_id, version = start_experiment(runtime, optimization_id, proposal, experiment_percent,
                                                  max_quality_drop)
        return finish(outcomes.experimenting(outcome, experiment_id, version, experiment_percent),
                      answer.approver or "", "experiment_started")

    versions = outcomes.Versions.of(rollout_id, proposal.current.version)
    started = apply_routing(runtime, plan.canary(proposal.current, proposal.proposed, canary_percent), versions.canary)
    audit_step(runtime, rollout_id, "rollout", "canary_applied",
               {"version": versions.canary, "percent": canary_percent, "effective_time": started.effective_time})
    scopes = plan.watched_models(proposal.proposed, plan.changed_applications(proposal.diff))
    verdict = watch_guardrails(runtime, scopes, started.effective_time, watch_minutes,
                               guardrails.accepting_delays_of(proposal.changes))
    outcome = outcomes.judged(outcome, versions, verdict)
    if outcome.status == "applied":
        apply_routing(runtime, proposal.proposed, versions.promoted)
        return finish(outcome, answer.approver or "", "applied")
    apply_routing(runtime, proposal.current, versions.restored)
    return finish(outcome, "guardrails", "rolled_back")
