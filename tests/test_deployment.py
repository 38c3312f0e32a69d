"""`prefect.yaml` is accepted by `prefect deploy` against a real Prefect API."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.settings import PREFECT_API_URL

PROJECT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]


def prefect_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = subprocess.run([PREFECT, *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


async def create_pools_from_templates() -> None:
    """The pools as `prefect work-pool create NAME --type KIND --base-job-template FILE` makes
    them (through the client: one CLI process fewer to start for each)."""
    async with get_client() as client:
        for pool, kind in (("optimizer-process", "process"), ("optimizer-kubernetes", "kubernetes")):
            template = json.loads((PROJECT / "deployments" / "work-pools" / f"{kind}.json").read_text())
            await client.create_work_pool(WorkPoolCreate(name=pool, type=kind, base_job_template=template),
                                          overwrite=True)


def test_prefect_deploy_accepts_the_deployments_on_pools_made_from_our_templates() -> None:
    asyncio.run(create_pools_from_templates())
    prefect_cli("--no-prompt", "deploy", "--all")

    async def read() -> tuple[Any, Any, Any]:
        async with get_client() as client:
            return (await client.read_deployment_by_name("nightly-optimization/nightly"),
                    await client.read_deployment_by_name("nightly-optimization/nightly-kubernetes"),
                    await client.read_work_pool("optimizer-kubernetes"))

    nightly, on_kubernetes, kubernetes_pool = asyncio.run(read())
    assert [getattr(s.schedule, "cron", "") for s in nightly.schedules] == ["0 2 * * *"]
    assert [getattr(s.schedule, "timezone", "") for s in nightly.schedules] == ["UTC"]
    assert nightly.parameters["backfill_days"] == 7 and nightly.parameters["lookback_hours"] == 6
    assert nightly.work_pool_name == "optimizer-process"
    assert on_kubernetes.work_pool_name == "optimizer-kubernetes" and not on_kubernetes.schedules
    assert on_kubernetes.job_variables["env"]["AUTO_OPTIMIZER_TASK_RUNNER"] == "dask"
    variables = kubernetes_pool.base_job_template["variables"]["properties"]
    assert {"staging_claim", "warehouse_claim", "platform_secret"} <= set(variables)

