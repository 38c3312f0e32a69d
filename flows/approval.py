"""The approval gate: a flow run that pauses with a typed form until an approver answers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field, create_model

from optimizer.schemas.rollout import ApprovalAnswer


class RolloutApproval(RunInput):
    """The form the Prefect UI shows on a paused rollout. Both choices are required and have
    no default, so nobody approves or rejects by leaving the form as it came."""

    decision: Literal["approve", "reject"] = Field(
        title="Decision", description="approve: roll the change out as a canary; reject: leave routing as it is")
    approver: str = Field(title="Approver", description="your name, from the approver list")
    comment: str = Field(default="", title="Comment", description="why; kept in the audit log")


def approval_form(approvers: Sequence[str], description: str) -> type[RolloutApproval]:
    """The form for one rollout, with `approver` one of `approvers` (an enum in its JSON
    schema): the Prefect API then refuses anyone else's answer with a reason, and the run
    stays paused, instead of the flow having to notice and wait again."""
    names: Any = Literal.__getitem__(tuple(approvers))
    form = create_model(RolloutApproval.__name__, __base__=RolloutApproval,
                        approver=(names, Field(title="Approver", description="your name (only these may answer)")))
    return form.with_initial_data(description=description)


@flow(name="approval-gate")
def approval_gate(
    rollout_id: str, evidence: str, request: str, approvers: list[str], timeout_s: int, poll_s: int = 10
) -> ApprovalAnswer:
    """Publish the evidence and wait for an approver's decision on the form (`request` is
    its description). When nobody answers in time the pause times out: Prefect then fails
    this run ("never resumed"), and the rollout that called it ends as Timed out."""
    key = f"rollout-{rollout_id}-evidence"
    artifact_id = create_markdown_artifact(key=key, markdown=evidence,
                                           description="What this routing change does, and the evidence for it")
    # A link relative to the UI that shows the form, so it works wherever the server is.
    request += (f"\nThe diff, Governance's verdicts and the guardrails: [{key}](/artifacts/artifact/{artifact_id}) "
                "(also under this run's Artifacts).\n")
    answer = pause_flow_run(wait_for_input=approval_form(approvers, request), timeout=timeout_s,
                            poll_interval=poll_s)
    get_run_logger().info("%s answered %s", answer.approver, answer.decision)
    return ApprovalAnswer(decision=answer.decision, approver=answer.approver, comment=answer.comment,
                          answered_at=datetime.now(UTC))
