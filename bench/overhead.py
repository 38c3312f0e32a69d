"""Prefect's own overhead: the nightly flow against the same work done by plain function calls.

Both runs extract the same windows from the same sandbox into fresh warehouses, with the same
thread fan-out; the difference is what orchestration costs (task runs, states, logs,
artifacts), the API's start-up excluded.
`python -m bench.overhead` prints one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.sandbox import sandbox_settings, start_sandbox
from optimizer.pipeline.nightly import NightlyParameters, plain_steps, run_nightly
from optimizer.pipeline.runtime import Runtime, configured
from optimizer.settings import Settings

NIGHT = NightlyParameters(window_end=datetime(2026, 11, 25, tzinfo=UTC), lookback_hours=6, analysis_days=14,
                          max_quality_drop=0.02, alpha=0.05, propose_changes=False)


def plain_nightly(settings: Settings, backfill_days: int) -> None:
    """The nightly run's steps as plain function calls on a thread pool, no Prefect."""
    with plain_steps() as steps:
        run_nightly(Runtime(settings), replace(NIGHT, backfill_days=backfill_days), steps)


def run_flow(settings: Settings, backfill_days: int) -> float:
    """Run the nightly flow; return how long its run was Running, as the API recorded it."""
    from prefect.client.orchestration import get_client

    from flows.nightly import nightly_optimization

    with configured(settings):
        state = nightly_optimization(**asdict(replace(NIGHT, backfill_days=backfill_days)), return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)  # type: ignore[arg-type]
    return run.total_run_time.total_seconds()


def main() -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    port, backfill, per_day, rounds = 8791, 7, 12_000, 3
    sandbox = start_sandbox(port, requests_per_day=per_day)
    result: dict[str, Any] = {"backfill_days": backfill, "requests_per_day": per_day, "rounds": rounds}
    folder = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    timings: dict[str, list[float]] = {name: [] for name in (
        "prefect_s", "prefect_running_s", "prefect_no_heartbeat_s", "plain_s")}
    try:
        with prefect_test_harness(server_startup_timeout=120):
            # One untimed round of each warms imports, the API and the sandbox's caches;
            # the timed rounds alternate so drift in the machine affects all alike.
            for round_number in range(rounds + 1):
                started = time.perf_counter()
                running_s = run_flow(sandbox_settings(port, folder / f"flow-{round_number}"), backfill)
                flow_s = time.perf_counter() - started
                # Prefect's default heartbeat (for detecting crashed runs) sleeps in one-second
                # steps and the run waits for it to notice the end: timed apart to show its share.
                started = time.perf_counter()
                with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                    run_flow(sandbox_settings(port, folder / f"quiet-{round_number}"), backfill)
                quiet_s = time.perf_counter() - started
                started = time.perf_counter()
                plain_nightly(sandbox_settings(port, folder / f"plain-{round_number}"), backfill)
                plain_s = time.perf_counter() - started
                if round_number:
                    for name, value in (("prefect_s", flow_s), ("prefect_running_s", running_s),
                                        ("prefect_no_heartbeat_s", quiet_s), ("plain_s", plain_s)):
                        timings[name].append(value)
    finally:
        sandbox.terminate()
        shutil.rmtree(folder, ignore_errors=True)
    result |= {name: statistics.median(values) for name, values in timings.items()}

    def share(name: str) -> float:
        return float(100 * (result[name] - result["plain_s"]) / result[name])

    # Wall-clock overhead includes the flow run's start and finish; the Running share is the
    # flow body, so its difference from plain calls is what task orchestration costs.
    result["overhead_pct"] = share("prefect_s")
    result["task_overhead_pct"] = share("prefect_running_s")
    result["no_heartbeat_overhead_pct"] = share("prefect_no_heartbeat_s")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
