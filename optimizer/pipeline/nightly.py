"""The nightly optimization, step by step: load yesterday's traffic and costs, analyse,
tell the platform, report.

Written once, for whoever runs the steps (`Steps`): the Prefect flow runs each as a task
(retried, logged, visible in the UI, fanned out on threads or Dask); `PlainSteps` calls
them directly on a thread pool, which is what the benchmark compares the flow against.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

from optimizer import telemetry
from optimizer.ingest.windows import floor_to
from optimizer.pipeline.analyze import (
    analyze_application,
    analyze_running_experiments,
    analyze_window,
    combine,
    combine_savings,
    export_for_analysis,
)
from optimizer.pipeline.budgets import check_budgets
from optimizer.pipeline.ingest import (
    extract_requests,
    fetch_cost_summaries,
    fetch_experiments,
    fetch_model_catalog,
    load_warehouse,
    plan_extraction,
)
from optimizer.pipeline.loop import (
    ApprovalRuns,
    decide_experiments,
    measure_realized,
    propose_changes,
)
from optimizer.pipeline.record import deliver_events, record_results
from optimizer.pipeline.report import write_nightly_report
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.report import NightlySummary, ReportData, complete, summarize
from optimizer.schemas.analysis import MAX_P95_LATENCY_INCREASE_PCT
from optimizer.schemas.optimizations import LoopSummary
from optimizer.schemas.rollout import Guardrails

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Pending(Protocol[T_co]):
    def result(self) -> T_co: ...


class Steps(Protocol):
    """Runs one step of the night: `submit` may run it beside others, `call` waits for it.
    `local`: every step runs in this process, so steps may open the warehouse side by side."""

    @property
    def local(self) -> bool: ...

    def submit(self, step: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Pending[T]: ...

    def call(self, step: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


@dataclass
class PlainSteps:
    """Each step a plain function call; submitted ones on a thread pool."""

    pool: ThreadPoolExecutor = field(default_factory=ThreadPoolExecutor)
    local: bool = True

    def submit(self, step: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self.pool.submit(step, *args, **kwargs)

    def call(self, step: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return step(*args, **kwargs)


@contextmanager
def plain_steps() -> Iterator[PlainSteps]:
    with ThreadPoolExecutor() as pool:
        yield PlainSteps(pool)


# An experiment's guardrails are judged on its own arm, which is small: enough requests first
# that a 95th percentile means something.
EXPERIMENT_GUARDRAILS = Guardrails(min_requests=200, sequential=True)

# A run's staging folder untouched for this long belongs to a run that was killed: a nightly
# run takes minutes, and the next one starts a day later.
STALE_STAGING = timedelta(hours=12)


def remove_stale_staging(root: Path, now: datetime, *, log: Log = LOG) -> list[str]:
    """Remove the `run-*` folders that killed runs left under `root` (a finished run removes
    its own): those in which nothing was written for STALE_STAGING."""
    removed = []
    for folder in sorted(root.glob("run-*")) if root.is_dir() else []:
        try:
            newest = max(p.stat().st_mtime for p in (folder, *folder.rglob("*")))
        except OSError:  # removed meanwhile, or unreadable: not ours to judge
            continue
        if now.timestamp() - newest > STALE_STAGING.total_seconds():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    if removed:
        log.info("removed %d staging folder(s) left by killed runs: %s", len(removed), ", ".join(removed))
    return removed


@dataclass(frozen=True)
class NightlyParameters:
    """The flow's parameters (see `flows.nightly`); `window_end` None means today 00:00 UTC."""

    window_end: datetime | None = None
    backfill_days: int = 7
    lookback_hours: int = 6
    analysis_days: int = 14
    max_quality_drop: float = 0.02
    max_p95_latency_increase_pct: float | None = MAX_P95_LATENCY_INCREASE_PCT  # a cascade's latency budget
    max_latency_increase_ms: float | None = None  # None: the setting of that name
    alpha: float = 0.05
    propose_changes: bool = True  # ask for approval of new findings by itself
    experiment_percent: float = 10.0  # an experiment's treatment share of its application's traffic
    max_experiment_days: float = 14.0
    approval_timeout_s: int = 24 * 3600


def run_nightly(
    runtime: Runtime, parameters: NightlyParameters, steps: Steps, approvals: ApprovalRuns | None = None,
) -> NightlySummary:
    """Load every complete UTC day up to the window end, then analyse the last
    `analysis_days` and every running experiment, record, decide the experiments that are
    live, ask for approval of new findings (through `approvals`, when given and
    `propose_changes`), deliver, check budgets, report.

    The first run backfills `backfill_days`; later runs start at the watermark less
    `lookback_hours`, to catch records that arrived late.
    """
    p = parameters
    latency_limit = (p.max_latency_increase_ms if p.max_latency_increase_ms is not None
                     else runtime.settings.max_latency_increase_ms)
    started = datetime.now(UTC)
    end = p.window_end.astimezone(UTC) if p.window_end else floor_to(started, timedelta(days=1))
    run_id = uuid.uuid4().hex[:12]
    staging_dir = runtime.settings.staging_dir / f"run-{run_id}"
    remove_stale_staging(runtime.settings.staging_dir, started)
    with telemetry.operation("nightly-optimization", "nightly", **{"optimization.run_id": run_id}):
        recent = (end - timedelta(days=p.analysis_days), end)
        plan = steps.call(plan_extraction, runtime, end, p.backfill_days, p.lookback_hours, p.analysis_days)
        windows = plan.windows
        try:
            # Fan out: each window, then each application, is a step any worker can run; what
            # they share is Parquet under the staging folder. One step writes the warehouse.
            staged = [steps.submit(extract_requests, runtime, window, staging_dir) for window in windows]
            models = steps.submit(fetch_model_catalog, runtime)
            costs = steps.submit(fetch_cost_summaries, runtime, plan.cost_days)
            experiments = steps.submit(fetch_experiments, runtime)
            loaded = steps.call(load_warehouse, runtime, windows, [f.result().path for f in staged],
                                models.result(), costs.result(), experiments.result())

            if steps.local:  # the window read where it is stored, every application at once
                per_application = [steps.submit(analyze_window, runtime, recent, p.max_quality_drop, p.alpha,
                                                p.max_p95_latency_increase_pct, latency_limit)]
            else:  # workers elsewhere: each application's Parquet folder, for any of them
                inputs = steps.call(export_for_analysis, runtime, recent, staging_dir / "analysis")
                per_application = [
                    steps.submit(analyze_application, application, partition, inputs.input_prices,
                                 p.max_quality_drop, p.alpha, p.max_p95_latency_increase_pct, latency_limit,
                                 batch_prices=inputs.batch_prices)
                    for application, partition in inputs.partitions.items()
                ]
            findings = steps.call(analyze_running_experiments, runtime, p.alpha)
            analyses = [future.result() for future in per_application]
        finally:
            shutil.rmtree(staging_dir, ignore_errors=True)
        cascades, compression, profiles = combine(analyses, max_quality_drop=p.max_quality_drop, alpha=p.alpha,
                                                  max_latency_increase_ms=latency_limit)
        caching, batching = combine_savings(analyses, alpha=p.alpha)
        # Analysed where it is stored, the window's profiles and traffic are what the API's snapshot
        # publishes: the report step need not read the window again.
        stored = bool(analyses) and all(a.traffic is not None for a in analyses)
        traffic = [cell for a in analyses for cell in a.traffic or ()] if stored else None
        recorded = steps.call(record_results, runtime, run_id, cascades, compression, findings, profiles,
                              p.alpha, p.max_quality_drop, caching=caching, batching=batching)
        loop = LoopSummary(decided=steps.call(decide_experiments, runtime, findings, end,
                                              max_days=p.max_experiment_days, guardrails=EXPERIMENT_GUARDRAILS))
        if p.propose_changes and approvals is not None:
            asked = steps.call(propose_changes, runtime, run_id, approvals, experiment_percent=p.experiment_percent,
                               approval_timeout_s=p.approval_timeout_s, max_quality_drop=p.max_quality_drop)
            loop = asked.model_copy(update={"decided": loop.decided})
        realized = steps.call(measure_realized, runtime, run_id, end, alpha=p.alpha)
        delivery = steps.call(deliver_events, runtime)
        budgets = steps.call(check_budgets, runtime, end, recorded.savings_by_team)

        summary = complete(summarize(loaded, windows, end, run_id, started), recorded, delivery, budgets, loop)
        report = ReportData(summary=summary, analysis_start=recent[0], budgets=budgets, cascades=cascades,
                            compression=compression, caching=caching, batching=batching,
                            experiments=[f.analysis for f in findings],
                            monthly_savings=recorded.monthly_savings, realized=realized,
                            profiles=profiles if stored else None, traffic=traffic)
        summary, _ = steps.call(write_nightly_report, runtime, report)
    return summary
