"""The nightly optimization: load yesterday's traffic and costs, analyse, tell the platform, report."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import TypeAdapter

from flows.naming import run_name
from flows.runners import task_runner
from optimizer import telemetry
from optimizer.pipeline.nightly import NightlyParameters, run_nightly
from optimizer.pipeline.runtime import Runtime
from optimizer.report import NightlySummary
from optimizer.schemas.analysis import MAX_P95_LATENCY_INCREASE_PCT
from tasks.nightly import NIGHTLY_STEPS, RolloutRuns


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
    max_p95_latency_increase_pct: float | None = MAX_P95_LATENCY_INCREASE_PCT,
    max_latency_increase_ms: float | None = None,
    alpha: float = 0.05,
    propose_changes: bool = True,
    experiment_percent: float = 10.0,
    max_experiment_days: float = 14.0,
    approval_timeout_s: int = 24 * 3600,
) -> NightlySummary:
    """Load every complete UTC day up to `window_end` (default: today 00:00 UTC), then
    analyse the last `analysis_days` and every running experiment.

    The first run backfills `backfill_days`; later runs start at the watermark less
    `lookback_hours`, to catch records that arrived late. A cascade must keep quality within
    `max_quality_drop` and raise p95 latency by at most `max_p95_latency_increase_pct`
    (None: any rise); a cascade or compression must raise a request's mean latency by at most
    `max_latency_increase_ms` with confidence 1 - alpha (None: the setting
    AUTO_OPTIMIZER_MAX_LATENCY_INCREASE_MS, 200 ms unless set).

    Then it closes the loop: every experiment of an approved change is deployed, stopped or
    continued on tonight's evidence, and, with `propose_changes`, each application with a
    new adopted change gets one approval request (a run of the `rollout` deployment; the
    approved change goes live as an experiment on `experiment_percent`% of its traffic).
    """
    runtime = Runtime.current()
    telemetry.configure(runtime.settings.telemetry_file)
    summary = run_nightly(runtime, NightlyParameters(
        window_end=window_end, backfill_days=backfill_days, lookback_hours=lookback_hours,
        analysis_days=analysis_days, max_quality_drop=max_quality_drop,
        max_p95_latency_increase_pct=max_p95_latency_increase_pct,
        max_latency_increase_ms=max_latency_increase_ms, alpha=alpha, propose_changes=propose_changes, experiment_percent=experiment_percent,
        max_experiment_days=max_experiment_days, approval_timeout_s=approval_timeout_s,
    ), NIGHTLY_STEPS, RolloutRuns())
    telemetry.flush()
    get_run_logger().info("nightly run %s: %d requests loaded, %s a month of savings found, report %s",
                          summary.run_id, summary.requests_loaded, f"${summary.potential_monthly_savings_usd:,.2f}",
                          summary.report)
    return summary
