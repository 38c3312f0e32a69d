"""The nightly run's first half: which windows to fetch, fetching them and the reference
data, and the one load that commits it all."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from optimizer.ingest.observatory import StagedWindow, extract_window
from optimizer.ingest.windows import Window, days_between, plan_windows
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.schemas.governance import CostSummary
from optimizer.schemas.loads import LoadBatch, LoadResult
from optimizer.schemas.registry import ModelProfile, StoredExperiment

REQUESTS_SOURCE = "observatory.requests"


# Cost summaries asked for side by side: the days are independent requests.
COST_SUMMARY_REQUESTS = 4


@dataclass(frozen=True)
class ExtractionPlan:
    """What a night fetches: the windows of request records, and the days whose cost summary
    it asks Governance for (those the windows touch, and any of the analysis period the
    warehouse lacks: a stored day's summary is not asked for again every night)."""

    windows: list[Window]
    cost_days: list[date]


def plan_extraction(
    runtime: Runtime, window_end: datetime, backfill_days: int, lookback_hours: int, analysis_days: int,
    *, log: Log = LOG,
) -> ExtractionPlan:
    """The windows to extract, from the watermark (less the look-back) up to `window_end`, and
    the days whose cost summary to ask for (see `ExtractionPlan`)."""
    analysed = days_between(window_end - timedelta(days=analysis_days), window_end)
    with runtime.warehouse() as store:
        watermark = store.loads.watermark(REQUESTS_SOURCE)
        stored = store.reference.cost_days(analysed[0], analysed[-1]) if analysed else set()
    windows = plan_windows(end=window_end, watermark=watermark, backfill=timedelta(days=backfill_days),
                           lookback=timedelta(hours=lookback_hours))
    touched = set(days_between(windows[0].start, windows[-1].end)) if windows else set()
    cost_days = sorted(touched | (set(analysed) - stored))
    log.info("watermark %s; extracting %d window(s) from %s to %s; cost summaries of %d day(s)",
             watermark.isoformat() if watermark else "none (first run)", len(windows),
             windows[0].start.isoformat() if windows else "-", window_end.isoformat(), len(cost_days))
    return ExtractionPlan(windows=windows, cost_days=cost_days)


def extract_requests(runtime: Runtime, window: Window, staging_dir: Path, *, log: Log = LOG) -> StagedWindow:
    """One window of the Observatory's request records into a staging file."""
    with runtime.clients() as clients:
        staged = extract_window(clients.observatory, window, staging_dir, page_size=runtime.settings.page_size,
                                progress=log.info)
    log.info("window %s: %d records in %d pages", window.label, staged.rows, staged.pages)
    return staged


def fetch_model_catalog(runtime: Runtime, *, log: Log = LOG) -> list[ModelProfile]:
    with runtime.clients() as clients:
        catalog = clients.registry.model_catalog()
    log.info("model catalog: %d models", len(catalog))
    return catalog


def fetch_cost_summaries(runtime: Runtime, days: Sequence[date], *, log: Log = LOG) -> dict[date, CostSummary]:
    summaries: dict[date, CostSummary] = {}
    if days:
        with runtime.clients() as clients:
            # The first day alone: it probes which API answers, once, before the rest go out side by side.
            summaries[days[0]] = clients.cost_summary(days[0], days[0])
            with ThreadPoolExecutor(COST_SUMMARY_REQUESTS) as pool:
                summaries.update(zip(days[1:], pool.map(lambda day: clients.cost_summary(day, day), days[1:]),
                                     strict=True))
    log.info("cost summaries: %d days", len(summaries))
    return summaries


def fetch_experiments(runtime: Runtime, *, log: Log = LOG) -> list[StoredExperiment]:
    with runtime.clients() as clients:
        experiments = clients.registry.list_experiments()
    log.info("experiments: %d", len(experiments))
    return experiments


def load_warehouse(
    runtime: Runtime,
    windows: Sequence[Window],
    request_files: Sequence[Path],
    models: Sequence[ModelProfile],
    cost_summaries: dict[date, CostSummary],
    experiments: Sequence[StoredExperiment],
    *,
    log: Log = LOG,
) -> LoadResult:
    """Commit everything extracted in one transaction; the watermark moves only with it."""
    batch = LoadBatch(
        source=REQUESTS_SOURCE, request_files=list(request_files), models=list(models),
        cost_summaries=cost_summaries, experiments=list(experiments),
        window=(windows[0].start, windows[-1].end) if windows else None, bounds=runtime.settings.record_bounds,
    )
    with runtime.warehouse() as store:
        result = store.loads.load(batch, on_step=log.info)
    log.info("loaded %d new requests, %d duplicates skipped, %d quarantined",
             result.loaded, result.duplicates, result.quarantined)
    return result
