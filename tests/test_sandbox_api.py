"""Every sandbox API through the optimizer's own clients, over HTTP on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from optimizer.clients import ObservatoryClient, PlatformClients
from optimizer.errors import PlatformRequestError
from optimizer.sandbox import SandboxServer
from optimizer.sandbox.services.telemetry import RenderedLogs, log_record, rows_of
from optimizer.sandbox.state import SandboxState
from optimizer.sandbox.traffic import MALFORMED_KINDS
from optimizer.schemas.governance import (
    CostRecord,
    LLMRequestSpec,
    Policy,
    PolicyConditions,
    PolicyEnforcement,
    PolicyEvaluationRequest,
    PolicyScope,
    RequestContext,
    TokenCounts,
)
from optimizer.schemas.registry import (
    CurrentConfiguration,
    ModelSearchRequest,
    RecommendationRequest,
    SearchConstraints,
    StoredExperiment,
    TestPeriod,
)
from optimizer.schemas.routing import (
    CascadeConfig,
    EscalationThreshold,
    RoutingConfigUpdate,
    RoutingRule,
    TargetSelection,
)
from optimizer.schemas.sentinel import AnomalyReport
from optimizer.settings import SANDBOX_DEFAULT_TOKEN, Settings
from tests.conftest import DAY_END, SANDBOX_NOW, sandbox_config, settings_for

DAY_START = DAY_END - timedelta(days=1)


@pytest.fixture
def clients(settings: Settings) -> PlatformClients:
    """Clients of the test's own sandbox, for tests that change it."""
    return PlatformClients.from_settings(settings)


@pytest.fixture
def reader(shared_sandbox: SandboxServer, tmp_path: Path) -> PlatformClients:
    """Clients of the session's shared sandbox, for tests that only read."""
    return PlatformClients.from_settings(settings_for(shared_sandbox, tmp_path))


def all_logs(clients: PlatformClients, start, end, page_size=400) -> list[dict]:  # type: ignore[no-untyped-def]
    return [log for page in clients.observatory.search_logs(start, end, page_size=page_size) for log in page.logs]


def test_log_search_pages_through_a_window_exactly_once(reader: PlatformClients, shared_sandbox: SandboxServer) -> None:
    logs = all_logs(reader, DAY_START, DAY_END)
    expected = shared_sandbox.state.visible_requests(DAY_START, DAY_END)
    ids = [log["attributes"].get("llm.request_id") for log in logs]
    assert len(logs) == len(expected) > 1000
    assert len({log["attributes"]["span_id"] for log in logs}) == len(logs)
    stamps = [log["timestamp"] for log in logs if log["timestamp"][0].isdigit()]
    assert stamps == sorted(stamps)
    assert set(filter(None, ids)) <= set(expected["request_id"])


def test_adjacent_windows_share_no_record(reader: PlatformClients) -> None:
    middle = DAY_START + timedelta(hours=13)
    whole = all_logs(reader, DAY_START, DAY_END)
    halves = all_logs(reader, DAY_START, middle) + all_logs(reader, middle, DAY_END)
    assert sorted(log["attributes"]["span_id"] for log in halves) == sorted(
        log["attributes"]["span_id"] for log in whole
    )


def test_log_records_carry_genai_attributes(reader: PlatformClients) -> None:
    page = next(reader.observatory.search_logs(DAY_START, DAY_END, query="llm.application_name:support-bot"))
    attributes = page.logs[0]["attributes"]
    assert attributes["llm.application_name"] == "support-bot"
    for name in ("gen_ai.system", "gen_ai.request.model", "gen_ai.usage.prompt_tokens",
                 "gen_ai.usage.completion_tokens", "llm.request.cost_usd", "llm.response.latency_ms"):
        assert name in attributes


def test_log_query_filters_by_number(reader: PlatformClients, shared_sandbox: SandboxServer) -> None:
    slow = [log for page in reader.observatory.search_logs(
        DAY_START, DAY_END, query="gen_ai.request.model:gpt-4o-2024-08-06 AND llm.response.latency_ms:>2000")
        for log in page.logs]
    frame = shared_sandbox.state.visible_requests(DAY_START, DAY_END)
    expected = frame[(frame["model"] == "gpt-4o-2024-08-06") & (frame["latency_ms"] > 2000)]
    assert 0 < len(slow) == len(expected)
    assert {log["attributes"]["span_id"] for log in slow} == set(expected["span_id"])


def test_every_kind_of_malformed_record_is_served() -> None:
    with SandboxServer(sandbox_config(malformed_share=0.05)) as sandbox:
        served = sandbox.state.visible_requests(DAY_START, DAY_END)
    kinds = {MALFORMED_KINDS[k] for k in served["malformed"] if k >= 0}
    assert kinds == set(MALFORMED_KINDS)


def test_late_records_appear_when_the_clock_moves_on(sandbox: SandboxServer) -> None:
    state = sandbox.state
    state.set_now(DAY_END)
    at_midnight = len(state.visible_requests(DAY_START, DAY_END))
    state.set_now(SANDBOX_NOW)
    later = len(state.visible_requests(DAY_START, DAY_END))
    assert later > at_midnight


def test_same_seed_same_traffic() -> None:
    # Two generators, no servers: the traffic is the generator's, whatever serves it.
    a = SandboxState(sandbox_config()).traffic.day(DAY_START.date())
    b = SandboxState(sandbox_config()).traffic.day(DAY_START.date())
    assert a["request_id"].tolist() == b["request_id"].tolist()
    assert a["cost_usd"].tolist() == b["cost_usd"].tolist()
    other = SandboxState(sandbox_config(seed=8)).traffic.day(DAY_START.date())
    assert a["request_id"].tolist() != other["request_id"].tolist()


def test_p95_latency_by_model_matches_the_records(reader: PlatformClients, shared_sandbox: SandboxServer) -> None:
    result = reader.observatory.query_metrics(
        "gen_ai.client.operation.duration", DAY_START, DAY_END, "p95", group_by=["gen_ai.request.model"]
    )
    frame = shared_sandbox.state.visible_requests(DAY_START, DAY_END)
    for point in result.data_points:
        model = point.attributes["gen_ai.request.model"]
        expected = np.quantile(frame.loc[frame["model"] == model, "latency_ms"], 0.95)
        assert point.value == pytest.approx(expected)
    assert len(result.data_points) == frame["model"].nunique()


def test_metric_sum_count_avg_and_hourly_buckets(reader: PlatformClients, shared_sandbox: SandboxServer) -> None:
    frame = shared_sandbox.state.visible_requests(DAY_START, DAY_END)
    cost = reader.observatory.query_metrics("llm.request.cost_usd", DAY_START, DAY_END, "sum")
    assert cost.data_points[0].value == pytest.approx(frame["cost_usd"].sum())
    errors = reader.observatory.query_metrics("llm.request.errors", DAY_START, DAY_END, "avg",
                                              filters={"llm.shadow": "false"})
    production = frame[~frame["shadow"]]
    assert errors.data_points[0].value == pytest.approx((production["status"] == "error").mean())
    hourly = reader.observatory.query_metrics("llm.request.count", DAY_START, DAY_END, "sum", interval="1h")
    assert len(hourly.data_points) == 24
    assert sum(p.value or 0 for p in hourly.data_points) == len(frame)


def test_unknown_metric_is_a_bad_request(reader: PlatformClients) -> None:
    with pytest.raises(PlatformRequestError) as caught:
        reader.observatory.query_metrics("no.such.metric", DAY_START, DAY_END)
    assert caught.value.status_code == 400


def test_trace_holds_the_request_and_its_shadow(reader: PlatformClients, shared_sandbox: SandboxServer) -> None:
    frame = shared_sandbox.state.visible_requests(DAY_START, DAY_END)
    paired = frame[frame["shadow"]].iloc[0]
    trace = reader.observatory.get_trace(paired["trace_id"])
    assert len(trace.spans) == 2
    assert trace.root_span["attributes"]["llm.shadow"] is False
    child = next(s for s in trace.spans if s is not trace.root_span and s.get("parentSpanId"))
    assert child["parentSpanId"] == trace.root_span["spanId"]


def test_cost_summary_adds_up_to_the_billed_requests(reader: PlatformClients, shared_sandbox: SandboxServer) -> None:
    summary = reader.governance.cost_summary(DAY_START.date(), DAY_START.date())
    frame = shared_sandbox.state.billed_requests(DAY_START, DAY_END)
    assert summary.total_cost_usd == pytest.approx(frame["cost_usd"].sum(), rel=1e-6)
    assert sum(t.cost_usd for t in summary.breakdown.by_team) == pytest.approx(summary.total_cost_usd, rel=1e-6)
    assert {m.model for m in summary.breakdown.by_model} == set(frame["model"])
    assert sum(a.requests or 0 for a in summary.breakdown.by_application) == len(frame)
    assert summary.trends is not None and summary.trends.cost_change_percentage is not None


def test_recorded_cost_reports_budget_status(clients: PlatformClients) -> None:
    recorded = clients.governance.record_cost(CostRecord(
        request_id="req-1", timestamp=SANDBOX_NOW, model="gpt-4o-2024-08-06", provider="openai",
        tokens=TokenCounts(input=100, output=50, total=150), cost_usd=0.75,
        context=RequestContext(team_id="team-marketing", application_id="marketing-writer"),
    ))
    status = recorded.budget_status
    assert status.team_budget_utilization_percentage is not None
    assert status.team_budget_remaining_usd is not None


def test_policies_are_created_listed_and_enforced(clients: PlatformClients) -> None:
    created = clients.governance.create_policy(Policy(
        policy_id="policy-deny-gemini", name="No Gemini in operations",
        scope=PolicyScope(teams=["team-operations"]),
        conditions=PolicyConditions(type="model_denylist", parameters={"denied_models": ["gemini-1.5-flash-002"]}),
        enforcement=PolicyEnforcement(mode="blocking"),
    ))
    assert created.version == 1
    assert "policy-deny-gemini" in {p.policy_id for p in clients.governance.list_policies()}
    verdict = clients.governance.evaluate(PolicyEvaluationRequest(
        request_id="rollout-check-1",
        context=RequestContext(team_id="team-operations", application_id="email-triage", environment="production"),
        llm_request=LLMRequestSpec(model="gemini-1.5-flash-002", estimated_cost_usd=0.0001),
    ))
    assert not verdict.allowed
    assert [v.policy_id for v in verdict.blocking_violations()] == ["policy-deny-gemini"]


def test_data_residency_policy_rejects_a_model_without_eu_hosting(reader: PlatformClients) -> None:
    verdict = reader.governance.evaluate(PolicyEvaluationRequest(
        request_id="r", context=RequestContext(team_id="team-support", environment="production"),
        llm_request=LLMRequestSpec(model="claude-3-5-haiku-20241022"),
    ))
    failed = {p.policy_id for p in verdict.evaluated_policies if p.result == "fail"}
    assert "policy-eu-residency-support" in failed
    ok = reader.governance.evaluate(PolicyEvaluationRequest(
        request_id="r", context=RequestContext(team_id="team-support", environment="production"),
        llm_request=LLMRequestSpec(model="gpt-4o-mini-2024-07-18"),
    ))
    assert "policy-eu-residency-support" not in {p.policy_id for p in ok.evaluated_policies if p.result == "fail"}


def test_registry_catalog_search_and_prices(reader: PlatformClients) -> None:
    catalog = {m.model_id: m for m in reader.registry.model_catalog()}
    assert catalog["gpt-4o-mini-2024-07-18"].cost_structure.input_cost_per_1k_tokens == 0.00015
    assert reader.registry.list_models(provider="anthropic").total == 2
    found = reader.registry.search_models(ModelSearchRequest(
        constraints=SearchConstraints(max_cost_per_request_usd=0.002, required_compliance=["gdpr"])))
    assert found.matches and all((m.estimated_cost_per_request or 1) <= 0.002 for m in found.matches)


def test_registry_keeps_experiments(clients: PlatformClients) -> None:
    running = clients.registry.list_experiments(status="running")
    assert {e.experiment_id for e in running} == {"exp-cascade-001", "exp-compression-001"}
    recorded = clients.registry.record_experiment(StoredExperiment(
        experiment_id="exp-new", experiment_type="model_selection",
        test_period=TestPeriod(start=DAY_START), status="completed", conclusion="done",
    ))
    assert recorded.status == "recorded"
    assert "exp-new" in {e.experiment_id for e in clients.registry.list_experiments(status="completed")}


def test_registry_recommends_a_cascade_for_an_expensive_model(reader: PlatformClients) -> None:
    advice = reader.registry.recommendations(RecommendationRequest(current_configuration=CurrentConfiguration(
        model="gpt-4o-2024-08-06", average_prompt_tokens=800, average_completion_tokens=300,
        requests_per_day=5000, current_daily_cost_usd=25.0)))
    kinds = {r.type for r in advice.recommendations}
    assert kinds == {"model_cascade", "prompt_compression"}


def cascade_update(version: str, primary: str = "gpt-4o-mini-2024-07-18") -> RoutingConfigUpdate:
    return RoutingConfigUpdate(version=version, routing_rules=[RoutingRule(
        id="rule-support-bot", name="support-bot cascade", priority=100,
        conditions={"application_id": "support-bot"},
        target_selection=TargetSelection(strategy="cost_aware_cascade", cascade_config=CascadeConfig(
            primary_model=primary, fallback_models=["gpt-4o-2024-08-06"],
            escalation_threshold=EscalationThreshold(confidence_score=0.7))),
    )])


def test_routing_versions_are_kept_and_immutable(clients: PlatformClients) -> None:
    applied = clients.orchestrator.update_routing(cascade_update("v1.1.0"))
    assert applied.status == "active" and applied.validation_result.valid
    assert clients.orchestrator.routing().version == "v1.1.0"
    assert [v.version for v in clients.orchestrator.routing_history()] == ["v1.1.0", "v1.0.0"]
    with pytest.raises(PlatformRequestError) as caught:
        clients.orchestrator.update_routing(cascade_update("v1.1.0"))
    assert caught.value.status_code == 409


def test_routing_with_an_unknown_model_is_rejected(clients: PlatformClients) -> None:
    with pytest.raises(PlatformRequestError) as caught:
        clients.orchestrator.update_routing(cascade_update("v2", primary="gpt-9"))
    assert caught.value.status_code == 422
    assert clients.orchestrator.routing().version == "v1.0.0"


def test_sentinel_records_reports_and_shows_insights(clients: PlatformClients) -> None:
    reported = clients.sentinel.report_anomaly(AnomalyReport(
        source="llm-auto-optimizer", type="optimization_failure", severity="medium", timestamp=SANDBOX_NOW,
        context={"model": "gpt-4o-2024-08-06", "optimization_type": "prompt_compression"},
        details={"quality_score_drop": 0.25},
    ))
    assert reported.alert_triggered and reported.recommended_actions[0].action == "disable_optimization"
    insights = clients.sentinel.insights(DAY_END - timedelta(days=7), SANDBOX_NOW + timedelta(hours=1))
    assert insights.summary.total_anomalies == 3
    assert {a.type for a in insights.top_anomalies} >= {"latency_spike", "cost_spike"}


def test_requests_without_the_token_are_refused(shared_sandbox: SandboxServer) -> None:
    for service_path in ("observatory/api/v1/traces/x", "registry/api/v1/models", "_sandbox/stats"):
        response = httpx.get(f"{shared_sandbox.url}/{service_path}")
        assert response.status_code == 401
        assert response.json()["error"]
    assert httpx.get(f"{shared_sandbox.url}/_sandbox/health").status_code == 200


def test_malformed_request_body_is_a_400_with_reasons(sandbox: SandboxServer, settings: Settings) -> None:
    response = httpx.post(
        f"{sandbox.url}/governance/api/v1/policies/evaluate", json={"request_id": 5},
        headers={"Authorization": f"Bearer {settings.api_token.get_secret_value()}"},
    )
    assert response.status_code == 400
    assert any(e["field"].endswith("llm_request") for e in response.json()["details"]["errors"])


def test_incidents_name_what_the_world_has_and_reach_the_utc_days_they_touch(sandbox: SandboxServer) -> None:
    url, auth = f"{sandbox.url}/_sandbox/incidents", {"Authorization": f"Bearer {SANDBOX_DEFAULT_TOKEN}"}
    incident = {"incident_id": "errors-late-evening", "anomaly_type": "error_rate_increase", "category": "reliability",
                "severity": 0.8, "application_id": "support-bot", "error_factor": 50.0,
                # 21:00-23:00 UTC on the 24th, written in an offset whose date is already the 25th
                "start": "2026-11-25T02:00:00+05:00", "end": "2026-11-25T04:00:00+05:00"}
    for wrong in ({"model": "no-such-model"}, {"application_id": "no-such-app"}, {"start": "2026-11-24T21:00:00"}):
        assert httpx.post(url, json=incident | wrong, headers=auth).status_code == 400, wrong

    def support_bot_errors() -> int:
        frame = sandbox.state.visible_requests(DAY_END - timedelta(hours=3), DAY_END - timedelta(hours=1))
        return int(((frame["application_id"] == "support-bot") & (frame["status"] == "error")).sum())

    before = support_bot_errors()  # the day is generated, and kept, without the incident
    assert httpx.post(url, json=incident, headers=auth).status_code == 201
    assert sandbox.state.traffic.incidents[-1].start == DAY_END - timedelta(hours=3)
    assert support_bot_errors() > before + 5


def test_the_sandbox_renders_each_log_record_once_while_its_day_stands(sandbox: SandboxServer) -> None:
    """Log search pages are joins of records rendered once per generated day; a day generated
    again (after a routing change) is rendered again from its new rows."""
    start, end = datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
    state = sandbox.state

    def rendered_directly(page: pd.DataFrame) -> list[bytes]:
        return [orjson.dumps(log_record(row), option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
                for row in rows_of(page)]

    page = state.visible_requests(start, end).iloc[100:400]
    rendered = RenderedLogs()
    first = rendered.records(state.traffic, page)
    assert first == rendered_directly(page)
    assert all(a is b for a, b in zip(rendered.records(state.traffic, page), first, strict=True))  # kept

    state.routing_changed(start)
    regenerated = state.visible_requests(start, end).iloc[100:400]
    again = rendered.records(state.traffic, regenerated)
    assert again == rendered_directly(regenerated)
    assert not any(a is b for a, b in zip(again, first, strict=True))

    with ObservatoryClient(f"{sandbox.url}/observatory/api/v1", SANDBOX_DEFAULT_TOKEN) as client:
        served = [log for got in client.search_logs(start, end, page_size=400) for log in got.logs]
    assert served == [log_record(row) for row in rows_of(state.visible_requests(start, end))]
