"""Extraction tasks: each reads one source and leaves its result in staging or in memory."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from optimizer.clients import PlatformClients
from optimizer.ingest.observatory import StagedWindow, extract_window
from optimizer.ingest.windows import Window
from optimizer.schemas.governance import CostSummary
from optimizer.schemas.registry import ModelProfile, StoredExperiment
from tasks._common import retry_if_transient, settings


@task(
    name="extract-request-window",
    task_run_name="extract-requests-{window.label}",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def extract_request_window(window: Window, staging_dir: Path) -> StagedWindow:
    logger = get_run_logger()
    config = settings()
    with PlatformClients.from_settings(config) as clients:
        staged = extract_window(
            clients.observatory, window, staging_dir, page_size=config.page_size, progress=logger.info
        )
    logger.info("window %s: %d records in %d pages", window.label, staged.rows, staged.pages)
    return staged


@task(name="fetch-model-catalog", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def fetch_model_catalog() -> list[ModelProfile]:
    with PlatformClients.from_settings(settings()) as clients:
        catalog = clients.registry.model_catalog()
    get_run_logger().info("model catalog: %d models", len(catalog))
    return catalog


@task(name="fetch-cost-summaries", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def fetch_cost_summaries(days: list[date]) -> dict[date, CostSummary]:
    with PlatformClients.from_settings(settings()) as clients:
        summaries = {day: clients.cost_summary(day, day) for day in days}
    get_run_logger().info("cost summaries: %d days", len(summaries))
    return summaries


@task(name="fetch-experiments", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def fetch_experiments() -> list[StoredExperiment]:
    with PlatformClients.from_settings(settings()) as clients:
        experiments = clients.registry.list_experiments()
    get_run_logger().info("experiments: %d", len(experiments))
    return experiments
