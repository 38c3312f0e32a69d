"""`prefect.yaml` is accepted by `prefect deploy` against a real Prefect API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

PROJECT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]


def prefect_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = subprocess.run([PREFECT, *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def test_prefect_deploy_accepts_the_nightly_deployment() -> None:
    prefect_cli("work-pool", "create", "optimizer-process", "--type", "process", "--overwrite")
    prefect_cli("--no-prompt", "deploy", "--all")

    async def nightly() -> tuple[list[str], list[str], dict[str, object], str | None]:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("nightly-optimization/nightly")
            crons = [getattr(s.schedule, "cron", "") for s in deployment.schedules]
            zones = [getattr(s.schedule, "timezone", "") for s in deployment.schedules]
            return crons, zones, deployment.parameters, deployment.work_pool_name

    crons, zones, parameters, pool = asyncio.run(nightly())
    assert crons == ["0 2 * * *"] and zones == ["UTC"]
    assert parameters["backfill_days"] == 7 and parameters["lookback_hours"] == 6
    assert pool == "optimizer-process"


def test_make_serve_starts_the_ui_the_receiver_and_the_deployments(tmp_path: Path) -> None:
    """What `make serve` runs, started and checked once."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "AUTO_OPTIMIZER_WEBHOOK_INBOX": str(tmp_path / "inbox.sqlite")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "deployments.local", "--check"], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Prefect UI: http://127.0.0.1:4200" in done.stdout and "/events" in done.stdout
    assert "serving: anomaly-response, budget-response, nightly, rollout" in done.stdout
