"""`auto-optimizer simulate`: the loop night after night, every approval answered through
Prefect's API by a scripted approver, scored against the sandbox's truth."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from deployments.cli import main
from optimizer.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def simulate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *argv: str) -> dict[str, Any]:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["simulate", "--json", "--workdir", str(tmp_path / "sim"), *argv], Settings()) == 0
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_when_nobody_approves_the_routing_never_changes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = simulate(monkeypatch, tmp_path, "--days", "1", "--approve", "none", "--requests-per-day", "3000")
    assert result["proposals"] > 0 and len(result["nights"]) == 1
    assert result["approvals"] == 0 and sum(n["rejections"] for n in result["nights"]) == result["proposals"]
    assert result["routing_versions"] == 0 and result["experiments_started"] == result["deployed"] == 0
    assert result["unanswered"] == 0 and result["proposed_twice"] == 0
    assert result["oracle_monthly_savings_usd"] > 0 and result["realized_monthly_savings_usd"] == 0


def test_approved_changes_go_live_as_experiments_and_are_decided(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    result = simulate(monkeypatch, tmp_path, "--days", "2", "--approve", "all", "--requests-per-day", "3000",
                      "--max-experiment-days", "0.5")
    assert result["approvals"] == result["proposals"] == result["experiments_started"] > 0
    assert result["deployed"] + result["stopped"] + result["rolled_back"] > 0  # later nights decide
    assert result["routing_versions"] >= result["experiments_started"]
    assert result["unanswered"] == 0 and result["proposed_twice"] == 0
