"""The nightly run's steps as Prefect tasks: each a decorator and one call into
`optimizer.pipeline`, adding retries, the run's logger and artifacts."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.exceptions import MissingContextError, ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Cancelling

from optimizer.ingest.observatory import StagedWindow
from optimizer.pipeline import analyze, budgets, ingest, loop, record, report
from optimizer.pipeline.loop import ApprovalRuns
from optimizer.pipeline.runtime import Runtime
from optimizer.report import EventDelivery, NightlySummary, RecordedResults, ReportData
from optimizer.schemas.analysis import (
    AnalysisInputs,
    ApplicationAnalysis,
    BatchingReport,
    CachingReport,
    CascadeReport,
    CompressionReport,
    ExperimentFinding,
    TeamBudgetStatus,
)
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.governance import CostSummary
from optimizer.schemas.loads import LoadResult, Window
from optimizer.schemas.optimizations import LoopSummary, RealizedSavings
from optimizer.schemas.registry import ModelProfile, StoredExperiment, TokenPrices
from optimizer.schemas.rollout import Guardrails
from tasks._common import TaskSteps, retry_if_transient

RETRY_FETCH: dict[str, Any] = {"retries": 2, "retry_delay_seconds": 10, "retry_condition_fn": retry_if_transient}


@task(name="plan-extraction", cache_policy=NO_CACHE)
def plan_extraction(
    runtime: Runtime, window_end: datetime, backfill_days: int, lookback_hours: int, analysis_days: int
) -> ingest.ExtractionPlan:
    return ingest.plan_extraction(runtime, window_end, backfill_days, lookback_hours, analysis_days,
                                  log=get_run_logger())


@task(name="extract-request-window", task_run_name="extract-requests-{window.label}", retries=2,
      retry_delay_seconds=[5, 30], retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def extract_request_window(runtime: Runtime, window: Window, staging_dir: Path) -> StagedWindow:
    return ingest.extract_requests(runtime, window, staging_dir, log=get_run_logger())


@task(name="fetch-model-catalog", cache_policy=NO_CACHE, **RETRY_FETCH)
def fetch_model_catalog(runtime: Runtime) -> list[ModelProfile]:
    return ingest.fetch_model_catalog(runtime, log=get_run_logger())


@task(name="fetch-cost-summaries", cache_policy=NO_CACHE, **RETRY_FETCH)
def fetch_cost_summaries(runtime: Runtime, days: Sequence[date]) -> dict[date, CostSummary]:
    return ingest.fetch_cost_summaries(runtime, days, log=get_run_logger())


@task(name="fetch-experiments", cache_policy=NO_CACHE, **RETRY_FETCH)
def fetch_experiments(runtime: Runtime) -> list[StoredExperiment]:
    return ingest.fetch_experiments(runtime, log=get_run_logger())


@task(name="load-warehouse", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def load_warehouse(runtime: Runtime, windows: Sequence[Window], request_files: Sequence[Path],
                   models: Sequence[ModelProfile], cost_summaries: dict[date, CostSummary],
                   experiments: Sequence[StoredExperiment]) -> LoadResult:
    return ingest.load_warehouse(runtime, windows, request_files, models, cost_summaries, experiments,
                                 log=get_run_logger())


@task(name="export-for-analysis", cache_policy=NO_CACHE)
def export_for_analysis(runtime: Runtime, window: tuple[datetime, datetime], directory: Path) -> AnalysisInputs:
    return analyze.export_for_analysis(runtime, window, directory, log=get_run_logger())


@task(name="analyze-application", task_run_name="analyze-{application}", cache_policy=NO_CACHE)
def analyze_application(application: str, partition: Path, input_prices: Mapping[str, float],
                        max_quality_drop: float, alpha: float,
                        max_p95_latency_increase_pct: float | None,
                        max_latency_increase_ms: float | None,
                        batch_prices: Mapping[str, TokenPrices] | None = None) -> ApplicationAnalysis:
    return analyze.analyze_application(application, partition, input_prices, max_quality_drop, alpha,
                                       max_p95_latency_increase_pct, max_latency_increase_ms, log=get_run_logger(),
                                       batch_prices=batch_prices)


@task(name="analyze-window", cache_policy=NO_CACHE)
def analyze_window(runtime: Runtime, window: tuple[datetime, datetime], max_quality_drop: float, alpha: float,
                   max_p95_latency_increase_pct: float | None,
                   max_latency_increase_ms: float | None) -> ApplicationAnalysis:
    return analyze.analyze_window(runtime, window, max_quality_drop, alpha, max_p95_latency_increase_pct,
                                  max_latency_increase_ms, log=get_run_logger())


@task(name="analyze-experiments", cache_policy=NO_CACHE)
def analyze_experiments(runtime: Runtime, alpha: float) -> list[ExperimentFinding]:
    return analyze.analyze_running_experiments(runtime, alpha, log=get_run_logger())


@task(name="record-results", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def record_results(runtime: Runtime, run_id: str, cascades: CascadeReport, compression: CompressionReport,
                   experiments: Sequence[ExperimentFinding], profiles: Sequence[ApplicationProfile],
                   alpha: float, max_quality_drop: float, caching: CachingReport | None = None,
                   batching: BatchingReport | None = None) -> RecordedResults:
    return record.record_results(runtime, run_id, cascades, compression, experiments, profiles, alpha,
                                 max_quality_drop, caching=caching, batching=batching, log=get_run_logger())


@task(name="decide-experiments", retries=1, retry_delay_seconds=10, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def decide_experiments(runtime: Runtime, findings: Sequence[ExperimentFinding], window_end: datetime, *,
                       max_days: float, guardrails: Guardrails) -> dict[str, str]:
    return loop.decide_experiments(runtime, findings, window_end, max_days=max_days, guardrails=guardrails,
                                   log=get_run_logger())


@task(name="ask-for-approval", retries=1, retry_delay_seconds=10, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def propose_changes(runtime: Runtime, run_id: str, approvals: ApprovalRuns, *, experiment_percent: float,
                    approval_timeout_s: int, max_quality_drop: float) -> LoopSummary:
    return loop.propose_changes(runtime, run_id, approvals, experiment_percent=experiment_percent,
                                approval_timeout_s=approval_timeout_s, max_quality_drop=max_quality_drop,
                                log=get_run_logger())


@task(name="measure-realized-savings", cache_policy=NO_CACHE)
def measure_realized(runtime: Runtime, run_id: str, window_end: datetime, *, alpha: float) -> list[RealizedSavings]:
    return loop.measure_realized(runtime, run_id, window_end, alpha=alpha, log=get_run_logger())


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


class RolloutRuns:
    """Approval requests as runs of the rollout deployment, through the Prefect API; the
    idempotency key (the optimization's id) makes asking twice return the same run."""

    DEPLOYMENT = "rollout/rollout"

    def start(self, parameters: dict[str, Any], key: str) -> str | None:
        with get_client(sync_client=True) as client:
            try:
                deployment = client.read_deployment_by_name(self.DEPLOYMENT)
            except ObjectNotFound:
                return None
            try:
                run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters,
                                                             idempotency_key=key, tags=["nightly-proposal"])
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != 409:
                    raise
                # Registered by an older version whose parameter schema refuses this change (a
                # new kind of change, say): asked again the next night, once `make serve` or
                # the worker has registered the current deployment. One stale deployment must
                # not cost the night its report.
                _logger().warning("the %s deployment refused the approval request for %s (%s); it "
                                  "is asked again once the deployment is registered anew", self.DEPLOYMENT, key,
                                  exc.response.json().get("detail", exc.response.text)[:300])
                return None
        return str(run.id)

    def cancel(self, run_id: str, reason: str) -> None:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(UUID(run_id), Cancelling(message=reason), force=True)


@task(name="deliver-events", cache_policy=NO_CACHE)
def deliver_events(runtime: Runtime) -> EventDelivery:
    return record.deliver_events(runtime, log=get_run_logger())


@task(name="check-budgets", cache_policy=NO_CACHE, **RETRY_FETCH)
def check_budgets(runtime: Runtime, window_end: datetime, savings_by_team: Mapping[str, float]) -> list[TeamBudgetStatus]:
    return budgets.check_budgets(runtime, window_end, savings_by_team, log=get_run_logger())


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(runtime: Runtime, data: ReportData) -> tuple[NightlySummary, Path]:
    """The report files, and what people read in the Prefect UI: the report as an artifact,
    the adopted recommendations and the budgets as tables."""
    summary, markdown = report.write_nightly_report(runtime, data, log=get_run_logger())
    create_markdown_artifact(key="nightly-optimization", markdown=markdown.read_text(encoding="utf-8"),
                             description="What the nightly optimization found and recommends")
    create_table_artifact(
        key="nightly-recommendations",
        table=[r.model_dump() for r in summary.recommendations] or [{"recommendation": "none adopted"}],
        description="Recommendations adopted tonight, with their monthly savings",
    )
    if data.budgets:
        create_table_artifact(key="team-budgets", table=[b.model_dump() for b in data.budgets],
                              description="Month-to-date spend against each team's budget")
    return summary, markdown


NIGHTLY_STEPS = TaskSteps({
    ingest.plan_extraction: plan_extraction,
    ingest.extract_requests: extract_request_window,
    ingest.fetch_model_catalog: fetch_model_catalog,
    ingest.fetch_cost_summaries: fetch_cost_summaries,
    ingest.fetch_experiments: fetch_experiments,
    ingest.load_warehouse: load_warehouse,
    analyze.export_for_analysis: export_for_analysis,
    analyze.analyze_application: analyze_application,
    analyze.analyze_window: analyze_window,
    analyze.analyze_running_experiments: analyze_experiments,
    record.record_results: record_results,
    record.deliver_events: deliver_events,
    loop.decide_experiments: decide_experiments,
    loop.propose_changes: propose_changes,
    loop.measure_realized: measure_realized,
    budgets.check_budgets: check_budgets,
    report.write_nightly_report: publish_report,
})
