"""How a rollout's outcome moves from proposal to its end: pure steps the rollout flow
takes in order, each returning the outcome as it now stands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optimizer.schemas.rollout import (
    ApprovalAnswer,
    GuardrailVerdict,
    PolicyCheck,
    Proposal,
    RolloutOutcome,
)


@dataclass(frozen=True)
class Versions:
    """The routing versions one rollout may create: its canary, the promoted rules, and the
    restored ones. New versions only: a routing version is never changed."""

    canary: str
    promoted: str
    restored: str

    @classmethod
    def of(cls, rollout_id: str, current_version: str) -> Versions:
        return cls(canary=f"opt-{rollout_id}-canary", promoted=f"opt-{rollout_id}",
                   restored=f"restore-{current_version}-{rollout_id}")


def proposed(rollout_id: str, proposal: Proposal) -> RolloutOutcome:
    """The outcome before anything happened: nothing to change, unless the proposal differs."""
    return RolloutOutcome(rollout_id=rollout_id, status="no_change", message="nothing to change",
                          changes=proposal.changes, diff=proposal.diff, previous_version=proposal.current.version)


def blocked(outcome: RolloutOutcome, problems: Sequence[str], policy: Sequence[PolicyCheck]) -> RolloutOutcome:
    """With Governance's verdicts; `blocked` when the proposal is invalid or a policy says no."""
    reasons = [*problems, *(v for check in policy for v in check.blocking)]
    update: dict[str, object] = {"policy": list(policy)}
    if reasons:
        update |= {"status": "blocked", "message": "; ".join(reasons)}
    return outcome.model_copy(update=update)


def answered(outcome: RolloutOutcome, answer: ApprovalAnswer, timeout_s: int) -> RolloutOutcome:
    """With the approver's answer; `rejected`, or `timed_out` when nobody answered in time
    (treated as a rejection). An approval leaves the status to the canary."""
    outcome = outcome.model_copy(update={"approval": answer})
    if answer.decision == "approve":
        return outcome
    if answer.decision == "timeout":
        return outcome.model_copy(update={"status": "timed_out",
                                          "message": f"no approval within {timeout_s} s: treated as rejected"})
    return outcome.model_copy(update={"status": "rejected", "message": f"rejected by {answer.approver}"})


def experimenting(outcome: RolloutOutcome, experiment_id: str, version: str, percent: float) -> RolloutOutcome:
    """Approved and live as an experiment: the nightly analysis decides from here."""
    return outcome.model_copy(update={
        "status": "experimenting", "experiment_id": experiment_id, "experiment_version": version,
        "experiment_percent": percent,
        "message": f"live as experiment {experiment_id} on {percent:g}% of the traffic, the rest its "
                   "control; each night's analysis deploys, stops or continues it",
    })


def judged(outcome: RolloutOutcome, versions: Versions, verdict: GuardrailVerdict) -> RolloutOutcome:
    """After the canary: `applied` as the promoted version when its guardrails held, else
    `rolled_back` to a restored copy of the rules it replaced."""
    outcome = outcome.model_copy(update={"canary_version": versions.canary, "guardrails": verdict})
    if verdict.healthy:
        return outcome.model_copy(update={"status": "applied", "applied_version": versions.promoted,
                                          "message": "; ".join([f"promoted {versions.promoted}", *verdict.unchecked])})
    return outcome.model_copy(update={"status": "rolled_back", "restored_version": versions.restored,
                                      "message": "; ".join(verdict.breaches)})
