"""The optimizer's own API (docs/api.md): the specification's paths and fields, bearer auth,
answers from the published night (never the warehouse), experiments that wait for approval,
registration at the Orchestrator, and `api serve` as a process that stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from deployments.api import create_api
from optimizer._serving import BackgroundServer
from optimizer.pipeline.published import STRATEGY_ID, build_night, write_atomically
from optimizer.pipeline.runtime import Runtime
from optimizer.processes import wait_until_answers
from optimizer.report import NightlySummary, ReportData
from optimizer.sandbox import SandboxServer
from optimizer.schemas.analysis import CascadeReport, CompressionReport
from optimizer.schemas.api import ExperimentSummary, PublishedNight, Strategy
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.selection import TrafficCell
from optimizer.settings import SANDBOX_DEFAULT_TOKEN, Settings
from optimizer.warehouse import Warehouse
from optimizer.webhook.starter import PrefectStarter
from tests.conftest import DAY_END, sandbox_config, settings_for
from tests.process_tree import Command, free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "api-test-token-5b1e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MINI, GEMINI, SONNET = "gpt-4o-mini-2024-07-18", "gemini-1.5-flash-002", "claude-3-5-sonnet-20241022"


def cell(model: str, n: int, cost: float, quality: float, bucket: int) -> TrafficCell:
    return TrafficCell("email-triage", "classification", model, n, n * cost, n, n * quality, 0, n * 480, n * 40,
                       ((bucket, n),))


NIGHT = PublishedNight(
    run_id="run-abc", window_end=DAY_END, published_at=datetime(2026, 11, 25, 2, 30, tzinfo=UTC),
    strategies=[
        Strategy(strategy_type="model_cascade", confidence=0.95, application_id="support-bot", team_id="team-support",
                 model="gpt-4o-2024-08-06", estimated_impact={"cost_reduction_percentage": 41.0},
                 implementation={"primary_model": MINI, "escalation_model": "gpt-4o-2024-08-06"}),
        Strategy(strategy_type="prompt_compression", confidence=0.95, application_id="doc-qa",
                 team_id="team-knowledge", model=SONNET, estimated_impact={"cost_reduction_percentage": 30.0},
                 implementation={"technique": "llmlingua", "compression_ratio": 0.5}),
    ],
    experiments=[
        ExperimentSummary(experiment_id="exp-cascade-001", name="cascade", status="running"),
        ExperimentSummary(experiment_id="exp-compression-001", name="compression", status="completed",
                          winning_variant="treatment", improvement_percentage=31.5),
    ],
    serving={"email-triage": MINI},
    # GPT-4o mini serves email-triage, Gemini is measured on its shadow calls: about as good, cheaper, faster.
    traffic=[cell(MINI, 3000, 0.00010, 0.90, 150), cell(GEMINI, 300, 0.00005, 0.89, 140)],
)


def test_the_snapshot_takes_the_windows_profiles_and_traffic_from_the_analysis(tmp_path: Path) -> None:
    """The night's analysis read them from the warehouse already: publishing does not read the
    window again (this warehouse holds no requests at all)."""
    profile = ApplicationProfile("email-triage", "team-ops", MINI, 3000, 0.3, 480.0, 40.0, 14.0)
    summary = NightlySummary(run_id="run-abc", requests_loaded=0, requests_total=0, quarantined=0, quarantined_total=0,
                             duplicates_skipped=0, windows=1, window_end=DAY_END, models=0, cost_days=0,
                             experiments=0, load_id="l")
    data = ReportData(summary=summary, analysis_start=DAY_END - timedelta(days=14), profiles=[profile],
                      traffic=NIGHT.traffic, cascades=CascadeReport(recommendations=[], max_quality_drop=0.02, alpha=0.05),
                      compression=CompressionReport(recommendations=[], max_quality_drop=0.02, alpha=0.05))
    with Warehouse(tmp_path / "w.duckdb") as store:
        published = build_night(store, data, summary)
    assert published.traffic == NIGHT.traffic
    assert published.serving == {"email-triage": MINI}


@pytest.fixture(scope="module")
def platform() -> Iterator[SandboxServer]:
    """A sandbox of this module's own: the API registers itself at its Orchestrator."""
    with SandboxServer(sandbox_config()) as server:
        yield server


def api_settings(platform: SandboxServer, folder: Path) -> Settings:
    return settings_for(platform, folder, api_server_token=TOKEN, api_server_url="http://api.example/api/v1")


@pytest.fixture(scope="module")
def api(platform: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = api_settings(platform, tmp_path_factory.mktemp("api"))
    write_atomically(settings.api_snapshot, NIGHT.model_dump_json())
    app = create_api(Runtime(settings), token=TOKEN, starter=PrefectStarter(tags=["api-request"]))
    with BackgroundServer(app, lifespan="on") as server:
        yield f"{server.url}/api/v1"


def test_every_endpoint_wants_the_bearer_token(api: str) -> None:
    for method, path in (("GET", "/strategies?context={}"), ("GET", "/experiments"), ("POST", "/experiments"),
                         ("POST", "/optimize/model-selection"), ("POST", "/optimize/prompt")):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            answer = httpx.request(method, api + path, headers=headers, json={})
            assert answer.status_code == 401, (method, path)
            assert answer.headers["WWW-Authenticate"] == "Bearer" and TOKEN not in answer.text


def test_the_openapi_document_has_the_specifications_paths(api: str) -> None:
    document = httpx.get(api.removesuffix("/api/v1") + "/openapi.json").json()
    operations = {path: {m: op["operationId"] for m, op in item.items()} for path, item in document["paths"].items()}
    assert operations == {
        "/optimize/prompt": {"post": "optimizePrompt"}, "/optimize/model-selection": {"post": "selectOptimalModel"},
        "/experiments": {"post": "createExperiment", "get": "listExperiments"}, "/strategies": {"get": "getStrategies"},
    }
    assert document["servers"] == [{"url": "/api/v1"}] and document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    fields = document["components"]["schemas"]["ModelSelectionResponse"]["properties"]
    assert {"recommended_model", "alternatives", "estimated_metrics"} <= set(fields)


def test_strategies_for_the_context_asked_about(api: str) -> None:
    answer = httpx.get(f"{api}/strategies", params={"context": json.dumps({"application_id": "doc-qa"})}, headers=AUTH)
    assert answer.status_code == 200
    (strategy,) = answer.json()["recommendations"]
    assert strategy["strategy_type"] == "prompt_compression" and strategy["confidence"] == 0.95
    assert {"estimated_impact", "implementation"} <= set(strategy)
    by_team = httpx.get(f"{api}/strategies", params={"context": '{"team_id": "team-support", "user_id": "u1"}'},
                        headers=AUTH).json()
    assert [s["application_id"] for s in by_team["recommendations"]] == ["support-bot"]
    assert by_team["run_id"] == "run-abc"
    for context in ("not json", "[1, 2]"):
        bad = httpx.get(f"{api}/strategies", params={"context": context}, headers=AUTH)
        assert bad.status_code == 400 and set(bad.json()) == {"error", "details"}
    assert httpx.get(f"{api}/strategies", headers=AUTH).status_code == 400  # context is required


def test_experiments_are_listed_by_status(api: str) -> None:
    everything = httpx.get(f"{api}/experiments", headers=AUTH).json()["experiments"]
    assert [e["experiment_id"] for e in everything] == ["exp-cascade-001", "exp-compression-001"]
    (completed,) = httpx.get(f"{api}/experiments", params={"status": "completed"}, headers=AUTH).json()["experiments"]
    assert completed == {"experiment_id": "exp-compression-001", "name": "compression", "status": "completed",
                         "winning_variant": "treatment", "improvement_percentage": 31.5}
    assert len(httpx.get(f"{api}/experiments", params={"limit": 1}, headers=AUTH).json()["experiments"]) == 1
    assert httpx.get(f"{api}/experiments", params={"status": "paused"}, headers=AUTH).status_code == 400


def test_model_selection_ranks_on_the_published_traffic(api: str) -> None:
    body = {"requirements": {"task_type": "classification", "applications": ["email-triage"]},
            "constraints": {"data_residency": "EU", "max_latency_ms": 3000},
            "preferences": {"optimize_for": "cost"}}
    answer = httpx.post(f"{api}/optimize/model-selection", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["recommended_model"] == GEMINI and found["source"] == "warehouse"
    assert found["estimated_metrics"]["cost_per_request_usd"] == pytest.approx(0.00005)
    assert "measured on 300 requests" in found["rationale"]
    others = {a["model_id"]: a for a in found["alternatives"]}
    assert others[MINI]["source"] == "warehouse" and others["gpt-4o-2024-08-06"]["source"] == "registry"
    assert not any(m.startswith("claude") for m in others)  # no EU residency: the Registry leaves them out


def test_prompt_optimization_is_out_of_scope(api: str) -> None:
    answer = httpx.post(f"{api}/optimize/prompt", json={"prompt": "hi", "optimization_type": "compression"},
                        headers=AUTH)
    assert answer.status_code == 501
    assert "nightly batches" in answer.json()["details"]["reason"]


def test_the_api_registers_at_the_orchestrator(api: str, platform: SandboxServer) -> None:
    deadline = time.monotonic() + 30
    while STRATEGY_ID not in platform.state.strategies:
        assert time.monotonic() < deadline, "not registered within 30 s"
        time.sleep(0.1)
    registered = platform.state.strategies[STRATEGY_ID]
    assert registered.webhook_url == "http://api.example/api/v1/strategies"
    assert registered.configuration["run_id"] == "run-abc"
    assert set(registered.applicable_models) == {"gpt-4o-2024-08-06", SONNET}


def test_before_the_first_night_the_api_says_so(platform: SandboxServer, tmp_path: Path) -> None:
    app = create_api(Runtime(api_settings(platform, tmp_path)), token=TOKEN, starter=PrefectStarter(), register=False)
    with BackgroundServer(app, lifespan="on") as server:
        answer = httpx.get(f"{server.url}/api/v1/experiments", headers=AUTH)
    assert answer.status_code == 503 and "no nightly run" in answer.json()["error"]


EXPERIMENT = {
    "name": "triage on gemini", "description": "cheaper triage",
    "variants": [{"variant_id": "control", "configuration": {}},
                 {"variant_id": "treatment", "configuration": {"application_id": "email-triage",
                                                               "kind": "preferred_model",
                                                               "preferred_models": [GEMINI, MINI]}}],
    "traffic_allocation": {"control": 0.8, "treatment": 0.2},
    "success_criteria": {"primary_metric": "cost_usd", "min_improvement_percentage": 20},
    "duration_hours": 2,
}


@pytest.mark.usefixtures("prefect_api")
def test_an_experiment_request_waits_for_approval(api: str) -> None:
    from flows.rollout import rollout

    rollout.to_deployment(name="rollout").apply()
    answer = httpx.post(f"{api}/experiments", json=EXPERIMENT, headers=AUTH)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["status"] == "created" and created["experiment_id"].startswith("exp-api-")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(created["flow_run_id"]))
    assert run.state is not None and run.state.is_scheduled()  # the rollout flow: its policy check, then approval
    assert "api-request" in run.tags
    assert run.parameters["canary_percent"] == 20.0 and run.parameters["watch_minutes"] == 120
    (change,) = run.parameters["changes"]
    assert change["preferred_models"] == [GEMINI, MINI] and "triage on gemini" in change["reason"]
    again = httpx.post(f"{api}/experiments", json=EXPERIMENT, headers=AUTH).json()
    assert again["flow_run_id"] == created["flow_run_id"]  # asking twice starts one run
    three = {**EXPERIMENT, "variants": [*EXPERIMENT["variants"], {"variant_id": "other"}]}  # type: ignore[list-item]
    refused = httpx.post(f"{api}/experiments", json=three, headers=AUTH)
    assert refused.status_code == 400 and "exactly two variants" in refused.json()["error"]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_api_serve_answers_without_the_warehouse_and_stops_on_sigterm(platform: SandboxServer, tmp_path: Path) -> None:
    settings = api_settings(platform, tmp_path)
    write_atomically(settings.api_snapshot, NIGHT.model_dump_json())
    port = free_port()
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith("AUTO_OPTIMIZER_")}
    env |= {"AUTO_OPTIMIZER_DATA_DIR": str(tmp_path), "AUTO_OPTIMIZER_API_SERVER_TOKEN": TOKEN,
            "AUTO_OPTIMIZER_SANDBOX_PORT": str(platform.url.rsplit(":", 1)[1]),
            "AUTO_OPTIMIZER_API_TOKEN": SANDBOX_DEFAULT_TOKEN, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    command = [sys.executable, "-m", "deployments.cli", "api", "serve", "--port", str(port)]  # `auto-optimizer`
    platform.state.strategies.pop(STRATEGY_ID, None)
    # The warehouse stays open for writing here all along, as a nightly run holds it.
    with Warehouse(settings.warehouse), Command(command, env=env, cwd=ROOT, log=tmp_path / "api.log") as served:
        wait_until_answers(f"http://127.0.0.1:{port}/health", 60, process=served.process)
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/experiments", headers=AUTH, timeout=10)
        assert answer.status_code == 200 and len(answer.json()["experiments"]) == 2
        deadline = time.monotonic() + 30
        while STRATEGY_ID not in platform.state.strategies:
            assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()
            time.sleep(0.1)
        assert platform.state.strategies[STRATEGY_ID].webhook_url == f"http://127.0.0.1:{port}/api/v1/strategies"
        assert served.stop_and_check(signal.SIGTERM) == 0
    assert TOKEN not in (tmp_path / "api.log").read_text()
