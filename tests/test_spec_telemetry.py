"""The specification's Observatory examples (its trace and its structured log) through the
optimizer's mappings into a real warehouse, and the savings metric it names,
`llm.optimization.token_savings`, read back from the exported metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from optimizer.analysis.realized import DAYS_PER_MONTH
from optimizer.catalog import load_catalog
from optimizer.ingest.mapping import columns_from_logs
from optimizer.ingest.otlp import stage_otlp_file
from optimizer.ingest.staging import StagingWriter
from optimizer.pipeline.loop import measure_realized
from optimizer.pipeline.record import record_results
from optimizer.pipeline.runtime import Runtime
from optimizer.sandbox import SandboxServer
from optimizer.schemas.analysis import CascadeReport, CompressionRecommendation, CompressionReport
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.loads import LoadBatch
from optimizer.schemas.optimizations import Optimization, fingerprint
from optimizer.schemas.rollout import ProposedChange
from optimizer.settings import MODEL_CATALOG, Settings
from optimizer.warehouse import Warehouse
from tests.conftest import settings_for
from tests.test_spec_shapes import GPT4O, NOW, example

# ---- the Observatory's example telemetry -------------------------------------------------------

def logs_loaded(tmp_path: Path, *logs: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[str]]:
    """(stored requests, quarantine reasons) after the nightly extraction's mapping and a load."""
    with StagingWriter(tmp_path / "staged") as writer:
        writer.write_columns(columns_from_logs(list(logs)))
    return loaded(tmp_path)


def loaded(tmp_path: Path) -> tuple[list[tuple[Any, ...]], list[str]]:
    with Warehouse(tmp_path / "w.duckdb") as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        store.loads.load(LoadBatch(source="test", request_files=[tmp_path / "staged"]))
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as db:
        rows = db.execute("SELECT request_id, application_id, model, prompt_tokens, completion_tokens, cost_usd,"
                          " latency_ms, status FROM requests").fetchall()
        reasons = [r for (r,) in db.execute("SELECT reason FROM quarantine").fetchall()]
    return rows, reasons


def test_the_example_log_takes_its_ids_from_the_documented_fallbacks_and_is_told_the_token_attributes(
    tmp_path: Path
) -> None:
    log = example("observatory-log")
    rows, (reason,) = logs_loaded(tmp_path, log)
    assert rows == []
    # Its span id and service stand in for llm.request_id and llm.application_name; its one token
    # count is a total, which says nothing of how many were prompt.
    assert reason == ("prompt_tokens is missing: add gen_ai.usage.prompt_tokens (or gen_ai.usage.input_tokens); "
                      "completion_tokens is missing: add gen_ai.usage.completion_tokens "
                      "(or gen_ai.usage.output_tokens)")


def test_a_log_without_any_id_is_told_which_attributes_to_add(tmp_path: Path) -> None:
    log = example("observatory-log")
    for name in ("span_id", "service.name", "llm.request.model"):
        del log["attributes"][name]
    _, (reason,) = logs_loaded(tmp_path, log)
    assert "request_id is missing: add llm.request_id (or a span id: a span's spanId, a log record's span_id)" in reason
    assert ("application_id is missing: add llm.application_name (or llm.application_id, the resource's "
            "service.name)") in reason
    assert "model is missing: add gen_ai.request.model (or gen_ai.response.model, llm.request.model)" in reason


def test_the_example_log_with_its_token_split_loads(tmp_path: Path) -> None:
    log = example("observatory-log")
    log["attributes"] |= {"gen_ai.usage.prompt_tokens": 128, "gen_ai.usage.completion_tokens": 245}
    rows, reasons = logs_loaded(tmp_path, log)
    assert reasons == []
    assert rows == [("00f067aa0ba902b7", "llm-orchestrator", "gpt-4", 128, 245, 0.01492, 2500.0, "ok")]


def test_the_example_span_loads_as_the_collector_writes_it(tmp_path: Path) -> None:
    line = json.dumps({"resourceSpans": [{"resource": {"attributes": []},
                                          "scopeSpans": [{"spans": [example("observatory-trace")]}]}]})
    (tmp_path / "spans.jsonl").write_text(line + "\n")
    stage_otlp_file(tmp_path / "spans.jsonl", tmp_path / "staged")
    rows, (reason,) = loaded(tmp_path)
    # Every column maps; without a cost attribute it is priced from the catalog, which has no gpt-4.
    assert rows == [] and reason == "cost_usd is missing and model gpt-4 has no price in the catalog"


# ---- llm.optimization.token_savings ----------------------------------------------------------

def test_an_adopted_compression_exports_the_prompt_tokens_it_saves(
    sandbox: SandboxServer, tmp_path: Path, telemetry_capture: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    settings = settings_for(sandbox, tmp_path)
    with Warehouse(settings.warehouse) as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        price = store.reference.input_prices()[GPT4O]
    compression = CompressionRecommendation(
        application_id="doc-qa-tokens", decision="adopt", technique="llmlingua", model=GPT4O,
        token_reduction_pct=35.0, quality_change=-0.002, quality_change_ci=(-0.006, 0.002),
        estimated_monthly_savings_usd=273.92, min_prompt_tokens=800, n_compressed=500, n_uncompressed=500,
        reason="compressed traffic")
    profile = ApplicationProfile(application_id="doc-qa-tokens", team_id="team-docs", model=GPT4O, requests=7000,
                                 cost_usd=700.0, average_prompt_tokens=1200.0, average_completion_tokens=200.0,
                                 days=7.0)
    record_results(Runtime(settings), "run-tokens", CascadeReport(recommendations=[], max_quality_drop=0.02, alpha=0.05),
                   CompressionReport(recommendations=[compression], max_quality_drop=0.02, alpha=0.05), [], [profile],
                   alpha=0.05, max_quality_drop=0.02)
    data = telemetry_capture[1].get_metrics_data()
    assert data is not None
    saved = {(p.attributes["optimization.type"], p.attributes["application"], p.attributes["savings.kind"]): p.value
             for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
             if m.name == "llm.optimization.token_savings" for p in m.data.data_points}
    # The savings are prompt tokens at the model's input price: 273.92 USD a month of them.
    assert saved[("prompt_compression", "doc-qa-tokens", "forecast")] == pytest.approx(273.92 / price * 1000)


def test_a_deployed_compression_exports_the_prompt_tokens_it_really_saves(
    tmp_path: Path, telemetry_capture: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    before = [{"request_id": f"b-{i}", "ts": f"2026-11-22T{i:02d}:00:00Z", "prompt_tokens": 1000,
               "cost_usd": 0.010 + i / 1e4} for i in range(12)]
    after = [{"request_id": f"a-{i}", "ts": f"2026-11-24T{i:02d}:00:00Z", "prompt_tokens": 500,
              "cost_usd": 0.006 + i / 1e4, "optimization_id": "opt-tokens", "compression_technique": "llmlingua",
              "original_prompt_tokens": 1000} for i in range(12)]
    with StagingWriter(tmp_path / "staged") as writer:
        writer.write([{"application_id": "doc-qa-realized", "model": GPT4O, "completion_tokens": 100,
                       "latency_ms": 900.0, "status": "ok", "shadow": False, **row} for row in before + after])
    settings = Settings(warehouse=tmp_path / "w.duckdb")
    with Warehouse(settings.warehouse) as store:
        store.loads.load(LoadBatch(source="test", request_files=[tmp_path / "staged"]))
        change = ProposedChange(application_id="doc-qa-realized", kind="prompt_compression", technique="llmlingua")
        store.optimizations.save([Optimization(
            optimization_id="opt-tokens", application_id="doc-qa-realized", changes=[change],
            fingerprint=fingerprint([change]), status="deployed", proposed_by="run-0", proposed_at=NOW,
            updated_at=NOW, forecast_monthly_savings_usd=100.0)])
    (result,) = measure_realized(Runtime(settings), "run-1", NOW, alpha=0.05, baseline_days=7)
    assert result.realized_monthly_tokens_saved == pytest.approx(500 * result.requests_per_day * DAYS_PER_MONTH)
    data = telemetry_capture[1].get_metrics_data()
    assert data is not None
    saved = {(p.attributes["application"], p.attributes["savings.kind"]): p.value
             for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
             if m.name == "llm.optimization.token_savings" for p in m.data.data_points}
    assert saved[("doc-qa-realized", "realized")] == pytest.approx(result.realized_monthly_tokens_saved)
