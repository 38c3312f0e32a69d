"""The upstream services' APIs beside the specification's: the sandbox serves both over the
same data, a single-style sandbox refuses the other, `auto` finds which one a service
speaks, and the nightly run and the event-triggered flows work against upstream only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import httpx
import pytest

from flows.nightly import nightly_optimization
from flows.respond import anomaly_response, budget_response
from optimizer.clients import PlatformClients
from optimizer.pipeline.runtime import configured
from optimizer.report import NightlySummary
from optimizer.rollout.strategies import affected, strategy_for
from optimizer.sandbox import SandboxServer
from optimizer.schemas.governance import (
    LLMRequestSpec,
    PolicyDecision,
    PolicyEvaluationRequest,
    RequestContext,
)
from optimizer.schemas.observatory import AnalyticsMetric, AnalyticsQuery
from optimizer.schemas.sentinel import AnomalyEvent
from optimizer.settings import SANDBOX_DEFAULT_TOKEN, Settings
from optimizer.webhook.sentinel import event_from_webhook
from tests.conftest import DAY_END, sandbox_config, settings_for, speaking
from tests.test_response_flows import respond_and_reject
from tests.test_webhook import ANOMALY, sentinel_webhook

AUTH = {"Authorization": f"Bearer {SANDBOX_DEFAULT_TOKEN}"}
DAY_START = DAY_END - timedelta(days=1)


def styled(sandbox: SandboxServer, style: str) -> Settings:
    return Settings(http_backoff_s=0.01, http_max_backoff_s=0.05, **speaking(style)).pointing_at_sandbox(sandbox.url)


def test_the_analytics_api_counts_the_same_traffic_as_the_specifications_queries(shared_sandbox: SandboxServer) -> None:
    with PlatformClients.from_settings(styled(shared_sandbox, "spec")) as clients:
        spec_count = clients.observatory.query_metrics("llm.request.count", DAY_START, DAY_END, "sum")
        spec_errors = clients.observatory.query_metrics("llm.request.errors", DAY_START, DAY_END, "avg")
        spec_costs = clients.governance.cost_summary(DAY_START.date(), DAY_START.date())
        analytics = clients.observatory.analytics(AnalyticsQuery(
            metrics=[AnalyticsMetric(metric="request_count", aggregation="sum", alias="n"),
                     AnalyticsMetric(metric="error_rate", aggregation="avg"),
                     AnalyticsMetric(metric="total_cost", aggregation="sum")],
            interval="one_day", start_time=DAY_START, end_time=DAY_END, group_by=["model"]))
        costs = clients.observatory.cost_summary_upstream(DAY_START.date(), DAY_START.date())
    rows = analytics.data
    assert {r["timestamp"] for r in rows} == {"2026-11-24T00:00:00Z"} and len(rows) == 5  # one row per model
    assert sum(r["n"] for r in rows) == spec_count.data_points[0].value
    errors = sum(r["error_rate"] * r["n"] for r in rows) / sum(r["n"] for r in rows)
    assert errors == pytest.approx(spec_errors.data_points[0].value)
    assert costs.overview.total_cost == pytest.approx(spec_costs.total_cost_usd, rel=1e-6)
    assert sum(r["total_cost"] for r in rows) == pytest.approx(costs.overview.total_cost, rel=1e-6)
    assert {s.name for s in costs.by_model} == {m.model for m in spec_costs.breakdown.by_model}


@pytest.mark.parametrize(("only", "refused"), [
    ("upstream", [("GET", "/observatory/api/v1/metrics/query?metric_name=llm.request.count&start_time=2026-11-24T00:00:00Z&end_time=2026-11-25T00:00:00Z"),
                  ("GET", "/governance/api/v1/costs/summary?start_date=2026-11-24&end_date=2026-11-24"),
                  ("POST", "/governance/api/v1/policies/evaluate"), ("POST", "/sentinel/api/v1/anomalies")]),
    ("spec", [("POST", "/observatory/api/v1/metrics/query"),
              ("GET", "/observatory/api/v1/costs/summary?start_time=2026-11-24T00:00:00Z&end_time=2026-11-25T00:00:00Z"),
              ("POST", "/policy-engine/api/evaluate")]),
])
def test_a_single_style_sandbox_has_no_routes_of_the_other(only: str, refused: list[tuple[str, str]]) -> None:
    with SandboxServer(sandbox_config(api_style=only)) as sandbox:
        for method, path in refused:
            response = httpx.request(method, sandbox.url + path, headers=AUTH, json={} if method == "POST" else None)
            assert response.status_code in {404, 405}, (method, path, response.status_code)


@pytest.mark.parametrize("only", ["spec", "upstream"])
def test_auto_finds_the_style_each_service_speaks(only: str) -> None:
    with SandboxServer(sandbox_config(api_style=only)) as sandbox, \
            PlatformClients.from_settings(styled(sandbox, "auto")) as clients:
        assert clients.observatory.style.style == only
        assert clients.policy_style.style == only
        assert clients.sentinel.style.style == only
        stats = clients.observatory.traffic(DAY_START, DAY_END, application="support-bot",
                                            models=["gpt-4o-2024-08-06"])
        summary = clients.cost_summary(DAY_START.date(), DAY_START.date())
    assert stats.requests > 100 and summary.total_cost_usd > 0


def test_the_policy_engine_judges_over_the_same_policies(shared_sandbox: SandboxServer) -> None:
    request = PolicyEvaluationRequest(
        request_id="r-1", context=RequestContext(team_id="team-support", application_id="support-bot",
                                                 environment="production"),
        llm_request=LLMRequestSpec(model="claude-3-5-haiku-20241022"))
    verdicts = {}
    for style in ("spec", "upstream"):
        with PlatformClients.from_settings(styled(shared_sandbox, style)) as clients:
            verdicts[style] = clients.evaluate_policy(request, provider="anthropic")
    assert not verdicts["spec"].allowed and not verdicts["upstream"].allowed
    (blocking,) = verdicts["upstream"].blocking_violations()
    assert "EU data residency" in blocking.description


def test_policy_decisions_are_read_flat_or_nested() -> None:
    flat = PolicyDecision.model_validate({"decision": "deny", "allowed": False, "reason": "over budget",
                                          "matched_policies": ["p-1"], "matched_rules": ["r-1"],
                                          "modifications": None})
    nested = PolicyDecision.model_validate({"requestId": "x", "decision": {
        "decision": "warn", "allowed": True, "reason": "expensive", "matchedPolicies": ["p-2"], "matchedRules": []}})
    assert flat.as_evaluation("a").blocking_violations()[0].description == "over budget"
    assert nested.matched_policies == ["p-2"] and nested.as_evaluation("b").warnings == ["expensive"]


# ---- against an upstream-only platform ------------------------------------------------


@dataclass
class UpstreamNight:
    sandbox: SandboxServer
    settings: Settings
    summary: NightlySummary


@pytest.fixture(scope="module")
def upstream_night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpstreamNight]:
    """A platform that speaks only the upstream APIs, and one nightly run against it."""
    with SandboxServer(sandbox_config(requests_per_day=6_000, api_style="upstream")) as sandbox:
        folder = tmp_path_factory.mktemp("upstream")
        settings = settings_for(sandbox, folder, approvers=["alice", "bob"], max_latency_increase_ms=None,
                                **speaking("upstream"))
        with configured(settings):  # also for the response flows of the tests that use it
            summary = nightly_optimization(window_end=DAY_END, backfill_days=7, max_p95_latency_increase_pct=None)
            yield UpstreamNight(sandbox, settings, summary)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_the_nightly_run_works_against_upstream_apis(upstream_night: UpstreamNight) -> None:
    summary = upstream_night.summary
    assert summary.requests_loaded > 25_000 and summary.cost_days == 14
    assert {r.application_id for r in summary.recommendations} >= {"support-bot", "doc-qa"}
    assert summary.budgets_flagged == ["team-marketing"]  # team spend split from the month's total
    with duckdb.connect(str(upstream_night.settings.warehouse), read_only=True) as db:
        by = dict(db.execute("SELECT dimension, count(*) FROM cost_summaries GROUP BY 1").fetchall())
    assert by.get("model", 0) > 0 and "team" not in by  # the analytics API has no team breakdown


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_sentinels_latency_spike_is_answered_with_the_policy_engines_verdict(upstream_night: UpstreamNight) -> None:
    alert = AnomalyEvent.model_validate(ANOMALY).as_alert().model_dump(mode="json", exclude_none=True)
    outcome = respond_and_reject(anomaly_response, alert=alert, event_id="up-1", approval_poll_s=1)
    assert outcome.strategy == "faster_model" and outcome.applications == ["support-bot"]
    assert outcome.rollout is not None and outcome.rollout.status == "blocked"
    assert "EU data residency" in outcome.rollout.message  # from the policy engine
    assert outcome.reported_anomaly_id is None and upstream_night.sandbox.state.anomalies == []


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_budget_alert_is_answered_against_upstream_apis(upstream_night: UpstreamNight) -> None:
    alert = {"alert_id": "up-budget", "alert_type": "threshold_exceeded", "severity": "warning",
             "team_id": "team-support", "period": "monthly", "budget_limit_usd": 500.0, "current_spend_usd": 450.0,
             "utilization_percentage": 90.0, "threshold_percentage": 80.0}
    outcome = respond_and_reject(budget_response, alert=alert, event_id="up-budget", approval_poll_s=1)
    # support-bot's prompt hashes reach the warehouse through the upstream log search too
    assert [c.kind for c in outcome.changes] == ["caching", "model_cascade"]
    assert outcome.rollout is not None and outcome.rollout.status == "rejected"


def test_upstream_cost_summaries_keep_the_total_and_the_model_split() -> None:
    from optimizer.schemas.observatory import CostsSummary

    summary = CostsSummary.model_validate({
        "metadata": {}, "overview": {"total_cost": 12.5, "total_requests": 100},
        "by_model": [{"name": "gpt-4o", "cost": 10.0, "requests": 60}, {"name": "gpt-4o-mini", "cost": 2.5,
                                                                         "requests": 40}],
        "by_environment": [{"name": "production", "cost": 12.5, "requests": 100}],
    }).as_cost_summary(date(2026, 11, 24), date(2026, 11, 24))
    assert summary.total_cost_usd == 12.5 and summary.period == "daily"
    assert [(m.model, m.cost_usd) for m in summary.breakdown.by_model] == [("gpt-4o", 10.0), ("gpt-4o-mini", 2.5)]
    assert summary.breakdown.by_team == []


@pytest.mark.parametrize(("anomaly_type", "strategy"), [
    ("latency_spike", "faster_model"), ("throughput_degradation", "faster_model"),
    ("cost_anomaly", "compression_and_caching"), ("token_usage_spike", "compression_and_caching"),
    ("quality_degradation", "higher_quality_model"), ("hallucination", "higher_quality_model"),
    ("input_drift", "monitor"), ("security_threat", "monitor"),
])
def test_each_kind_of_sentinel_anomaly_gets_its_response(anomaly_type: str, strategy: str) -> None:
    body, _ = sentinel_webhook(ANOMALY | {"anomaly_type": anomaly_type})
    event = event_from_webhook(body)
    assert event["type"] == "io.llm-platform.sentinel.alert"
    assert strategy_for(event["type"], event["data"]) == strategy
    assert affected(event["data"]) == ("gpt-4o-2024-08-06", "support-bot")
