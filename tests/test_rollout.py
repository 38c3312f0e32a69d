"""Approval-gated rollouts against the sandbox under a real Prefect API: approve, reject,
time out, a guardrail breach during the canary, and a policy violation; each ends in a
state named after its outcome, under a run named after its applications and day."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.client.schemas.responses import SetStateStatus

from flows.rollout import outcome_of, rollout
from optimizer.errors import OptimizerError
from optimizer.pipeline.runtime import configured
from optimizer.sandbox import SandboxServer
from optimizer.sandbox.world import Incident
from optimizer.schemas.rollout import Guardrails, ProposedChange, RolloutOutcome
from optimizer.settings import Settings
from tests.conftest import in_thread, sandbox_config, settings_for, speaking

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]

CASCADE = ProposedChange(
    application_id="support-bot", kind="model_cascade", team_id="team-support",
    primary_model="gpt-4o-mini-2024-07-18", fallback_model="gpt-4o-2024-08-06", confidence_threshold=0.9,
    monthly_savings_usd=112.8, quality_change=-0.017, quality_change_ci=(-0.019, -0.015), reason="shadow pairs",
)
# Fast enough to watch a 15-minute canary in seconds; loose latency tolerance for small canaries.
GUARDRAILS = Guardrails(max_p95_latency_increase_pct=60)


@pytest.fixture
def api_style(request: pytest.FixtureRequest) -> str:
    """The APIs the sandbox serves and the optimizer speaks; tests opt into both styles."""
    return str(getattr(request, "param", "spec"))


@pytest.fixture
def busy_sandbox(api_style: str) -> Iterator[SandboxServer]:
    # A sandbox of one style only: the optimizer must really speak it.
    with SandboxServer(sandbox_config(requests_per_day=30_000, clock_speed=240, api_style=api_style)) as server:
        yield server


@pytest.fixture
def approvers(tmp_path: Path, busy_sandbox: SandboxServer, api_style: str) -> Iterator[Settings]:
    """Settings with alice and bob as approvers, chosen for the test's flows."""
    settings = settings_for(busy_sandbox, tmp_path, approvers=["alice", "bob"], **speaking(api_style))
    with configured(settings):
        yield settings


BOTH_STYLES = pytest.mark.parametrize("api_style", ["spec", "upstream"], indirect=True)


@dataclass
class Running:
    result: dict[str, Any] = field(default_factory=dict)
    thread: threading.Thread | None = None

    def outcome(self, timeout: float = 180) -> RolloutOutcome:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the rollout did not finish"
        if "error" in self.result:
            raise self.result["error"]
        return outcome_of(self.state)

    @property
    def state(self) -> State[Any]:
        """The rollout run's final state (after `outcome`)."""
        state: State[Any] = self.result["state"]
        return state


def start(**parameters: Any) -> Running:
    running = Running()
    parameters.setdefault("approval_poll_s", 1)

    def target() -> None:
        try:
            running.result["state"] = rollout(**parameters, return_state=True)
        except BaseException as exc:  # handed to the test thread
            running.result["error"] = exc

    running.thread = in_thread(target)
    return running


async def _answer(run_input: dict[str, Any], timeout: float) -> tuple[SetStateStatus, str]:
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            paused = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
            gates = [r for r in paused if r.name.startswith("approve-")]
            if gates:
                result = await client.resume_flow_run(gates[0].id, run_input=run_input)
                reason = str(getattr(result.details, "reason", ""))
                if "schema not found" not in reason:  # the form is saved just after the pause
                    return result.status, reason
            await asyncio.sleep(0.5)
    raise AssertionError("no rollout was waiting for approval")


def answer(decision: str, approver: str, comment: str = "", timeout: float = 90) -> str:
    """Answer the approval form as a person does in the Prefect UI (which resumes the run
    with the form's input); return the reason when the answer is refused."""
    status, reason = asyncio.run(_answer({"decision": decision, "approver": approver, "comment": comment}, timeout))
    assert status == SetStateStatus.ACCEPT, reason
    return reason


def refused(decision: str, approver: str, timeout: float = 90) -> str:
    """Answer as someone the form does not accept; return why the API refused it."""
    status, reason = asyncio.run(_answer({"decision": decision, "approver": approver}, timeout))
    assert status == SetStateStatus.REJECT, f"the API accepted {approver}'s answer"
    return reason


def flow_run(state: State[Any]) -> FlowRun:
    with get_client(sync_client=True) as client:
        assert state.state_details.flow_run_id is not None
        return client.read_flow_run(state.state_details.flow_run_id)


def gates_of(run: FlowRun) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])))


def result_artifact(rollout_id: str) -> str:
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"rollout-{rollout_id}-result"])))
    return str(artifact.data)


def ended_as(running: Running, name: str, kind: StateType) -> None:
    assert (running.state.name, running.state.type) == (name, kind)


def audit(settings: Settings, rollout_id: str) -> list[tuple[str, str]]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as db:
        rows = db.execute("SELECT actor, action FROM audit_log WHERE subject = ? ORDER BY occurred_at",
                          [f"rollout/{rollout_id}"]).fetchall()
    return [(str(a), str(b)) for a, b in rows]


@BOTH_STYLES
def test_approved_change_goes_out_as_canary_then_is_promoted(
    approvers: Settings, busy_sandbox: SandboxServer, api_style: str
) -> None:
    running = start(changes=[CASCADE], requested_by="test", watch_minutes=15, guardrails=GUARDRAILS)
    # Refused by the API, with the reason the UI shows; the run stays paused for a real approver.
    assert "'mallory' is not one of ['alice', 'bob']" in refused("approve", "mallory")
    answer("approve", "alice", "shadow pairs look good")
    outcome = running.outcome()
    assert outcome.status == "applied", outcome.message
    ended_as(running, "Promoted", StateType.COMPLETED)
    run = flow_run(running.state)
    day = run.expected_start_time.astimezone(UTC).date() if run.expected_start_time else None
    assert run.name == f"rollout-support-bot-{day}"
    assert [g.name for g in gates_of(run)] == [f"approve-support-bot-{day}"]
    result = result_artifact(outcome.rollout_id)
    assert result.startswith(f"# Rollout {outcome.rollout_id}: Promoted") and "alice (approve)" in result
    assert f"opt-{outcome.rollout_id}" in result and "| support-bot | canary |" in result
    assert outcome.guardrails is not None
    # Too few scored requests in a 15-minute canary (and none at all where the analytics API has
    # no quality metric): the promotion must not read as if quality was watched.
    assert any("support-bot: quality not checked" in note for note in outcome.guardrails.unchecked)
    assert "quality not checked" in outcome.message
    scored = [r.evaluated for r in outcome.guardrails.readings if r.window == "canary"]
    assert (max(scored) == 0) == (api_style == "upstream"), scored
    assert outcome.approval is not None and outcome.approval.approver == "alice"
    versions = [v.version for v in busy_sandbox.state.routing_versions]
    assert versions == ["v1.0.0", f"opt-{outcome.rollout_id}-canary", f"opt-{outcome.rollout_id}"]
    live = busy_sandbox.state.routing_versions[-1]
    rule = next(r for r in live.routing_rules if r.id == "rule-support-bot")
    assert rule.target_selection.strategy == "cost_aware_cascade"
    assert rule.target_selection.cascade_config is not None
    assert rule.target_selection.cascade_config.primary_model == "gpt-4o-mini-2024-07-18"
    canary = busy_sandbox.state.routing_versions[1]
    assert any(r.conditions.get("traffic_percentage") == 10.0 for r in canary.routing_rules)
    assert audit(approvers, outcome.rollout_id) == [
        ("alice", "approval_approve"), ("rollout", "canary_applied"), ("alice", "applied")]
    assert [e["type"] for e in busy_sandbox.state.events.values()] == ["io.llm-platform.optimization.applied"]


def test_rejected_change_leaves_routing_unchanged(approvers: Settings, busy_sandbox: SandboxServer) -> None:
    running = start(changes=[CASCADE], requested_by="test", watch_minutes=15)
    answer("reject", "bob", "wait for the experiment")
    outcome = running.outcome()
    assert outcome.status == "rejected" and "bob" in outcome.message
    ended_as(running, "Rejected", StateType.CANCELLED)
    assert [v.version for v in busy_sandbox.state.routing_versions] == ["v1.0.0"]
    assert audit(approvers, outcome.rollout_id) == [("bob", "approval_reject"), ("bob", "rejected")]
    assert busy_sandbox.state.events == {}


def test_no_answer_in_time_is_a_rejection(approvers: Settings, busy_sandbox: SandboxServer) -> None:
    running = start(changes=[CASCADE], requested_by="test", approval_timeout_s=2)
    outcome = running.outcome()
    assert outcome.status == "timed_out" and "treated as rejected" in outcome.message
    ended_as(running, "Timed out", StateType.CANCELLED)
    assert [v.version for v in busy_sandbox.state.routing_versions] == ["v1.0.0"]
    assert audit(approvers, outcome.rollout_id) == [("nobody", "approval_timeout"), ("nobody", "timed_out")]


@BOTH_STYLES
def test_guardrail_breach_during_the_canary_restores_the_previous_version(
    approvers: Settings, busy_sandbox: SandboxServer
) -> None:
    running = start(changes=[CASCADE], requested_by="test", watch_minutes=15, guardrails=GUARDRAILS)
    answer("approve", "alice")
    now = busy_sandbox.state.now()
    busy_sandbox.state.traffic.add_incident(Incident(
        incident_id="canary-errors", anomaly_type="error_rate_increase", category="performance", severity=0.9,
        start=now, end=now + timedelta(hours=3), application_id="support-bot", error_factor=60))
    outcome = running.outcome()
    assert outcome.status == "rolled_back", outcome.message
    ended_as(running, "Rolled back", StateType.FAILED)
    assert outcome.guardrails is not None and any("error rate" in b for b in outcome.guardrails.breaches)
    versions = busy_sandbox.state.routing_versions
    assert [v.version for v in versions][-1] == f"restore-v1.0.0-{outcome.rollout_id}"
    assert versions[-1].routing_rules == versions[0].routing_rules and versions[-1].status == "active"
    assert audit(approvers, outcome.rollout_id)[-1] == ("guardrails", "rolled_back")
    (event,) = busy_sandbox.state.events.values()
    assert event["type"] == "io.llm-platform.optimization.failed" and event["data"]["reason"] == "rolled_back"


@BOTH_STYLES
def test_policy_violation_is_never_paused_and_never_applied(approvers: Settings, busy_sandbox: SandboxServer) -> None:
    outside_eu = CASCADE.model_copy(update={"primary_model": "claude-3-5-haiku-20241022"})
    started = time.monotonic()
    running = start(changes=[outside_eu], requested_by="test")
    outcome = running.outcome(timeout=60)
    assert outcome.status == "blocked" and "EU data residency" in outcome.message
    ended_as(running, "Blocked by policy", StateType.FAILED)
    assert outcome.approval is None and time.monotonic() - started < 30  # no pause, no wait
    assert [v.version for v in busy_sandbox.state.routing_versions] == ["v1.0.0"]
    (event,) = busy_sandbox.state.events.values()
    assert event["type"] == "io.llm-platform.optimization.failed" and event["data"]["reason"] == "blocked"
    assert audit(approvers, outcome.rollout_id) == [("governance", "blocked")]


def test_without_approvers_nothing_is_proposed(settings: Settings) -> None:
    with configured(settings.model_copy(update={"approvers": []})):
        state = rollout(changes=[CASCADE], requested_by="test", return_state=True)
    assert state.is_failed() and "AUTO_OPTIMIZER_APPROVERS" in str(state.message)
    with pytest.raises(OptimizerError, match="AUTO_OPTIMIZER_APPROVERS"):
        outcome_of(state)  # a failure that is no outcome is raised, not read as one


@pytest.mark.usefixtures("platform_settings")
def test_nothing_to_change_ends_as_nothing_to_do() -> None:
    running = start(changes=[], requested_by="test")
    outcome = running.outcome(timeout=60)
    assert outcome.status == "no_change"
    ended_as(running, "Nothing to do", StateType.COMPLETED)
    assert flow_run(running.state).name.startswith("rollout-test-")  # no application to name it after
    assert result_artifact(outcome.rollout_id).startswith(f"# Rollout {outcome.rollout_id}: Nothing to do")
