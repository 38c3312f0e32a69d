"""The one step that writes the warehouse."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from optimizer.ingest.windows import Window, plan_windows
from optimizer.schemas.governance import CostSummary
from optimizer.schemas.loads import LoadBatch, LoadResult
from optimizer.schemas.registry import ModelProfile, StoredExperiment
from optimizer.warehouse import Warehouse
from tasks._common import retry_if_transient

REQUESTS_SOURCE = "observatory.requests"


@task(name="plan-extraction", cache_policy=NO_CACHE)
def plan_extraction(
    warehouse: Path, window_end: datetime, backfill_days: int, lookback_hours: int
) -> list[Window]:
    """The windows to extract: from the watermark (less the look-back) up to `window_end`."""
    with Warehouse(warehouse) as store:
        watermark = store.loads.watermark(REQUESTS_SOURCE)
    windows = plan_windows(
        end=window_end,
        watermark=watermark,
        backfill=timedelta(days=backfill_days),
        lookback=timedelta(hours=lookback_hours),
    )
    get_run_logger().info(
        "watermark %s; extracting %d window(s) from %s to %s",
        watermark.isoformat() if watermark else "none (first run)",
        len(windows),
        windows[0].start.isoformat() if windows else "-",
        window_end.isoformat(),
    )
    return windows


@task(name="load-warehouse", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def load_warehouse(
    warehouse: Path,
    windows: Sequence[Window],
    request_files: Sequence[Path],
    models: Sequence[ModelProfile],
    cost_summaries: dict[date, CostSummary],
    experiments: Sequence[StoredExperiment],
) -> LoadResult:
    """Commit everything extracted in one transaction; the watermark moves only with it."""
    logger = get_run_logger()
    batch = LoadBatch(
        source=REQUESTS_SOURCE,
        request_files=list(request_files),
        models=list(models),
        cost_summaries=cost_summaries,
        experiments=list(experiments),
        window=(windows[0].start, windows[-1].end) if windows else None,
    )
    with Warehouse(warehouse) as store:
        result = store.loads.load(batch, on_step=logger.info)
    logger.info(
        "loaded %d new requests, %d duplicates skipped, %d quarantined",
        result.loaded, result.duplicates, result.quarantined,
    )
    return result
