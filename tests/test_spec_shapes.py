"""The specification's JSON examples (tests/spec_examples/) against what the optimizer reads
and sends: every field name the specification writes, in its place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from optimizer.analysis.experiments import VariantStatistics, analyse_experiment
from optimizer.analysis.statistics import Proportion, SampleMean
from optimizer.catalog import load_catalog
from optimizer.experiment_records import experiment_event, registry_conclusion, stored_experiment
from optimizer.ingest.staging import StagingWriter
from optimizer.pipeline.rollout import check_policies
from optimizer.pipeline.runtime import Runtime
from optimizer.rollout.events import optimization_event, optimization_type, outcome_event
from optimizer.sandbox import SandboxServer
from optimizer.sandbox.emitter import SOURCES
from optimizer.schemas.analysis import (
    ExperimentAnalysis,
    VariantUsage,
)
from optimizer.schemas.governance import PolicyEvaluation, PolicyEvaluationRequest
from optimizer.schemas.loads import LoadBatch
from optimizer.schemas.observatory import MetricQueryResult
from optimizer.schemas.optimizations import Optimization
from optimizer.schemas.registry import (
    ExperimentRecorded,
    ModelProfile,
    StoredExperiment,
    TestPeriod,
)
from optimizer.schemas.rollout import (
    GuardrailReading,
    GuardrailVerdict,
    ProposedChange,
    RolloutOutcome,
)
from optimizer.schemas.routing import RoutingConfig
from optimizer.settings import MODEL_CATALOG
from optimizer.warehouse import Warehouse
from optimizer.webhook.routes import IGNORED, ROUTES, route_event
from tests.conftest import settings_for

EXAMPLES = Path(__file__).parent / "spec_examples"


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


def field_paths(value: Any, prefix: str = "") -> set[str]:
    """Every field name with its place (`data.variants[].metrics.error_rate`)."""
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in {f"{prefix}{k}", *field_paths(v, f"{prefix}{k}.")}}
    if isinstance(value, list):
        return {p for item in value for p in field_paths(item, f"{prefix[:-1]}[].")} if value else set()
    return set()


# ---- Governance: the policy evaluation, in both of the specification's answer styles ------

def denied_example() -> dict[str, Any]:
    """The specification's REST answer with its cost policy failed: `allowed: false`, the
    failure in `evaluated_policies`, and no `violations` list (the REST example has none)."""
    answer = example("governance-policy-evaluate-response")
    answer["allowed"] = False
    answer["evaluated_policies"][0]["result"] = "fail"
    return answer


def test_the_rest_example_is_read_as_allowed_and_its_failure_as_a_denial() -> None:
    assert PolicyEvaluation.model_validate(example("governance-policy-evaluate-response")).denials() == []
    (reason,) = PolicyEvaluation.model_validate(denied_example()).denials()
    assert reason.startswith("Monthly Cost Limit - Team Marketing:") and "limit_usd=5000" in reason


def test_blocking_violations_deny_and_warnings_only_warn() -> None:
    answer = example("governance-policy-evaluate-response") | {"allowed": False, "violations": [
        {"policy_id": "p-1", "policy_name": "EU only", "violation_type": "data_residency",
         "description": "no EU residency", "severity": "blocking"},
        {"policy_id": "p-2", "policy_name": "Budget", "violation_type": "cost_limit",
         "description": "80% spent", "severity": "warning"}]}
    verdict = PolicyEvaluation.model_validate(answer)
    assert verdict.denials() == ["EU only: no EU residency"] and verdict.cautions() == ["Budget: 80% spent"]


def test_a_denial_without_any_reason_is_still_a_denial() -> None:
    answer = {"request_id": "r-1", "allowed": False}
    assert PolicyEvaluation.model_validate(answer).denials()


@pytest.fixture
def spec_shaped_governance(shared_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The shared sandbox answering policy evaluations exactly as the REST example: no `violations`."""
    shared_sandbox.state.policy_violations_listed = False
    try:
        yield shared_sandbox
    finally:
        shared_sandbox.state.policy_violations_listed = True


OUTSIDE_EU = ProposedChange(application_id="support-bot", kind="preferred_model", team_id="team-support",
                            preferred_models=["claude-3-5-haiku-20241022"])


def test_a_rest_shaped_denial_blocks_the_rollout(spec_shaped_governance: SandboxServer, tmp_path: Path) -> None:
    runtime = Runtime(settings_for(spec_shaped_governance, tmp_path))
    (check,) = check_policies(runtime, "r-1", [OUTSIDE_EU])
    assert not check.allowed and check.blocking == [
        "EU data residency - Customer Support: model claude-3-5-haiku-20241022 offers no EU data residency"]


def test_the_environment_governance_hears_comes_from_the_settings(
    spec_shaped_governance: SandboxServer, tmp_path: Path
) -> None:
    # The residency policy is scoped to production: for staging traffic it does not apply.
    runtime = Runtime(settings_for(spec_shaped_governance, tmp_path, environment="staging"))
    (check,) = check_policies(runtime, "r-2", [OUTSIDE_EU])
    assert check.allowed and check.blocking == []


# ---- the Registry's experiment record and the experiment.completed event ------------------

NOW = datetime(2026, 11, 25, tzinfo=UTC)
MINI, GPT4O = "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"


def variant(name: str, cost: float, n: int = 6000) -> VariantStatistics:
    return VariantStatistics(name, SampleMean(n, cost, (cost / 4) ** 2), SampleMean(n, 900.0, 200.0 ** 2),
                             SampleMean(n // 2, 0.9, 0.05 ** 2), Proportion(n, n // 200))


def won(experiment_id: str) -> ExperimentAnalysis:
    """A treatment at 60% of control's cost, as good otherwise: it wins."""
    analysis = analyse_experiment(experiment_id, [variant("control", 0.01), variant("treatment", 0.006)],
                                  {"control": 0.5, "treatment": 0.5})
    assert analysis.recommendation == "deploy_to_production"
    return analysis


def definition(experiment_id: str, kind: str, technique: str) -> StoredExperiment:
    return StoredExperiment(experiment_id=experiment_id, experiment_type=kind, technique=technique,
                            hypothesis="cheaper at the same quality", test_period=TestPeriod(start=NOW - timedelta(days=7)),
                            configuration={"variants": [{"variant_id": "control", "description": f"Always {GPT4O}"},
                                                        {"variant_id": "treatment", "description": technique}]},
                            metadata={"created_by": "team-llmops", "application_id": "support-bot"})


def served(warehouse: Path, experiment_id: str, rows: list[dict[str, Any]]) -> dict[str, VariantUsage]:
    """The experiment's requests loaded into a real warehouse; their usage as the nightly run reads it."""
    with StagingWriter(warehouse.parent / "rows.parquet") as writer:
        writer.write([{"request_id": f"r-{i}", "ts": "2026-11-24T10:15:30Z", "application_id": "support-bot",
                       "model": GPT4O, "prompt_tokens": 100, "completion_tokens": 40, "cost_usd": 0.001,
                       "latency_ms": 800.0, "status": "ok", "shadow": False, "experiment_id": experiment_id, **row}
                      for i, row in enumerate(rows)])
    with Warehouse(warehouse) as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        store.loads.load(LoadBatch(source="test", request_files=[warehouse.parent / "rows.parquet"]))
        return store.request_source().experiment_usage(experiment_id)


def test_experiment_completed_has_every_field_of_the_example_and_a_cascade_its_cascade_metrics(
    tmp_path: Path
) -> None:
    usage = served(tmp_path / "w.duckdb", "exp-c", [
        {"variant_id": "control"}, {"variant_id": "control"},
        {"variant_id": "treatment", "model": MINI, "escalated": False},
        {"variant_id": "treatment", "model": MINI, "escalated": False},
        {"variant_id": "treatment", "model": MINI, "escalated": False},
        {"variant_id": "treatment", "escalated": True}])
    event = experiment_event(won("exp-c"), definition("exp-c", "model_selection", "model_cascade"),
                             alpha=0.05, now=NOW, usage=usage)
    assert event is not None
    spec = example("experiment-completed")
    model_named = {"data.variants[].cascade_metrics.gpt35_requests", "data.variants[].cascade_metrics.gpt4_requests"}
    sent = {"specversion": "1.0", "datacontenttype": "application/json", **event.__dict__}
    assert sorted(field_paths(spec) - model_named - field_paths(sent)) == []
    control, treatment = event.data["variants"]
    assert "cascade_metrics" not in control
    assert treatment["cascade_metrics"] == {"escalation_rate": 0.25, f"{MINI}_requests": 3.0,
                                            f"{GPT4O}_requests": 1.0}


def test_the_registry_record_has_the_examples_metrics_and_a_prefixed_conclusion(tmp_path: Path) -> None:
    usage = served(tmp_path / "w.duckdb", "exp-p", [
        {"variant_id": "control", "prompt_tokens": 800},
        {"variant_id": "treatment", "prompt_tokens": 400, "original_prompt_tokens": 800,
         "compression_technique": "llmlingua"},
        {"variant_id": "treatment", "prompt_tokens": 300, "original_prompt_tokens": 700,
         "compression_technique": "llmlingua"}])
    record = stored_experiment(won("exp-p"), definition("exp-p", "prompt_optimization", "prompt_compression"),
                               alpha=0.05, now=NOW, usage=usage).to_wire()
    spec = example("registry-experiment-request")
    assert field_paths(spec) - {p for p in field_paths(spec) if p.startswith("configuration.")} <= field_paths(record)
    assert set(record["results"]["metrics"]) == set(spec["results"]["metrics"])
    metrics = record["results"]["metrics"]
    assert metrics["average_tokens_saved"] == 400 and metrics["average_compression_ratio"] == pytest.approx(700 / 1500)
    assert metrics["average_cost_savings_usd"] == pytest.approx(0.004)
    assert metrics["total_cost_savings_usd"] == pytest.approx(0.004 * 6000)
    assert record["conclusion"].startswith("Successful - ")
    assert registry_conclusion("keep_control", "no better").startswith("Failed - ")
    assert registry_conclusion("continue", "not yet").startswith("Inconclusive - ")


# ---- optimization.applied ------------------------------------------------------------------

SPEC_OPTIMIZATION_TYPES = {"prompt_compression", "model_cascade", "model_selection", "caching"}


def applied_keys(data: dict[str, Any]) -> None:
    """Every field of the example's `data`, but `request_id`: the optimizer's optimizations
    change an application's routing, not one request."""
    spec = example("optimization-applied")["data"]
    assert set(spec) - {"request_id"} <= set(data)
    assert {"original_metrics", "optimized_metrics", "improvement", "quality_metrics", "metadata"} <= set(data)
    assert data["optimization_type"] in SPEC_OPTIMIZATION_TYPES


def test_a_promoted_rollout_is_announced_in_the_examples_shape() -> None:
    readings = [GuardrailReading(application_id="support-bot", window=w, requests=400, error_rate=e,
                                 p95_latency_ms=p, quality=q, evaluated=200)
                for w, e, p, q in (("baseline", 0.01, 2000.0, 0.9), ("canary", 0.012, 1800.0, 0.89))]
    outcome = RolloutOutcome(
        rollout_id="r-1", status="applied", message="promoted", applied_version="opt-r-1",
        changes=[ProposedChange(application_id="support-bot", kind="model_cascade", primary_model=MINI,
                                fallback_model=GPT4O, monthly_savings_usd=120.0, quality_change=-0.01,
                                quality_change_ci=(-0.02, 0.0))],
        guardrails=GuardrailVerdict(healthy=True, readings=readings))
    event = outcome_event(outcome, NOW)
    assert event is not None and event.type == "io.llm-platform.optimization.applied"
    applied_keys(event.data)
    assert event.data["optimization_type"] == "model_cascade"
    assert event.data["original_metrics"]["p95_latency_ms"] == 2000.0
    assert event.data["optimized_metrics"]["quality_score"] == 0.89
    assert event.data["improvement"]["p95_latency_change_ms"] == -200.0
    assert event.data["quality_metrics"]["quality_change_ci"] == [-0.02, 0.0]
    assert event.data["metadata"] == {"application_id": "support-bot", "model": MINI}


def test_a_deployed_compression_says_the_tokens_it_saves() -> None:
    change = ProposedChange(application_id="doc-qa", kind="prompt_compression", technique="llmlingua")
    optimization = Optimization(optimization_id="opt-1", application_id="doc-qa", changes=[change], fingerprint="f",
                                status="deployed", proposed_by="run-1", proposed_at=NOW, updated_at=NOW)
    usage = {"treatment": VariantUsage(compressed=2, prompt_tokens=700, original_prompt_tokens=1500)}
    event = optimization_event(optimization, won("exp-opt-1"), "v2", NOW, usage)
    applied_keys(event.data)
    assert set(example("optimization-applied")["data"]["improvement"]) <= set(event.data["improvement"])
    assert event.data["improvement"]["tokens_saved"] == 400
    assert event.data["original_metrics"]["prompt_tokens"] == 750


def test_a_preferred_model_is_a_model_selection() -> None:
    change = ProposedChange(application_id="doc-qa", kind="preferred_model", preferred_models=[MINI])
    assert optimization_type([change]) == "model_selection"


# ---- the Event Type Registry -----------------------------------------------------------------

def test_every_registered_event_type_is_routed_or_ignored_for_a_stated_reason() -> None:
    for row in json.loads((EXAMPLES / "event-type-registry.json").read_text()):
        assert (row["type"] in ROUTES) != (row["type"] in IGNORED), row["type"]
        if row["type"] not in {"io.llm-platform.optimization.applied", "io.llm-platform.optimization.failed",
                               "io.llm-platform.experiment.started", "io.llm-platform.experiment.completed"}:
            assert SOURCES[row["type"]] == row["source"], row["type"]  # the sandbox sends it as listed


@pytest.mark.parametrize("name", ["observatory-threshold-exceeded", "sentinel-alert", "governance-policy-violation",
                                  "governance-budget-alert"])
def test_the_examples_events_are_accepted_as_written(name: str) -> None:
    event = example(name)
    routed = route_event(event)
    assert routed is not None and routed[0] == ROUTES[event["type"]].deployment
    assert route_event(example("orchestrator-request-routed")) is None


def test_an_approved_change_gone_live_as_an_experiment_announces_its_start() -> None:
    outcome = RolloutOutcome(
        rollout_id="r-2", status="experimenting", message="live", optimization_id="opt-9", experiment_id="exp-opt-9",
        experiment_version="opt-9-experiment", experiment_percent=10.0,
        changes=[ProposedChange(application_id="doc-qa", kind="prompt_compression", technique="llmlingua",
                                min_prompt_tokens=800, monthly_savings_usd=140.0)])
    event = outcome_event(outcome, NOW)
    assert event is not None
    assert (event.type, event.source, event.subject) == (
        "io.llm-platform.experiment.started", "/auto-optimizer/experiments", "experiment/exp-opt-9")
    completed = example("experiment-completed")["data"]
    at_start = {"experiment_id", "experiment_name", "experiment_type", "status", "variants"}
    assert at_start <= set(completed) and at_start <= set(event.data)
    assert event.data["experiment_type"] == "prompt_optimization" and event.data["status"] == "running"
    assert [(v["variant_id"], v["traffic_percentage"]) for v in event.data["variants"]] == [
        ("control", 90.0), ("treatment", 10.0)]
    assert set(completed["variants"][0]) - {"total_requests", "metrics"} <= set(event.data["variants"][1])


# ---- what the optimizer reads keeps every field the specification writes ----------------------

READ_AS = {
    "registry-model-profile": ModelProfile, "registry-experiment-request": StoredExperiment,
    "registry-experiment-response": ExperimentRecorded, "governance-policy-evaluate-request": PolicyEvaluationRequest,
    "governance-policy-evaluate-response": PolicyEvaluation, "observatory-metrics-query-response": MetricQueryResult,
    "orchestrator-routing": RoutingConfig,
}


@pytest.mark.parametrize("name", sorted(READ_AS))
def test_every_field_of_the_example_survives_reading_and_writing(name: str) -> None:
    document = example(name)
    written = READ_AS[name].model_validate(document).model_dump(mode="json", by_alias=True)
    assert field_paths(document) <= field_paths(written)
