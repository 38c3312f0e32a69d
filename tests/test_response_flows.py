"""Event-triggered flows after a nightly run: each alert type proposes the right change, the
change goes through the approval gate, and Sentinel hears the outcome. Runs are named after
the applications they touch and their day."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName

from flows.nightly import nightly_optimization
from flows.respond import anomaly_response, budget_response
from optimizer.pipeline.models import select_models
from optimizer.pipeline.published import read_night
from optimizer.pipeline.runtime import Runtime, configured
from optimizer.sandbox import SandboxServer
from optimizer.schemas.rollout import ResponseOutcome, RolloutOutcome
from optimizer.schemas.selection import (
    ModelSelectionRequest,
    RankedModel,
    SelectionConstraints,
    SelectionPreferences,
    SelectionRequirements,
)
from optimizer.webhook.routes import route_event
from tests.conftest import DAY_END, in_thread, sandbox_config, settings_for
from tests.test_rollout import answer, flow_run

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]
Outcome = TypeVar("Outcome", ResponseOutcome, RolloutOutcome)


@pytest.fixture(scope="module")
def after_a_night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A sandbox and a warehouse holding a week of traffic and one night's recommendations."""
    with SandboxServer(sandbox_config(requests_per_day=6_000)) as sandbox, \
            configured(settings_for(sandbox, tmp_path_factory.mktemp("responses"), approvers=["alice", "bob"],
                                    max_latency_increase_ms=None)):
        nightly_optimization(window_end=DAY_END, backfill_days=7, max_p95_latency_increase_pct=None)
        yield sandbox


def respond_and_reject(flow: Callable[..., Outcome], **parameters: Any) -> Outcome:
    """Run a response flow; if its rollout asks for approval, bob rejects it."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["outcome"] = flow(**parameters)
        except BaseException as exc:
            result["error"] = exc

    parameters.setdefault("approval_poll_s", 1)
    thread = in_thread(target)
    deadline = time.monotonic() + 120
    while thread.is_alive() and time.monotonic() < deadline:
        with contextlib.suppress(AssertionError):
            answer("reject", "bob", "not during the incident", timeout=2)
    thread.join(5)
    if "error" in result:
        raise result["error"]
    outcome: Outcome = result["outcome"]
    return outcome


def run_names(flow_name: str) -> set[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    return {r.name for r in runs}


def reported(sandbox: SandboxServer, event_id: str) -> dict[str, Any]:
    return next(a for a in sandbox.state.anomalies if a["report"]["context"].get("event_id") == event_id)  # type: ignore[index, union-attr]


def test_latency_anomaly_proposes_a_faster_model_of_the_same_quality(after_a_night: SandboxServer) -> None:
    alert = {"alert_id": "alert-1", "severity": "high", "category": "performance", "alert_type": "latency_anomaly",
             "anomaly_details": {"affected_model": "gpt-4o-2024-08-06", "current_p95_ms": 6850}}
    outcome = respond_and_reject(anomaly_response, alert=alert, event_id="lat-1")
    assert outcome.strategy == "faster_model"
    assert set(outcome.applications) == {"support-bot", "marketing-writer"}
    assert {c.preferred_models[0] for c in outcome.changes} == {"claude-3-5-sonnet-20241022"}
    # gpt-4o's figures are measured on these applications' traffic; Claude has none there
    assert all("measured on" in c.reason and "no traffic in scope" in c.reason for c in outcome.changes)
    assert outcome.rollout is not None
    # support-bot's EU residency policy forbids an Anthropic model: blocked before anyone is asked
    assert outcome.rollout.status == "blocked" and "EU data residency" in outcome.rollout.message
    report = reported(after_a_night, "lat-1")
    assert report["report"]["details"]["outcome"] == "blocked"


def test_an_observatory_threshold_on_latency_proposes_a_faster_model(after_a_night: SandboxServer) -> None:
    # The specification's threshold-exceeded example, for a model the sandbox serves, as the
    # receiver hands it to the flow.
    example = json.loads((Path(__file__).parent / "spec_examples" / "observatory-threshold-exceeded.json").read_text())
    example["data"]["model"] = "gpt-4o-2024-08-06"
    routed = route_event(example)
    assert routed is not None and routed[0] == "anomaly-response/anomaly-response"
    outcome = respond_and_reject(anomaly_response, **routed[1])
    assert outcome.trigger == "io.llm-platform.observatory.threshold-exceeded" and outcome.strategy == "faster_model"
    assert set(outcome.applications) == {"support-bot", "marketing-writer"}
    assert {c.preferred_models[0] for c in outcome.changes} == {"claude-3-5-sonnet-20241022"}
    assert reported(after_a_night, "A234-1234-1234")["report"]["context"]["trigger"] == example["type"]


def test_cost_spike_proposes_compression_and_caching(after_a_night: SandboxServer) -> None:
    """doc-qa's prompts never repeat: compression (certified) and no caching."""
    alert = {"alert_id": "alert-2", "severity": "medium", "category": "cost", "alert_type": "cost_spike",
             "anomaly_details": {"application_id": "doc-qa"}}
    outcome = respond_and_reject(anomaly_response, alert=alert, event_id="cost-1")
    assert outcome.strategy == "compression_and_caching" and outcome.applications == ["doc-qa"]
    assert [c.kind for c in outcome.changes] == ["prompt_compression"]
    assert outcome.rollout is not None and outcome.rollout.status == "rejected"
    assert reported(after_a_night, "cost-1")["report"]["details"]["outcome"] == "rejected"
    names = run_names("anomaly-response")
    assert any(n.startswith("anomaly-doc-qa-20") for n in names), names


def test_cost_spike_caches_only_where_prompts_repeat_with_the_ttl_the_evidence_chose(
    after_a_night: SandboxServer,
) -> None:
    alert = {"alert_id": "alert-6", "severity": "medium", "category": "cost", "alert_type": "cost_spike",
             "anomaly_details": {"affected_model": "gpt-4o-2024-08-06"}}
    outcome = respond_and_reject(anomaly_response, alert=alert, event_id="cost-2")
    assert set(outcome.applications) == {"support-bot", "marketing-writer"}
    (change,) = outcome.changes  # marketing-writer sends no prompt hash: no caching there
    assert (change.application_id, change.kind) == ("support-bot", "caching")
    assert change.cache_ttl_seconds in (3600, 21600, 86400) and change.monthly_savings_usd
    assert "as good as a new one" in change.reason
    assert outcome.rollout is not None and outcome.rollout.status == "rejected"
    (rule,) = [d for d in outcome.rollout.diff if d.after["conditions"].get("application_id") == "support-bot"]
    assert rule.after["optimization_hints"]["cache_ttl_seconds"] == change.cache_ttl_seconds


def test_quality_degradation_proposes_a_better_model(after_a_night: SandboxServer) -> None:
    alert = {"alert_id": "alert-3", "severity": "high", "category": "quality", "alert_type": "quality_degradation",
             "anomaly_details": {"affected_model": "gpt-4o-mini-2024-07-18"}}
    outcome = respond_and_reject(anomaly_response, alert=alert, event_id="quality-1")
    assert outcome.strategy == "higher_quality_model" and outcome.applications == ["email-triage"]
    (change,) = outcome.changes
    assert change.kind == "preferred_model" and change.preferred_models[1] == "gpt-4o-mini-2024-07-18"
    assert "measured on" in change.reason
    assert outcome.rollout is not None and outcome.rollout.status == "rejected"


def test_budget_alert_proposes_the_teams_adopted_savings(after_a_night: SandboxServer) -> None:
    alert = {"alert_id": "alert-4", "alert_type": "threshold_exceeded", "severity": "warning",
             "team_id": "team-support", "period": "monthly", "budget_limit_usd": 500.0, "current_spend_usd": 450.0,
             "utilization_percentage": 90.0, "threshold_percentage": 80.0}
    outcome = respond_and_reject(budget_response, alert=alert, event_id="budget-1")
    assert outcome.applications == ["support-bot"]
    assert [c.kind for c in outcome.changes] == ["caching", "model_cascade"]
    assert all(c.monthly_savings_usd and c.monthly_savings_usd > 0 for c in outcome.changes)
    assert outcome.rollout is not None and outcome.rollout.status == "rejected"
    names = run_names("budget-response")
    assert any(n.startswith("budget-support-bot-20") for n in names), names


def test_an_alert_with_nothing_to_do_is_acknowledged(after_a_night: SandboxServer, tmp_path: Path) -> None:
    del tmp_path
    alert = {"alert_id": "alert-5", "severity": "low", "category": "security", "alert_type": "prompt_injection"}
    state = anomaly_response(alert=alert, event_id="sec-1", return_state=True)
    outcome = state.result()
    assert outcome.strategy == "monitor" and outcome.rollout is None
    assert reported(after_a_night, "sec-1")["report"]["details"]["outcome"] == "no_change"
    # Named after what the alert names when no application is touched.
    assert flow_run(state).name.startswith("anomaly-prompt_injection-20")


def test_the_nightly_run_is_named_after_its_day(after_a_night: SandboxServer) -> None:
    assert f"nightly-{DAY_END.date()}" in run_names("nightly-optimization")


def test_a_rollout_by_default_proposes_the_latest_nights_adoptions(after_a_night: SandboxServer) -> None:
    from flows.rollout import outcome_of, rollout

    def run(**parameters: Any) -> RolloutOutcome:
        return outcome_of(rollout(**parameters, return_state=True))

    outcome = respond_and_reject(run, requested_by="test")
    kinds = sorted((c.application_id, c.kind) for c in outcome.changes)
    assert ("support-bot", "model_cascade") in kinds and ("doc-qa", "prompt_compression") in kinds
    assert all(c.recommendation_id and c.monthly_savings_usd for c in outcome.changes)
    assert {r.rule_id for r in outcome.diff} >= {"rule-support-bot", "rule-doc-qa"}
    assert outcome.status == "rejected"
    # Named "rollout-test-..." until the proposal named the applications.
    assert any(n.startswith("rollout-doc-qa+") and "+support-bot" in n for n in run_names("rollout"))


def test_model_choice_ranks_on_the_warehouses_traffic(after_a_night: SandboxServer) -> None:
    runtime = Runtime.current()
    with runtime.warehouse() as store:
        traffic = store.request_source().traffic_cells()

    def ranked(**constraints: Any) -> dict[str, RankedModel]:
        request = ModelSelectionRequest(
            requirements=SelectionRequirements(applications=["email-triage"]), current_model="gpt-4o-mini-2024-07-18",
            constraints=SelectionConstraints(**constraints), preferences=SelectionPreferences(optimize_for="quality"))
        return {r.model_id: r for r in select_models(runtime, request, traffic).ranked}

    found = ranked()
    # email-triage is served by GPT-4o mini and shadowed by Gemini: both measured there
    assert found["gpt-4o-mini-2024-07-18"].source == "warehouse" and found["gemini-1.5-flash-002"].source == "warehouse"
    assert found["gpt-4o-mini-2024-07-18"].requests > 200
    assert found["gpt-4o-2024-08-06"].source == "registry" and "no traffic in scope" in found["gpt-4o-2024-08-06"].rationale
    # The Registry's search leaves out models without EU data residency (Anthropic's)
    assert set(ranked(data_residency="EU")) == {m for m in found if not m.startswith("claude")}


def test_the_night_is_published_for_the_api(after_a_night: SandboxServer) -> None:
    night = read_night(Runtime.current().settings.api_snapshot)
    assert night is not None and night.window_end == DAY_END
    assert {(s.application_id, s.strategy_type) for s in night.strategies} >= {
        ("support-bot", "model_cascade"), ("doc-qa", "prompt_compression")}
    assert all(s.confidence > 0 and s.estimated_impact and s.implementation for s in night.strategies)
    assert {e.experiment_id for e in night.experiments} == {"exp-cascade-001", "exp-compression-001"}
    assert night.serving["email-triage"] == "gpt-4o-mini-2024-07-18"
    assert {"gpt-4o-mini-2024-07-18", "gemini-1.5-flash-002"} <= {c.model_id for c in night.traffic
                                                                  if c.application_id == "email-triage"}
