"""Every event type of the specification's Event Type Registry, sent by the sandbox to the
webhook receiver over loopback: each starts its response or is answered "ignored" with its
reason. Then what the three newer responses do: a model update re-checks the recommendations
that use the model, a policy violation stops a live change Governance now denies, a resolved
anomaly closes its response."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.respond import (
    anomaly_resolved,
    anomaly_response,
    budget_response,
    model_update_check,
    policy_violation_response,
)
from optimizer.catalog import load_catalog
from optimizer.pipeline.respond import report_to_sentinel
from optimizer.pipeline.rollout import apply_routing
from optimizer.pipeline.runtime import Runtime, configured
from optimizer.pipeline.updates import close_response, recheck_model, stop_violating_changes
from optimizer.rollout import plan
from optimizer.sandbox import SandboxServer
from optimizer.schemas.analysis import (
    AdoptedRecommendation,
    CascadeRecommendation,
    CascadeReport,
    CompressionRecommendation,
    CompressionReport,
)
from optimizer.schemas.optimizations import Optimization, fingerprint
from optimizer.schemas.rollout import ProposedChange, ResponseOutcome
from optimizer.settings import MODEL_CATALOG
from optimizer.warehouse import Warehouse
from optimizer.webhook.app import ReceiverConfig
from optimizer.webhook.inbox import Inbox
from tests.conftest import settings_for
from tests.test_webhook import QUICK_RETRIES, TOKEN, flow_run, serving, started_run

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]
EXAMPLES = Path(__file__).parent / "spec_examples"
NOW = datetime(2026, 11, 25, tzinfo=UTC)
MINI, GPT4O, HAIKU = "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "claude-3-5-haiku-20241022"


def example_data(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())["data"]
    return data


@pytest.fixture
def platform(sandbox: SandboxServer, tmp_path: Path) -> Iterator[tuple[SandboxServer, Path]]:
    """The sandbox sending its events to a receiver whose every response deployment exists."""
    for flow, name in ((anomaly_response, "anomaly-response"), (budget_response, "budget-response"),
                       (policy_violation_response, "policy-violation-response"),
                       (anomaly_resolved, "anomaly-resolved"), (model_update_check, "model-update-check")):
        flow.to_deployment(name=name).apply()
    inbox = tmp_path / "inbox.sqlite"
    with serving(ReceiverConfig(token=TOKEN, **QUICK_RETRIES), inbox) as receiver:
        admin(sandbox, "PUT", "subscriber", {"url": f"{receiver.url}/events", "token": TOKEN})
        yield sandbox, inbox


def admin(sandbox: SandboxServer, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.request(method, f"{sandbox.url}/_sandbox/{path}", json=body, timeout=60,
                           headers={"Authorization": "Bearer local-sandbox-token"})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


ACTED_ON = {
    "io.llm-platform.observatory.threshold-exceeded": ("observatory-threshold-exceeded", "anomaly-response"),
    "io.llm-platform.sentinel.alert": ("sentinel-alert", "anomaly-response"),
    "io.llm-platform.governance.policy-violation": ("governance-policy-violation", "policy-violation-response"),
    "io.llm-platform.governance.budget-alert": ("governance-budget-alert", "budget-response"),
}


def deployment_of(inbox: Path, sent: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The deployment whose run the receiver started for an event, and the run's parameters."""
    entry = Inbox(inbox).get(sent["source"], sent["id"])
    assert entry is not None and entry.deployment is not None
    run = flow_run(started_run(inbox, sent["source"], sent["id"]))
    return entry.deployment.split("/")[1], run.parameters


def test_every_platform_event_type_starts_its_response_or_is_ignored_with_a_reason(
    platform: tuple[SandboxServer, Path]
) -> None:
    sandbox, inbox = platform
    for kind, (example, deployment) in ACTED_ON.items():
        sent = admin(sandbox, "POST", "emit", {"type": kind, "data": example_data(example)})
        assert sent["status"] == 202, (kind, sent)
        assert deployment_of(inbox, sent)[0] == deployment, kind
    resolved = admin(sandbox, "POST", "emit", {"type": "io.llm-platform.sentinel.anomaly-resolved",
                                               "data": {"alert_id": "alert-789", "resolution": "latency back to 2s"}})
    assert resolved["status"] == 202
    assert deployment_of(inbox, resolved) == ("anomaly-resolved", {
        "data": {"alert_id": "alert-789", "resolution": "latency back to 2s", "anomaly_details": {}},
        "event_id": resolved["id"]})
    changed = admin(sandbox, "PATCH", f"models/{MINI}", {"status": "deprecated", "deprecation_date": "2027-01-31"})
    delivered = changed["delivered"]
    assert delivered["status"] == 202 and delivered["source"] == "/registry"
    deployment, parameters = deployment_of(inbox, delivered)
    assert deployment == "model-update-check" and parameters["data"]["model_id"] == MINI
    assert "status" in parameters["data"]["changed_fields"]
    for kind in ("io.llm-platform.request.received", "io.llm-platform.request.routed",
                 "io.llm-platform.response.completed"):
        ignored = admin(sandbox, "POST", "emit", {"type": kind, "data": {"request_id": "req-abc123"}})
        assert ignored["status"] == 200 and ignored["answer"]["ignored"] is True
        (entry,) = ignored["answer"]["events"]
        assert "per-request traffic" in entry["reason"], kind


# ---- what the responses do -----------------------------------------------------------------

def cascade(application: str, primary: str) -> CascadeRecommendation:
    return CascadeRecommendation(
        application_id=application, decision="adopt", primary_model=primary, fallback_model=GPT4O,
        confidence_threshold=0.9, escalation_rate=0.2, cost_reduction_pct=40.0, quality_change=-0.004,
        quality_change_ci=(-0.009, 0.001), n_pairs=900, reason="shadow pairs")


def adopted_night(runtime: Runtime) -> None:
    """A night that adopted a cascade with GPT-4o mini for support-bot and one with Gemini for
    email-triage."""
    recommendations = [cascade("support-bot", MINI), cascade("email-triage", "gemini-1.5-flash-002")]
    with Warehouse(runtime.settings.warehouse) as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        store.results.record(
            "run-1", cascades=CascadeReport(recommendations=recommendations, max_quality_drop=0.02, alpha=0.05),
            compression=CompressionReport(recommendations=[], max_quality_drop=0.02, alpha=0.05), experiments=[],
            adopted=[AdoptedRecommendation(recommendation_id=f"rec-{r.application_id}", kind="model_cascade",
                                           application_id=r.application_id, description="cascade",
                                           monthly_savings_usd=100.0) for r in recommendations],
            events=[])
        store.runs.save("run-1", NOW, (None, NOW), "{}")


def audit(runtime: Runtime, subject: str) -> list[str]:
    with Warehouse(runtime.settings.warehouse) as store:
        return [str(e["action"]) for e in store.audit.entries(subject)]


def test_a_deprecated_model_invalidates_the_recommendations_that_use_it(sandbox: SandboxServer, tmp_path: Path) -> None:
    runtime = Runtime(settings_for(sandbox, tmp_path))
    adopted_night(runtime)
    admin(sandbox, "PATCH", f"models/{MINI}", {"status": "deprecated", "deprecation_date": "2027-01-31"})
    with configured(runtime.settings):
        checked = model_update_check(data={"model_id": MINI}, event_id="evt-1")
    assert checked.status == "deprecated"
    (only,) = checked.checked  # email-triage's cascade does not use the model
    assert (only.subject, only.verdict) == ("recommendation/rec-support-bot", "invalidated")
    assert only.reasons == [f"{MINI} is deprecated from 2027-01-31"]
    assert audit(runtime, "recommendation/rec-support-bot") == ["recheck:invalidated"]
    with Warehouse(runtime.settings.warehouse) as store:
        stored = next(p for p in store.reference.model_profiles() if p.model_id == MINI)
    (event,) = sandbox.state.events.values()  # delivered by the flow
    assert event["type"] == "io.llm-platform.optimization.failed" and event["data"]["reason"] == "model_updated"
    assert event["subject"] == "recommendation/rec-support-bot"
    assert stored.status == "deprecated"  # the next analysis sees the profile as it now is


def test_a_price_change_revises_what_a_compression_saves(sandbox: SandboxServer, tmp_path: Path) -> None:
    runtime = Runtime(settings_for(sandbox, tmp_path))
    compression = CompressionRecommendation(
        application_id="doc-qa", decision="adopt", technique="llmlingua", model=GPT4O, token_reduction_pct=35.0,
        quality_change=-0.002, quality_change_ci=(-0.006, 0.002), estimated_monthly_savings_usd=200.0,
        min_prompt_tokens=800, n_compressed=500, n_uncompressed=500, reason="compressed traffic")
    with Warehouse(runtime.settings.warehouse) as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        price = store.reference.input_prices()[GPT4O]
        store.results.record(
            "run-1", cascades=CascadeReport(recommendations=[], max_quality_drop=0.02, alpha=0.05),
            compression=CompressionReport(recommendations=[compression], max_quality_drop=0.02, alpha=0.05),
            experiments=[], events=[], adopted=[AdoptedRecommendation(
                recommendation_id="rec-doc-qa", kind="prompt_compression", application_id="doc-qa",
                description="compression", monthly_savings_usd=200.0)])
        store.runs.save("run-1", NOW, (None, NOW), "{}")
    admin(sandbox, "PATCH", f"models/{GPT4O}", {"input_cost_per_1k_tokens": price / 2})
    (only,) = recheck_model(runtime, GPT4O, "evt-2").checked
    assert only.verdict == "savings_changed" and only.revised_monthly_savings_usd == pytest.approx(100.0)


def live_outside_eu(runtime: Runtime, sandbox: SandboxServer) -> Optimization:
    """A change live as an experiment for support-bot that sends its traffic to a model
    without EU residency (support-bot's policy requires it in production)."""
    change = ProposedChange(application_id="support-bot", kind="preferred_model", team_id="team-support",
                            preferred_models=[HAIKU], monthly_savings_usd=50.0)
    optimization = Optimization(optimization_id="opt-eu", application_id="support-bot", changes=[change],
                                fingerprint=fingerprint([change]), status="experimenting", proposed_by="run-1",
                                proposed_at=NOW, updated_at=NOW, experiment_id="exp-opt-eu")
    with runtime.clients() as clients:
        current = clients.orchestrator.routing()
    live = plan.experiment(current, plan.apply_changes(current, [change]), 10, optimization_id="opt-eu",
                           experiment_id="exp-opt-eu")
    apply_routing(runtime, live, "opt-eu-experiment")
    with Warehouse(runtime.settings.warehouse) as store:
        store.optimizations.save([optimization])
    return optimization


def test_a_policy_violation_stops_the_live_change_governance_now_denies(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    runtime = Runtime(settings_for(sandbox, tmp_path))
    live_outside_eu(runtime, sandbox)
    violation = example_data("governance-policy-violation") | {
        "policy_id": "policy-eu-residency-support", "violation_type": "data_residency",
        "context": {"team_id": "team-support", "application_id": "support-bot"}}
    with configured(runtime.settings):
        answered = policy_violation_response(data=violation, event_id="evt-v")
    assert answered.applications == ["support-bot"] and answered.kept == []
    (stopped,) = answered.stopped
    assert stopped.startswith("opt-eu rolled_back as routing version opt-eu-rolled-back")
    assert not any("opt-eu" in str(r.optimization_hints) for r in sandbox.state.routing_versions[-1].routing_rules)
    with Warehouse(runtime.settings.warehouse) as store:
        ended = store.optimizations.get("opt-eu")
    assert ended is not None and ended.status == "rolled_back" and "policy-eu-residency-support" in ended.reason
    assert audit(runtime, "optimization/opt-eu") == ["rolled_back"]
    (event,) = sandbox.state.events.values()
    assert event["type"] == "io.llm-platform.optimization.failed" and event["subject"] == "optimization/opt-eu"


def test_a_budget_violation_stops_no_savings(sandbox: SandboxServer, tmp_path: Path) -> None:
    runtime = Runtime(settings_for(sandbox, tmp_path))
    live_outside_eu(runtime, sandbox)
    violation = example_data("governance-policy-violation") | {"context": {"application_id": "support-bot"}}
    answered = stop_violating_changes(runtime, violation)  # the example's budget_exceeded
    assert answered.stopped == [] and "budget" in answered.message
    with Warehouse(runtime.settings.warehouse) as store:
        still = store.optimizations.get("opt-eu")
    assert still is not None and still.status == "experimenting"


def test_a_resolved_anomaly_closes_its_response(sandbox: SandboxServer, tmp_path: Path) -> None:
    runtime = Runtime(settings_for(sandbox, tmp_path))
    report_to_sentinel(runtime, ResponseOutcome(trigger="io.llm-platform.sentinel.alert", event_id="evt-a",
                                                alert_id="alert-789", strategy="faster_model",
                                                message="no change proposed (faster_model)"))
    assert audit(runtime, "anomaly/alert-789") == ["responded"]
    with configured(runtime.settings):
        closed = anomaly_resolved(data={"alert_id": "alert-789"}, event_id="evt-r")
    assert closed == "the response to alert-789 is closed"
    assert audit(runtime, "anomaly/alert-789") == ["responded", "closed"]
    assert close_response(runtime, {"alert_id": "alert-789"}, "evt-r2") == "the response to alert-789 was closed before"
