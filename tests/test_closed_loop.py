"""The closed loop against the sandbox and a real Prefect API: a night's findings become
approval requests by themselves (once), an approved one goes live as an experiment beside
control traffic, and a later night decides it with new routing versions and events. Stopping
and measuring use support-bot's cascade, routed as if it had been approved."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from flows.nightly import nightly_optimization
from flows.respond import anomaly_response
from flows.rollout import outcome_of, rollout
from optimizer.clients import PlatformClients
from optimizer.pipeline.runtime import configured
from optimizer.rollout import plan
from optimizer.sandbox import SandboxServer
from optimizer.schemas.optimizations import Optimization, fingerprint
from optimizer.schemas.rollout import ProposedChange
from optimizer.schemas.routing import RoutingConfigUpdate
from optimizer.settings import SANDBOX_DEFAULT_TOKEN
from optimizer.warehouse import Warehouse
from tests.conftest import DAY_END, SANDBOX_NOW, in_thread, sandbox_config, settings_for
from tests.test_rollout import answer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]
MINI, FOUR_O = "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"


def approval_requests(*nights: str) -> list[dict[str, Any]]:
    """The parameters of the rollout deployment's runs these nightly runs asked for, oldest first."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["rollout"])))
    return [dict(run.parameters) for run in sorted(runs, key=lambda r: r.created or r.expected_start_time)
            if run.parameters.get("requested_by") in nights]


def test_findings_become_experiments_that_a_later_night_decides(tmp_path: Path) -> None:
    rollout.to_deployment(name="rollout").apply()
    with SandboxServer(sandbox_config(requests_per_day=6_000)) as sandbox, \
            configured(settings_for(sandbox, tmp_path, approvers=["alice", "bob"])) as runtime, \
            PlatformClients.from_settings(runtime.settings) as clients:
        first = nightly_optimization(window_end=DAY_END, backfill_days=7)
        asked = approval_requests(first.run_id)
        assert first.loop.proposed and len(asked) == len(first.loop.proposed)
        assert {a["optimization_id"] for a in asked} == set(first.loop.proposed)
        adopted_apps = {r.application_id for r in first.recommendations}
        assert {a["changes"][0]["application_id"] for a in asked} == adopted_apps  # one request per application

        again = nightly_optimization(window_end=DAY_END, backfill_days=7)
        assert again.loop.proposed == [] and approval_requests(again.run_id) == []  # never the same change twice
        assert set(again.loop.skipped.values()) == {"this change was proposed before"}

        # A person approves doc-qa's compression: it goes live as an experiment.
        request = next(a for a in asked if a["changes"][0]["application_id"] == "doc-qa")
        result: dict[str, Any] = {}
        thread = in_thread(lambda: result.update(state=rollout(**request, approval_poll_s=1, return_state=True)))
        answer("approve", "alice", "try it on a tenth")
        thread.join(120)
        outcome = outcome_of(result["state"])
        assert outcome.status == "experimenting" and outcome.experiment_id == f"exp-{request['optimization_id']}"
        arms = {r.id: r for r in clients.orchestrator.routing().routing_rules if "traffic_percentage" in r.conditions}
        assert set(arms) == {"rule-doc-qa-treatment", "rule-doc-qa-control"}
        assert arms["rule-doc-qa-treatment"].conditions["traffic_percentage"] == 10.0
        assert arms["rule-doc-qa-control"].conditions["traffic_percentage"] == 90.0
        assert outcome.experiment_id in sandbox.state.experiments
        with Warehouse(runtime.settings.warehouse) as store:
            live = store.optimizations.get(request["optimization_id"])
        assert live is not None and live.status == "experimenting" and live.approval_run_id

        # Two days later the experiment is decided: deployed, stopped when it cannot tell yet, or
        # rolled back when its own traffic broke a guardrail against control.
        sandbox.state.set_now(SANDBOX_NOW + timedelta(days=2))
        later = nightly_optimization(window_end=DAY_END + timedelta(days=2), backfill_days=4, max_experiment_days=1)
        assert request["optimization_id"] in later.loop.decided
        with Warehouse(runtime.settings.warehouse) as store:
            decided = store.optimizations.get(request["optimization_id"])
        assert decided is not None and decided.status in {"deployed", "stopped", "rolled_back"}
        routing = clients.orchestrator.routing()
        assert routing.version == f"{decided.optimization_id}-{decided.status.replace('_', '-')}"
        assert not [r for r in routing.routing_rules if "traffic_percentage" in r.conditions]
        qa = next(r for r in routing.routing_rules if r.id == "rule-doc-qa")
        hints = qa.optimization_hints.model_dump() if qa.optimization_hints else {}
        assert bool(hints.get("enable_prompt_compression")) == (decided.status == "deployed")
        kind = "applied" if decided.status == "deployed" else "failed"
        (event,) = [e for e in sandbox.state.events.values()
                    if e["subject"] == f"optimization/{decided.optimization_id}"]
        assert event["type"] == f"io.llm-platform.optimization.{kind}"
        assert {"original_metrics", "optimized_metrics", "improvement", "quality_metrics"} <= set(event["data"])
        assert sandbox.state.experiments[outcome.experiment_id].status != "running"


def live_optimization(clients: PlatformClients, runtime_warehouse: Path, status: str) -> str:
    """support-bot's cascade as an optimization `status` ("experimenting" or "deployed"),
    routed as such, without the nights that would lead there."""
    change = ProposedChange(application_id="support-bot", kind="model_cascade", primary_model=MINI,
                            fallback_model=FOUR_O, confidence_threshold=0.9, monthly_savings_usd=80.0)
    current = clients.orchestrator.routing()
    config = plan.experiment(current, plan.apply_changes(current, [change]), 10, optimization_id="opt-live",
                             experiment_id="exp-opt-live")
    if status == "deployed":
        config = plan.promote_experiment(config, "opt-live")
    clients.orchestrator.update_routing(RoutingConfigUpdate(version=f"opt-live-{status}",
                                                            routing_rules=config.routing_rules,
                                                            default_policy=config.default_policy))
    with Warehouse(runtime_warehouse) as store:
        store.optimizations.save([Optimization.model_validate({
            "optimization_id": "opt-live", "application_id": "support-bot", "changes": [change],
            "fingerprint": fingerprint([change]), "status": status, "proposed_by": "run-0",
            "proposed_at": SANDBOX_NOW, "updated_at": SANDBOX_NOW, "experiment_id": "exp-opt-live",
            "previous_version": current.version, "forecast_monthly_savings_usd": 80.0})])
    return current.version


@pytest.mark.parametrize("status", ["experimenting", "deployed"])
def test_sentinel_stops_a_live_optimization_at_once(tmp_path: Path, status: str) -> None:
    with SandboxServer(sandbox_config()) as sandbox, configured(settings_for(sandbox, tmp_path)) as runtime, \
            PlatformClients.from_settings(runtime.settings) as clients:
        before = live_optimization(clients, runtime.settings.warehouse, status)
        original = next(v for v in clients.orchestrator.routing_history() if v.version == before)
        alert = {"alert_id": "alert-side-effect", "severity": "high", "category": "quality",
                 "alert_type": "optimization_side_effect", "title": "quality drop in optimized requests",
                 "optimization_id": "opt-live", "recommendation": "rollback_optimization",
                 "anomaly_details": {"application_id": "support-bot"}}
        outcome = anomaly_response(alert=alert, event_id="evt-side-effect")  # no approval asked
        assert outcome.strategy == "stop_optimization" and "rolled_back" in outcome.message
        routing = clients.orchestrator.routing()
        assert routing.version == "opt-live-rolled-back"
        assert [r.model_dump() for r in routing.routing_rules] == [r.model_dump() for r in original.routing_rules]
        with Warehouse(runtime.settings.warehouse) as store:
            stopped = store.optimizations.get("opt-live")
        assert stopped is not None and stopped.status == "rolled_back" and stopped.reason.startswith("stopped by sentinel")
        with duckdb.connect(str(runtime.settings.warehouse), read_only=True) as db:
            audit = db.execute("SELECT actor, action FROM audit_log WHERE subject = 'optimization/opt-live'").fetchall()
        assert audit == [("sentinel", "rolled_back")]
        (event,) = [e for e in sandbox.state.events.values() if e["subject"] == "optimization/opt-live"]
        assert event["type"] == "io.llm-platform.optimization.failed"
        assert sandbox.state.anomalies[-1]["report"]["context"]["strategy"] == "stop_optimization"

        # Stopping what is no longer live says so and changes nothing.
        again = anomaly_response(alert=alert, event_id="evt-side-effect-2")
        assert "nothing to stop" in again.message and clients.orchestrator.routing().version == routing.version


def test_a_deployed_change_is_measured_against_its_forecast(tmp_path: Path) -> None:
    with SandboxServer(sandbox_config(requests_per_day=6_000)) as sandbox, \
            configured(settings_for(sandbox, tmp_path)) as runtime, \
            PlatformClients.from_settings(runtime.settings) as clients:
        live_optimization(clients, runtime.settings.warehouse, "deployed")  # from SANDBOX_NOW on
        sandbox.state.set_now(SANDBOX_NOW + timedelta(days=3))
        night = nightly_optimization(window_end=DAY_END + timedelta(days=3), backfill_days=10, propose_changes=False)
        truth = httpx.get(f"{sandbox.url}/_sandbox/truth", params={"day": (DAY_END + timedelta(days=2)).date()},
                          headers={"Authorization": f"Bearer {SANDBOX_DEFAULT_TOKEN}"}, timeout=60).json()
    bot = next(a for a in truth["applications"] if a["application_id"] == "support-bot")
    true_saving = bot["baseline"]["cost_usd"] - bot["live"]["cost_usd"]
    assert night.realized_monthly_savings_usd > 0
    with duckdb.connect(str(runtime.settings.warehouse), read_only=True) as db:
        (record,) = [json.loads(r[0]) for r in db.execute("SELECT record FROM realized_savings").fetchall()]
    low, high = record["saving_per_request_ci"]
    assert low - 0.1 * true_saving < true_saving < high + 0.1 * true_saving  # the world's truth, within the interval
    assert record["forecast_monthly_savings_usd"] == 80.0
    assert record["forecast_error_usd"] == pytest.approx(record["realized_monthly_savings_usd"] - 80.0)
    assert record["requests_after"] > 500 and record["quality_change_ci"] is not None
    html = Path(night.report).read_text(encoding="utf-8")
    assert "Deployed changes: forecast and realized" in html and "opt-live" in html
