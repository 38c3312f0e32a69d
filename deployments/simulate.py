"""`auto-optimizer simulate`: the closed loop night after night on the sandbox's clock, every
approval answered by a scripted approver through Prefect's API as the UI form answers it,
and the result scored against the world's hidden truth."""

from __future__ import annotations

import contextvars
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field, SecretStr

from optimizer import embedded_prefect
from optimizer.ingest.windows import floor_to
from optimizer.pipeline.runtime import configured
from optimizer.sandbox import SandboxConfig, SandboxServer
from optimizer.sandbox.traffic import MAX_LATE_S
from optimizer.schemas.rollout import Guardrails
from optimizer.settings import SANDBOX_DEFAULT_TOKEN, Settings, sandbox_endpoints
from optimizer.warehouse import Warehouse

APPROVER = "scripted-approver"  # how the simulation's approvals read in the audit log
MARGIN = 0.02
Approve = Literal["all", "none"]


class Counts(BaseModel):
    """What happened to changes: per night, and over the whole simulation (their sums)."""

    proposals: int = 0
    approvals: int = 0
    rejections: int = 0
    experiments_started: int = 0
    deployed: int = 0
    stopped: int = 0
    rolled_back: int = 0


class Night(Counts):
    night: str
    realized_monthly_savings_usd: float = 0.0
    forecast_monthly_savings_usd: float = 0.0
    quality_violations: int = 0  # deployed changes whose true quality drop exceeds the margin
    exposed: int = 0  # the same, experiment arms included: traffic that got worse answers tonight


class Simulation(Counts):
    world: str
    days: int
    approve: Approve
    nights: list[Night] = Field(default_factory=list)
    realized_monthly_savings_usd: float = 0.0  # the run rate measured on the last night
    forecast_monthly_savings_usd: float = 0.0
    oracle_monthly_savings_usd: float = 0.0  # the world's best, within the quality margin and latency guardrail
    # What the routing live on the last night truly saves (the world's truth, not a measurement).
    true_monthly_savings_usd: float = 0.0
    realized_share_of_oracle: float | None = None
    quality_violations: int = 0  # deployed changes whose true quality drop exceeds the margin (last night)
    violation_days: int = 0  # nights on which any live change's true quality drop exceeded the margin
    proposed_twice: int = 0  # changes asked for more than once (should be none)
    unanswered: int = 0  # approval requests nobody answered (should be none)
    routing_versions: int = 0  # routing versions the optimizer created
    seconds: float = 0.0


def _paused_gates(client: Any) -> list[Any]:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
    return [r for r in runs if r.name.startswith("approve-")]


def _answer_requests(approve: Approve, night: Night, asked: set[str]) -> list[Any]:
    """Run tonight's approval requests (the rollout deployment's scheduled runs for the
    optimizations in `asked`) and answer each form as a person would in the UI; return their
    outcomes."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.flow_engine import run_flow

    from flows.rollout import outcome_of, rollout

    with get_client(sync_client=True) as client:
        scheduled = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["rollout"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))))
    results: dict[str, Any] = {}
    threads = []
    for flow_run in [r for r in scheduled if r.parameters.get("optimization_id") in asked]:
        parameters = rollout.validate_parameters(dict(flow_run.parameters) | {"approval_poll_s": 2})

        def execute(run: Any = flow_run, values: dict[str, Any] = parameters) -> None:
            try:
                results[str(run.id)] = run_flow(rollout, flow_run=run, parameters=values, return_type="state")
            except BaseException as exc:  # kept for the caller, which reports it
                results[str(run.id)] = exc

        thread = threading.Thread(target=contextvars.copy_context().run, args=(execute,), daemon=True)
        thread.start()
        threads.append(thread)
    decision = "approve" if approve == "all" else "reject"
    with get_client(sync_client=True) as client:
        while any(t.is_alive() for t in threads):
            for gate in _paused_gates(client):
                answer = {"decision": decision, "approver": APPROVER, "comment": f"simulation: {approve}"}
                result = client.resume_flow_run(gate.id, run_input=answer)
                if result.status != SetStateStatus.ACCEPT:
                    continue  # not accepted (the form is saved just after the pause, say): ask again
                night.approvals += decision == "approve"
                night.rejections += decision == "reject"
            time.sleep(1.0)
    outcomes = []
    for state in results.values():
        if isinstance(state, BaseException):
            raise state
        outcomes.append(outcome_of(state))
    return outcomes


def _truth(sandbox_url: str, day: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{sandbox_url}/_sandbox/truth", timeout=120,
                       params={"day": day, "margin": MARGIN,
                               "max_p95_latency_increase_pct": Guardrails().max_p95_latency_increase_pct},
                       headers={"Authorization": f"Bearer {SANDBOX_DEFAULT_TOKEN}"})
    answer.raise_for_status()
    applications: list[dict[str, Any]] = answer.json()["applications"]
    return applications


def simulate(
    *, days: int = 30, world: str = "default", approve: Approve = "all", seed: int = 42,
    requests_per_day: int = 12_000, workdir: Path | None = None, settings: Settings | None = None,
    experiment_percent: float = 10.0, max_experiment_days: float = 14.0,
    progress: Callable[[str], None] = lambda _: None,
) -> Simulation:
    """Run `days` nights of the closed loop against a sandbox playing `world`."""
    started = time.perf_counter()
    base = settings or Settings()
    workdir = (workdir or base.data_dir / "simulate" / world).resolve()
    shutil.rmtree(workdir, ignore_errors=True)  # every simulation starts from nothing
    embedded_prefect.prepare()
    from deployments.runner import deployment
    from flows.nightly import nightly_optimization
    from flows.rollout import rollout

    first = floor_to(datetime.now(UTC), timedelta(days=1)) - timedelta(days=days)
    config = SandboxConfig(seed=seed, requests_per_day=requests_per_day, world=world, anchor=first.date(),
                           now=first + timedelta(seconds=MAX_LATE_S + 60))
    result = Simulation(world=world, days=days, approve=approve)
    with SandboxServer(config) as sandbox:
        run_settings = base.model_copy(update=sandbox_endpoints(sandbox.url) | {
            "api_token": SecretStr(SANDBOX_DEFAULT_TOKEN), "approvers": [APPROVER],
            "warehouse": workdir / "warehouse.duckdb", "staging_dir": workdir / "staging",
            "reports_dir": workdir / "reports"})
        with configured(run_settings):
            deployment(rollout, name="rollout").apply()  # where tonight's approval requests run
            for number in range(days):
                window_end = first + timedelta(days=number)
                sandbox.state.set_now(window_end + timedelta(seconds=MAX_LATE_S + 60))
                night = Night(night=window_end.date().isoformat())
                summary = nightly_optimization(window_end=window_end, backfill_days=7,
                                               experiment_percent=experiment_percent,
                                               max_experiment_days=max_experiment_days)
                night.proposals = len(summary.loop.proposed)
                for outcome in _answer_requests(approve, night, set(summary.loop.proposed)):
                    night.experiments_started += outcome.status == "experimenting"
                for what in summary.loop.decided.values():
                    night.deployed += what.startswith("deployed")
                    night.stopped += what.startswith("stopped")
                    night.rolled_back += what.startswith("rolled_back")
                night.realized_monthly_savings_usd = summary.realized_monthly_savings_usd
                with Warehouse(run_settings.warehouse, read_only=True) as store:
                    deployed = store.optimizations.all("deployed")
                night.forecast_monthly_savings_usd = sum(o.forecast_monthly_savings_usd for o in deployed)
                truth = _truth(sandbox.url, night.night)
                night.quality_violations = sum(a["live_quality_drop"] > MARGIN for a in truth)
                night.exposed = night.quality_violations + sum(arm["quality_drop"] > MARGIN
                                                               for a in truth for arm in a["arms"])
                result.violation_days += night.exposed > 0
                result.nights.append(night)
                progress(f"night {number + 1}/{days} ({night.night}): {night.proposals} asked, "
                         f"{night.experiments_started} experiments started, {night.deployed} deployed, "
                         f"{night.stopped} stopped, {night.rolled_back} rolled back; realized "
                         f"${night.realized_monthly_savings_usd:,.2f}/month")
        with Warehouse(run_settings.warehouse, read_only=True) as store:
            everything = store.optimizations.all()
        prints = [o.fingerprint for o in everything]
        result.proposed_twice = len(prints) - len(set(prints))
        result.unanswered = sum(o.status == "waiting_approval" for o in everything)
        result.routing_versions = len(sandbox.state.routing_versions) - 1
        last = result.nights[-1] if result.nights else Night(night="")
        truth = _truth(sandbox.url, last.night) if result.nights else []
    for name in Counts.model_fields:
        setattr(result, name, sum(getattr(n, name) for n in result.nights))
    result.realized_monthly_savings_usd = last.realized_monthly_savings_usd
    result.forecast_monthly_savings_usd = last.forecast_monthly_savings_usd
    result.oracle_monthly_savings_usd = sum(a["oracle_monthly_savings_usd"] for a in truth)
    result.true_monthly_savings_usd = sum(a["live_monthly_savings_usd"] for a in truth)
    if result.oracle_monthly_savings_usd > 0:
        result.realized_share_of_oracle = result.realized_monthly_savings_usd / result.oracle_monthly_savings_usd
    result.quality_violations = last.quality_violations
    result.seconds = time.perf_counter() - started
    return result
