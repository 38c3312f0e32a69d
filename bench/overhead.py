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
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.sandbox import point_at, start_sandbox

WINDOW_END = datetime(2026, 11, 25, tzinfo=UTC)
ANALYSIS = {"analysis_days": 14, "max_quality_drop": 0.02, "alpha": 0.05}


def plain_nightly(backfill_days: int) -> None:
    """The nightly flow's body with every task called as a plain function."""
    from prefect.logging import disable_run_logger

    from optimizer.ingest.windows import days_between
    from optimizer.report import ReportData, complete, summarize
    from tasks import analyze, budgets, extract, load, publish, report
    from tasks._common import settings

    config = settings()
    with disable_run_logger():
        windows = load.plan_extraction.fn(config.warehouse, WINDOW_END, backfill_days, 6)
        staging = config.staging_dir / "plain"
        with ThreadPoolExecutor() as pool:
            staged = pool.map(lambda w: extract.extract_request_window.fn(w, staging), windows)
            models = pool.submit(extract.fetch_model_catalog.fn)
            recent = (WINDOW_END - timedelta(days=14), WINDOW_END)
            costs = pool.submit(extract.fetch_cost_summaries.fn, days_between(recent[0], WINDOW_END))
            experiments = pool.submit(extract.fetch_experiments.fn)
            loaded = load.load_warehouse.fn(config.warehouse, windows, [s.path for s in staged], models.result(),
                                            costs.result(), experiments.result())
            inputs = analyze.export_for_analysis.fn(config.warehouse, recent, staging / "analysis")
            per_application = [
                pool.submit(analyze.analyze_application.fn, application, partition, inputs.input_prices, 0.02, 0.05)
                for application, partition in inputs.partitions.items()
            ]
            findings = analyze.analyze_experiments.fn(config.warehouse, 0.05)
            analyses = [future.result() for future in per_application]
        cascades, compression, profiles = analyze.combine(analyses, max_quality_drop=0.02, alpha=0.05)
        recorded = publish.record_results.fn(config.warehouse, "plain", cascades, compression, findings, profiles,
                                             0.05, 0.02)
        delivery = publish.deliver_events.fn(config.warehouse)
        statuses = budgets.check_budgets.fn(WINDOW_END, recorded.savings_by_team, config.warehouse)
        summary = complete(summarize(loaded, windows, WINDOW_END, "plain"), recorded, delivery, statuses)
        report.publish_report.fn(ReportData(summary=summary, analysis_start=recent[0], budgets=statuses,
                                            cascades=cascades, compression=compression,
                                            experiments=[f.analysis for f in findings],
                                            monthly_savings=recorded.monthly_savings),
                                 config.warehouse, config.reports_dir)
        shutil.rmtree(staging, ignore_errors=True)


def run_flow(backfill_days: int) -> float:
    """Run the nightly flow; return how long its run was Running, as the API recorded it."""
    from prefect.client.orchestration import get_client

    from flows.nightly import nightly_optimization

    state = nightly_optimization(window_end=WINDOW_END, backfill_days=backfill_days, return_state=True, **ANALYSIS)
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
                point_at(port, folder / f"flow-{round_number}")
                started = time.perf_counter()
                running_s = run_flow(backfill)
                flow_s = time.perf_counter() - started
                # Prefect's default heartbeat (for detecting crashed runs) sleeps in one-second
                # steps and the run waits for it to notice the end: timed apart to show its share.
                point_at(port, folder / f"quiet-{round_number}")
                started = time.perf_counter()
                with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                    run_flow(backfill)
                quiet_s = time.perf_counter() - started
                point_at(port, folder / f"plain-{round_number}")
                started = time.perf_counter()
                plain_nightly(backfill)
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
