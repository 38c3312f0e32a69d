"""A whole night over a big warehouse: the nightly flow, through Prefect, against the sandbox.

The warehouse first takes `--rows` stored request records, all inside the fourteen days
before the night (`bench.data.recent_dataset`), with the project's own load, the
Observatory's watermark at their end, Governance's spend of those days and the day partials
the last night's analysis kept, as earlier nights leave them (not timed). Then
`nightly_optimization` runs as the scheduled night does (default parameters,
`propose_changes` on: with no `rollout` deployment registered nobody is asked) for the night
after: it extracts the one new day from the sandbox, loads it, analyses the fourteen-day
window (the stored days and the new one), records, delivers, checks budgets, reports and
publishes the API's snapshot.
Timed: the flow call to its return (wall, and the CPU time of this process: the flow, its
tasks and DuckDB, not the sandbox or the Prefect server), and the run's Running time as the
Prefect API recorded it; the API is started first, its start-up not timed (as in `bench.overhead`). Each round
runs on its own copy of the loaded warehouse.
`python -m bench.night` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.data import PATTERN_DAYS, PATTERN_END, recent_dataset
from bench.sandbox import sandbox_settings, start_sandbox
from optimizer.catalog import load_catalog
from optimizer.ingest.windows import days_between
from optimizer.pipeline.analyze import analyze_window
from optimizer.pipeline.ingest import REQUESTS_SOURCE, fetch_cost_summaries
from optimizer.pipeline.runtime import Runtime
from optimizer.schemas.loads import LoadBatch
from optimizer.settings import MODEL_CATALOG, Settings
from optimizer.warehouse import Warehouse

ROWS = 10_000_000
PORT = 8793
REQUESTS_PER_DAY = 12_000  # the sandbox's day, as the stored pattern's
STORED_END = datetime.combine(PATTERN_END, datetime.min.time(), UTC)  # the stored data's watermark
NIGHT_END = STORED_END + timedelta(days=1)  # the night loads the one day after it
SANDBOX_NOW = "2026-11-26T11:00:00Z"  # that day complete at the sandbox
SANDBOX_ANCHOR = NIGHT_END.date()  # the sandbox places experiments from its clock's day
ANALYSIS_DAYS = 14  # the flow's default


def load_stored(data: Path, settings: Settings) -> int:
    """The stored rows, loaded as the nightly runs before would have left them: with the
    Governance spend of their days, which a night asks for only when missing, and the day
    partials the last night's analysis kept (`optimizer.warehouse.day_partials`)."""
    stored_days = days_between(STORED_END - timedelta(days=ANALYSIS_DAYS), STORED_END)
    costs = fetch_cost_summaries(Runtime(settings), stored_days)
    with Warehouse(settings.warehouse) as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        result = store.loads.load(LoadBatch(
            source=REQUESTS_SOURCE, request_files=[data], cost_summaries=costs,
            window=(STORED_END - timedelta(days=PATTERN_DAYS), STORED_END)))
    analyze_window(Runtime(settings), (STORED_END - timedelta(days=ANALYSIS_DAYS), STORED_END), 0.02, 0.05)
    return result.loaded


def analysed_rows(settings: Settings) -> int:
    """The rows the night's analysis window holds."""
    with Warehouse(settings.warehouse) as store:
        source = store.request_source((NIGHT_END - timedelta(days=ANALYSIS_DAYS), NIGHT_END))
        return source.summary.rows


def task_seconds(flow_run_id: Any) -> dict[str, float]:
    """Each task's Running time in the run, summed by task name, longest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    found: dict[str, float] = {}
    for run in runs:
        name = run.name.rsplit("-", 1)[0]
        found[name] = found.get(name, 0.0) + run.total_run_time.total_seconds()
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def run_night(settings: Settings) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    from flows.nightly import nightly_optimization
    from optimizer.pipeline.runtime import configured

    with configured(settings):
        started, cpu = time.perf_counter(), time.process_time()
        state = nightly_optimization(window_end=NIGHT_END, return_state=True)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    summary = state.result()
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
    return {"wall_s": wall, "cpu_s": cpu, "running_s": run.total_run_time.total_seconds(), "tasks_s": task_seconds(flow_run_id),
            "loaded": summary.requests_loaded, "duplicates": summary.duplicates_skipped, "quarantined": summary.quarantined,
            "stored": summary.requests_total, "adopted": len(summary.recommendations)}


def main() -> None:
    from prefect.testing.utilities import prefect_test_harness

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=ROWS, help="stored rows (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=1, help="timed nights, each on a fresh copy (default %(default)s)")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    data = recent_dataset(args.rows, anchor=SANDBOX_ANCHOR)
    folder = Path(tempfile.mkdtemp(prefix="bench-night-"))
    sandbox = start_sandbox(PORT, REQUESTS_PER_DAY, now=SANDBOX_NOW)
    result: dict[str, Any] = {"rows_requested": args.rows, "window_end": NIGHT_END.isoformat(),
                              "analysis_days": ANALYSIS_DAYS, "propose_changes": True, "rounds": []}
    try:
        loaded = sandbox_settings(PORT, folder / "loaded")
        started = time.perf_counter()
        result["stored_rows"] = load_stored(data, loaded)
        result["load_s"] = time.perf_counter() - started
        import flows.nightly  # noqa: F401  (imported before the clock starts, as a worker has)

        with prefect_test_harness(server_startup_timeout=120):
            # An untimed night into an empty warehouse first: the sandbox generates the days
            # the night asks about once (a real platform has them), and Prefect's first run
            # in a process pays its one-off set-up.
            warm = sandbox_settings(PORT, folder / "warm-up")
            run_night(warm.model_copy(update={"api_snapshot": folder / "warm-up" / "api.json"}))
            for number in range(args.rounds):
                settings = sandbox_settings(PORT, folder / f"night-{number}")
                settings = settings.model_copy(update={"api_snapshot": folder / f"night-{number}" / "api.json"})
                settings.warehouse.parent.mkdir(parents=True)
                shutil.copyfile(loaded.warehouse, settings.warehouse)
                result["load_average"] = os.getloadavg()[0]
                result["rounds"].append(run_night(settings))
                result["analysed_rows"] = analysed_rows(settings)
                settings.warehouse.unlink()
    finally:
        sandbox.terminate()
        sandbox.wait()
        shutil.rmtree(folder, ignore_errors=True)
    rounds = result["rounds"]
    result["wall_s"] = statistics.median(r["wall_s"] for r in rounds)
    result["running_s"] = statistics.median(r["running_s"] for r in rounds)
    result["cpu_s"] = statistics.median(r["cpu_s"] for r in rounds)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
