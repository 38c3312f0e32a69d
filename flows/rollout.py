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
from optimizer.pipeline.runtime import Runtime
from optimizer.rollout import plan
from optimizer.rollout.evidence import render_evidence, render_request
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
    watch_guardrails,
)

# The final state type of each outcome, for a person scanning the run list: green when the
# routing is as intended, red when a change was refused by policy or undone by its
# guardrails (what `optimization.failed` announces), grey when people did not let it out.
FINAL_STATES: dict[RolloutStatus, Callable[..., State[Any]]] = {
    "applied": Completed, "no_change": Completed,
    "rolled_back": Failed, "blocked": Failed,
    "rejected": Cancelled, "timed_out": Cancelled,
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
) -> State[RolloutOutcome]:
    """Roll `changes` out (by default the latest nightly run's adopted recommendations).

    The run ends in a state named after the outcome, with the RolloutOutcome as its result:
    read it with `outcome_of(rollout(..., return_state=True))`.
    """
    runtime = Runtime.current()
    approvers = runtime.settings.approvers
    guardrails = guardrails or Guardrails()
    rollout_id = uuid.uuid4().hex[:12]
    proposal = build_proposal(runtime, changes)
    outcome = RolloutOutcome(rollout_id=rollout_id, status="no_change", message="nothing to change",
                             changes=proposal.changes, diff=proposal.diff, previous_version=proposal.current.version)
    if outcome.applications:
        rename_run(run_name("rollout", outcome.applications))

    def finish(result: RolloutOutcome, actor: str, action: str) -> State[RolloutOutcome]:
        recorded = record_rollout(runtime, result, actor, action)
        deliver_events(runtime)
        return final_state(recorded)

    if not proposal.diff:
        return finish(outcome, requested_by, "no_change")
    policy = [] if proposal.problems else check_policies(runtime, rollout_id, proposal.changes)
    blocked = proposal.problems + [v for check in policy for v in check.blocking]
    if blocked:
        return finish(outcome.model_copy(update={"status": "blocked", "policy": policy,
                                                 "message": "; ".join(blocked)}), "governance", "blocked")
    if not approvers:
        raise OptimizerError("no approvers configured: set AUTO_OPTIMIZER_APPROVERS to who may approve rollouts")
    evidence = render_evidence(rollout_id=rollout_id, changes=proposal.changes, diff=proposal.diff, policy=policy,
                               current_version=proposal.current.version, canary_percent=canary_percent,
                               watch_minutes=watch_minutes, guardrails=guardrails, approvers=approvers)
    request = render_request(rollout_id=rollout_id, changes=proposal.changes,
                             current_version=proposal.current.version, approvers=approvers)
    gate = approval_gate.with_options(flow_run_name=run_name("approve", outcome.applications))(
        rollout_id, evidence, request, approvers, approval_timeout_s, approval_poll_s, return_state=True)
    answer = gate.result() if gate.is_completed() else ApprovalAnswer(decision="timeout")
    audit_step(runtime, rollout_id, answer.approver or "nobody", f"approval_{answer.decision}",
               {"comment": answer.comment, "at": answer.answered_at})
    outcome = outcome.model_copy(update={"policy": policy, "approval": answer})
    if answer.decision != "approve":
        status = "timed_out" if answer.decision == "timeout" else "rejected"
        message = (f"no approval within {approval_timeout_s} s: treated as rejected" if status == "timed_out"
                   else f"rejected by {answer.approver}")
        return finish(outcome.model_copy(update={"status": status, "message": message}),
                      answer.approver or "nobody", status)

    canary_version, final_version = f"opt-{rollout_id}-canary", f"opt-{rollout_id}"
    started = apply_routing(runtime, plan.canary(proposal.current, proposal.proposed, canary_percent), canary_version)
    audit_step(runtime, rollout_id, "rollout", "canary_applied",
               {"version": canary_version, "percent": canary_percent, "effective_time": started.effective_time})
    outcome = outcome.model_copy(update={"canary_version": canary_version})
    scopes = plan.watched_models(proposal.proposed, plan.changed_applications(proposal.diff))
    verdict = watch_guardrails(runtime, scopes, started.effective_time, watch_minutes, guardrails)
    if verdict.healthy:
        apply_routing(runtime, proposal.proposed, final_version)
        return finish(outcome.model_copy(update={"status": "applied", "applied_version": final_version,
                                                 "guardrails": verdict,
                                                 "message": "; ".join([f"promoted {final_version}", *verdict.unchecked])}),
                      answer.approver or "", "applied")
    restored = f"restore-{proposal.current.version}-{rollout_id}"
    apply_routing(runtime, proposal.current, restored)
    return finish(outcome.model_copy(update={"status": "rolled_back", "restored_version": restored,
                                             "guardrails": verdict, "message": "; ".join(verdict.breaches)}),
                  "guardrails", "rolled_back")
