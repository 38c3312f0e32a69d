"""The event-triggered flows' steps as Prefect tasks: each a decorator and one call into
`optimizer.pipeline.respond`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from optimizer.pipeline import loop, respond
from optimizer.pipeline.runtime import Runtime
from optimizer.rollout.strategies import Strategy
from optimizer.schemas.rollout import ProposedChange, ResponseOutcome
from tasks._common import retry_if_transient


@task(name="propose-response", cache_policy=NO_CACHE)
def propose_response(runtime: Runtime, strategy: Strategy, alert: Mapping[str, Any], analysis_days: int,
                     max_quality_drop: float, alpha: float) -> tuple[list[str], list[ProposedChange]]:
    return respond.propose_response(runtime, strategy, alert, analysis_days, max_quality_drop, alpha,
                                    log=get_run_logger())


@task(name="stop-optimization", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def stop_optimization(runtime: Runtime, optimization_id: str, reason: str) -> str:
    return loop.stop_optimization(runtime, optimization_id, reason, actor="sentinel", log=get_run_logger())


@task(name="team-changes", cache_policy=NO_CACHE)
def team_changes(runtime: Runtime, team_id: str) -> tuple[list[str], list[ProposedChange]]:
    return respond.team_changes(runtime, team_id, log=get_run_logger())


@task(name="report-to-sentinel", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def report_to_sentinel(runtime: Runtime, outcome: ResponseOutcome) -> ResponseOutcome:
    return respond.report_to_sentinel(runtime, outcome, log=get_run_logger())
