"""The rollout's steps as Prefect tasks: each a decorator and one call into
`optimizer.pipeline.rollout`, adding retries, the run's logger and the result artifact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from optimizer.pipeline import rollout
from optimizer.pipeline.runtime import Runtime
from optimizer.rollout.evidence import render_outcome
from optimizer.schemas.rollout import (
    Guardrails,
    GuardrailVerdict,
    PolicyCheck,
    Proposal,
    ProposedChange,
    RolloutOutcome,
)
from optimizer.schemas.routing import RoutingConfig, RoutingConfigApplied
from tasks._common import retry_if_transient


@task(name="build-proposal", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def build_proposal(runtime: Runtime, changes: Sequence[ProposedChange] | None) -> Proposal:
    return rollout.build_proposal(runtime, changes, log=get_run_logger())


@task(name="check-policies", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def check_policies(runtime: Runtime, rollout_id: str, changes: Sequence[ProposedChange]) -> list[PolicyCheck]:
    return rollout.check_policies(runtime, rollout_id, changes, log=get_run_logger())


@task(name="apply-routing", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def apply_routing(runtime: Runtime, config: RoutingConfig, version: str) -> RoutingConfigApplied:
    return rollout.apply_routing(runtime, config, version, log=get_run_logger())


@task(name="start-experiment", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def start_experiment(runtime: Runtime, optimization_id: str, proposal: Proposal, percent: float,
                     max_quality_drop: float) -> tuple[str, str]:
    return rollout.start_experiment(runtime, optimization_id, proposal, percent, max_quality_drop,
                                    log=get_run_logger())


@task(name="watch-guardrails", retries=1, retry_delay_seconds=10, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def watch_guardrails(runtime: Runtime, scopes: Mapping[str, Sequence[str]], started: datetime, watch_minutes: float,
                     guardrails: Guardrails) -> GuardrailVerdict:
    return rollout.watch_guardrails(runtime, scopes, started, watch_minutes, guardrails, log=get_run_logger())


@task(name="audit", cache_policy=NO_CACHE)
def audit_step(runtime: Runtime, rollout_id: str, actor: str, action: str, details: dict[str, object]) -> None:
    rollout.audit(runtime, rollout_id, actor, action, details)


@task(name="record-rollout", cache_policy=NO_CACHE)
def record_rollout(runtime: Runtime, outcome: RolloutOutcome, actor: str, action: str) -> RolloutOutcome:
    """The outcome kept, and a result artifact (`rollout-<id>-result`) for people."""
    recorded = rollout.record_rollout(runtime, outcome, actor, action, str(flow_run.get_id() or ""),
                                      log=get_run_logger())
    create_markdown_artifact(key=f"rollout-{outcome.rollout_id}-result", markdown=render_outcome(outcome),
                             description=f"{outcome.title}: what this rollout did")
    return recorded
