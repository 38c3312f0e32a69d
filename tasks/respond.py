"""The event-triggered flows' steps as Prefect tasks: each a decorator and one call into
`optimizer.pipeline.respond`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from optimizer.pipeline import loop, respond, updates
from optimizer.pipeline.runtime import Runtime
from optimizer.rollout.strategies import Strategy
from optimizer.schemas.rollout import (
    ModelRecheck,
    ProposedChange,
    ResponseOutcome,
    ViolationResponse,
)
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


@task(name="recheck-model", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def recheck_model(runtime: Runtime, model_id: str, event_id: str) -> ModelRecheck:
    return updates.recheck_model(runtime, model_id, event_id, log=get_run_logger())


@task(name="stop-violating-changes", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def stop_violating_changes(runtime: Runtime, violation: Mapping[str, Any]) -> ViolationResponse:
    return updates.stop_violating_changes(runtime, violation, log=get_run_logger())


@task(name="close-response", cache_policy=NO_CACHE)
def close_response(runtime: Runtime, resolved: Mapping[str, Any], event_id: str) -> str:
    return updates.close_response(runtime, resolved, event_id, log=get_run_logger())
