"""The specification's JSON examples (tests/spec_examples/) against what the optimizer reads
and sends: every field name the specification writes, in its place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optimizer.pipeline.rollout import check_policies
from optimizer.pipeline.runtime import Runtime
from optimizer.sandbox import SandboxServer
from optimizer.schemas.governance import PolicyEvaluation
from optimizer.schemas.rollout import ProposedChange
from tests.conftest import settings_for

EXAMPLES = Path(__file__).parent / "spec_examples"


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


def field_paths(value: Any, prefix: str = "") -> set[str]:
    """Every field name with its place (`data.variants[].metrics.error_rate`)."""
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in {f"{prefix}{k}", *field_paths(v, f"{prefix}{k}.")}}
    if isinstance(value, list):
        return {p for item in value for p in field_paths(item, f"{prefix[:-1]}[].")} if value else set()
    return set()


# ---- Governance: the policy evaluation, in both of the specification's answer styles ------

def denied_example() -> dict[str, Any]:
    """The specification's REST answer with its cost policy failed: `allowed: false`, the
    failure in `evaluated_policies`, and no `violations` list (the REST example has none)."""
    answer = example("governance-policy-evaluate-response")
    answer["allowed"] = False
    answer["evaluated_policies"][0]["result"] = "fail"
    return answer


def test_the_rest_example_is_read_as_allowed_and_its_failure_as_a_denial() -> None:
    assert PolicyEvaluation.model_validate(example("governance-policy-evaluate-response")).denials() == []
    (reason,) = PolicyEvaluation.model_validate(denied_example()).denials()
    assert reason.startswith("Monthly Cost Limit - Team Marketing:") and "limit_usd=5000" in reason


def test_blocking_violations_deny_and_warnings_only_warn() -> None:
    answer = example("governance-policy-evaluate-response") | {"allowed": False, "violations": [
        {"policy_id": "p-1", "policy_name": "EU only", "violation_type": "data_residency",
         "description": "no EU residency", "severity": "blocking"},
        {"policy_id": "p-2", "policy_name": "Budget", "violation_type": "cost_limit",
         "description": "80% spent", "severity": "warning"}]}
    verdict = PolicyEvaluation.model_validate(answer)
    assert verdict.denials() == ["EU only: no EU residency"] and verdict.cautions() == ["Budget: 80% spent"]


def test_a_denial_without_any_reason_is_still_a_denial() -> None:
    answer = {"request_id": "r-1", "allowed": False}
    assert PolicyEvaluation.model_validate(answer).denials()


@pytest.fixture
def spec_shaped_governance(shared_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The shared sandbox answering policy evaluations exactly as the REST example: no `violations`."""
    shared_sandbox.state.policy_violations_listed = False
    try:
        yield shared_sandbox
    finally:
        shared_sandbox.state.policy_violations_listed = True


OUTSIDE_EU = ProposedChange(application_id="support-bot", kind="preferred_model", team_id="team-support",
                            preferred_models=["claude-3-5-haiku-20241022"])


def test_a_rest_shaped_denial_blocks_the_rollout(spec_shaped_governance: SandboxServer, tmp_path: Path) -> None:
    runtime = Runtime(settings_for(spec_shaped_governance, tmp_path))
    (check,) = check_policies(runtime, "r-1", [OUTSIDE_EU])
    assert not check.allowed and check.blocking == [
        "EU data residency - Customer Support: model claude-3-5-haiku-20241022 offers no EU data residency"]


def test_the_environment_governance_hears_comes_from_the_settings(
    spec_shaped_governance: SandboxServer, tmp_path: Path
) -> None:
    # The residency policy is scoped to production: for staging traffic it does not apply.
    runtime = Runtime(settings_for(spec_shaped_governance, tmp_path, environment="staging"))
    (check,) = check_policies(runtime, "r-2", [OUTSIDE_EU])
    assert check.allowed and check.blocking == []
