"""Approval-gated rollout: evidence, policy check, a person's approval, canary, guardrails,
then promotion or automatic restore. Nothing reaches the Orchestrator without approval."""

from __future__ import annotations

import uuid

from prefect import flow

from flows.approval import approval_gate
from optimizer.errors import OptimizerError
from optimizer.rollout import plan
from optimizer.rollout.evidence import render_evidence
from optimizer.schemas.rollout import ApprovalAnswer, Guardrails, ProposedChange, RolloutOutcome
from tasks._common import settings
from tasks.publish import deliver_events
from tasks.rollout import (
    apply_routing,
    audit_step,
    build_proposal,
    check_policies,
    record_rollout,
    watch_guardrails,
)


@flow(name="rollout", flow_run_name="rollout-{requested_by}")
def rollout(
    changes: list[ProposedChange] | None = None,
    requested_by: str = "nightly-optimization",
    approval_timeout_s: int = 24 * 3600,
    approval_poll_s: int = 10,
    canary_percent: float = 10.0,
    watch_minutes: float = 30.0,
    guardrails: Guardrails | None = None,
) -> RolloutOutcome:
    """Roll `changes` out (by default the latest nightly run's adopted recommendations)."""
    config = settings()
    guardrails = guardrails or Guardrails()
    rollout_id = uuid.uuid4().hex[:12]
    proposal = build_proposal(config.warehouse, changes)
    outcome = RolloutOutcome(rollout_id=rollout_id, status="no_change", message="nothing to change",
                             changes=proposal.changes, diff=proposal.diff, previous_version=proposal.current.version)

    def finish(result: RolloutOutcome, actor: str, action: str) -> RolloutOutcome:
        recorded = record_rollout(config.warehouse, result, actor, action)
        deliver_events(config.warehouse)
        return recorded

    if not proposal.diff:
        return finish(outcome, requested_by, "no_change")
    policy = [] if proposal.problems else check_policies(rollout_id, proposal.changes)
    blocked = proposal.problems + [v for check in policy for v in check.blocking]
    if blocked:
        return finish(outcome.model_copy(update={"status": "blocked", "policy": policy,
                                                 "message": "; ".join(blocked)}), "governance", "blocked")
    if not config.approvers:
        raise OptimizerError("no approvers configured: set AUTO_OPTIMIZER_APPROVERS to who may approve rollouts")
    evidence = render_evidence(rollout_id=rollout_id, changes=proposal.changes, diff=proposal.diff, policy=policy,
                               current_version=proposal.current.version, canary_percent=canary_percent,
                               watch_minutes=watch_minutes, guardrails=guardrails, approvers=config.approvers)
    gate = approval_gate(rollout_id, evidence, config.approvers, approval_timeout_s, approval_poll_s,
                         return_state=True)
    answer = gate.result() if gate.is_completed() else ApprovalAnswer(decision="timeout")
    audit_step(config.warehouse, rollout_id, answer.approver or "nobody", f"approval_{answer.decision}",
               {"comment": answer.comment, "ignored": answer.ignored, "at": answer.answered_at})
    outcome = outcome.model_copy(update={"policy": policy, "approval": answer})
    if answer.decision != "approve":
        status = "timed_out" if answer.decision == "timeout" else "rejected"
        message = (f"no approval within {approval_timeout_s} s: treated as rejected" if status == "timed_out"
                   else f"rejected by {answer.approver}")
        return finish(outcome.model_copy(update={"status": status, "message": message}),
                      answer.approver or "nobody", status)

    canary_version, final_version = f"opt-{rollout_id}-canary", f"opt-{rollout_id}"
    started = apply_routing(plan.canary(proposal.current, proposal.proposed, canary_percent), canary_version)
    audit_step(config.warehouse, rollout_id, "rollout", "canary_applied",
               {"version": canary_version, "percent": canary_percent, "effective_time": started.effective_time})
    outcome = outcome.model_copy(update={"canary_version": canary_version})
    scopes = plan.watched_models(proposal.proposed, plan.changed_applications(proposal.diff))
    verdict = watch_guardrails(scopes, started.effective_time, watch_minutes, guardrails)
    if verdict.healthy:
        apply_routing(proposal.proposed, final_version)
        return finish(outcome.model_copy(update={"status": "applied", "applied_version": final_version,
                                                 "guardrails": verdict,
                                                 "message": "; ".join([f"promoted {final_version}", *verdict.unchecked])}),
                      answer.approver or "", "applied")
    restored = f"restore-{proposal.current.version}-{rollout_id}"
    apply_routing(proposal.current, restored)
    return finish(outcome.model_copy(update={"status": "rolled_back", "restored_version": restored,
                                             "guardrails": verdict, "message": "; ".join(verdict.breaches)}),
                  "guardrails", "rolled_back")
