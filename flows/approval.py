"""The approval gate: a flow run that pauses with a typed form until an approver answers."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from optimizer.schemas.rollout import ApprovalAnswer


class RolloutApproval(RunInput):
    """The form the Prefect UI shows on a paused rollout."""

    decision: Literal["approve", "reject"] = Field(description="approve to roll the change out as a canary")
    approver: str = Field(description="your name, as it appears on the approver list")
    comment: str = Field(default="", description="why; kept in the audit log")


@flow(name="approval-gate", flow_run_name="approve-rollout-{rollout_id}")
def approval_gate(
    rollout_id: str, evidence: str, approvers: list[str], timeout_s: int, poll_s: int = 10
) -> ApprovalAnswer:
    """Wait for an approver's decision. Answers from anyone not on `approvers` are recorded
    and ignored. When nobody answers in time the pause times out: this run then fails
    ("never resumed"), and the rollout that called it treats that as a rejection."""
    logger = get_run_logger()
    create_markdown_artifact(key=f"rollout-{rollout_id}-evidence", markdown=evidence,
                             description="What this routing change does, and the evidence for it")
    deadline = time.monotonic() + timeout_s
    ignored: list[str] = []
    while True:
        remaining = max(1, int(deadline - time.monotonic()))
        answer = pause_flow_run(
            wait_for_input=RolloutApproval.with_initial_data(description=evidence, decision="reject", approver=""),
            timeout=remaining,
            poll_interval=poll_s,
        )
        if answer.approver.strip() in approvers:
            logger.info("%s answered %s", answer.approver, answer.decision)
            return ApprovalAnswer(decision=answer.decision, approver=answer.approver.strip(), comment=answer.comment,
                                  answered_at=datetime.now(UTC), ignored=ignored)
        ignored.append(f"{answer.approver or '(no name)'}: {answer.decision}")
        logger.warning("%r is not an approver (%s); still waiting", answer.approver, ", ".join(approvers))
