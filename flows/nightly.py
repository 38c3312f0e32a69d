"""The nightly optimization: load yesterday's traffic and costs, analyse, tell the platform, report."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import TypeAdapter

from flows.naming import run_name
from flows.runners import task_runner
from optimizer import telemetry
from optimizer.ingest.windows import days_between, floor_to
from optimizer.report import NightlySummary, ReportData, complete, summarize
from tasks._common import as_is, settings
from tasks.analyze import analyze_application, analyze_experiments, combine, export_for_analysis
from tasks.budgets import check_budgets
from tasks.extract import (
    extract_request_window,
    fetch_cost_summaries,
    fetch_experiments,
    fetch_model_catalog,
)
from tasks.load import load_warehouse, plan_extraction
from tasks.publish import deliver_events, record_results
from tasks.report import publish_report


def _run_name() -> str:
    """`nightly-<day>`: the day of `window_end` when given, else the day the run was scheduled for."""
    window_end = TypeAdapter(datetime | None).validate_python(flow_run.get_parameters().get("window_end"))
    return run_name("nightly", [], window_end.astimezone(UTC).date() if window_end else None)


@flow(name="nightly-optimization", log_prints=True, task_runner=task_runner(), flow_run_name=_run_name)
def nightly_optimization(
    window_end: datetime | None = None,
    backfill_days: int = 7,
    lookback_hours: int = 6,
    analysis_days: int = 14,
    max_quality_drop: float = 0.02,
    alpha: float = 0.05,
) -> NightlySummary:
    """Load every complete UTC day up to `window_end` (default: today 00:00 UTC), then
    analyse the last `analysis_days` and every running experiment.

    The first run backfills `backfill_days`; later runs start at the watermark less
    `lookback_hours`, to catch records that arrived late.
    """
    config = settings()
    telemetry.configure()
    started = datetime.now(UTC)
    end = window_end.astimezone(UTC) if window_end else floor_to(started, timedelta(days=1))
    run_id = uuid.uuid4().hex[:12]
    staging_dir = config.staging_dir / f"run-{run_id}"
    with telemetry.operation("nightly-optimization", "nightly", **{"optimization.run_id": run_id}):
        recent = (end - timedelta(days=analysis_days), end)
        windows = plan_extraction(config.warehouse, end, backfill_days, lookback_hours)
        try:
            # Fan out: each window, then each application, is a task any worker can run; what
            # they share is Parquet under the staging folder. One step writes the warehouse.
            staged = [extract_request_window.submit(window, staging_dir) for window in windows]
            models = fetch_model_catalog.submit()
            costs = fetch_cost_summaries.submit(days_between(min(recent[0], *(w.start for w in windows)), end))
            experiments = fetch_experiments.submit()
            loaded = load_warehouse(config.warehouse, windows, [f.result().path for f in staged],
                                    as_is(models.result()), as_is(costs.result()), as_is(experiments.result()))

            inputs = export_for_analysis(config.warehouse, recent, staging_dir / "analysis")
            per_application = [
                analyze_application.submit(application, partition, inputs.input_prices, max_quality_drop, alpha)
                for application, partition in inputs.partitions.items()
            ]
            findings = analyze_experiments(config.warehouse, alpha)
            analyses = [future.result() for future in per_application]
        finally:
            shutil.rmtree(staging_dir, ignore_errors=True)
        cascades, compression, profiles = combine(analyses, max_quality_drop=max_quality_drop, alpha=alpha)
        recorded = record_results(config.warehouse, run_id, as_is(cascades), as_is(compression), as_is(findings),
                                  as_is(profiles), alpha, max_quality_drop)
        delivery = deliver_events(config.warehouse)
        budgets = check_budgets(end, recorded.savings_by_team, config.warehouse)

        summary = complete(summarize(loaded, windows, end, run_id, started), recorded, delivery, budgets)
        report = ReportData(summary=summary, analysis_start=recent[0], budgets=budgets, cascades=cascades,
                            compression=compression, experiments=[f.analysis for f in findings],
                            monthly_savings=recorded.monthly_savings)
        summary = publish_report(as_is(report), config.warehouse, config.reports_dir)
    telemetry.flush()
    get_run_logger().info("nightly run %s: %d requests loaded, %s a month of savings found, report %s",
                          run_id, summary.requests_loaded, f"${summary.potential_monthly_savings_usd:,.2f}",
                          summary.report)
    return summary
