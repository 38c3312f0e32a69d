"""The nightly optimization: extract yesterday's traffic and costs, load the warehouse, report."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger

from optimizer.ingest.windows import floor_to
from optimizer.report import NightlySummary, summarize
from tasks._common import settings
from tasks.extract import (
    extract_request_window,
    fetch_cost_summaries,
    fetch_experiments,
    fetch_model_catalog,
)
from tasks.load import load_warehouse, plan_extraction
from tasks.report import publish_report


@flow(name="nightly-optimization", log_prints=True)
def nightly_optimization(
    window_end: datetime | None = None,
    backfill_days: int = 7,
    lookback_hours: int = 6,
) -> NightlySummary:
    """Load every complete UTC day up to `window_end` (default: today 00:00 UTC).

    The first run backfills `backfill_days`; later runs start at the watermark less
    `lookback_hours`, to catch records that arrived late.
    """
    config = settings()
    end = window_end.astimezone(UTC) if window_end else floor_to(datetime.now(UTC), timedelta(days=1))
    staging_dir = config.staging_dir / f"run-{uuid.uuid4().hex[:12]}"

    windows = plan_extraction(config.warehouse, end, backfill_days, lookback_hours)
    staged = [extract_request_window.submit(window, staging_dir) for window in windows]
    days = sorted({window.start.date() for window in windows})
    models = fetch_model_catalog.submit()
    costs = fetch_cost_summaries.submit(days)
    experiments = fetch_experiments.submit()

    try:
        loaded = load_warehouse(
            config.warehouse,
            windows,
            [future.result().path for future in staged],
            models.result(),
            costs.result(),
            experiments.result(),
        )
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    summary = publish_report(summarize(loaded, windows, end), config.reports_dir)
    get_run_logger().info(
        "nightly run done: %d requests loaded, %d quarantined", summary.requests_loaded, summary.quarantined
    )
    return summary
