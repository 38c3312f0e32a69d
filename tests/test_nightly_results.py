"""The nightly run's second half, against the sandbox under a real Prefect API: analyses
stored and recorded in the Registry, CloudEvents delivered (or kept), budgets, the report,
and the optimizer's own telemetry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flows.nightly import nightly_optimization
from optimizer.clients import PlatformClients
from optimizer.pipeline.published import read_night
from optimizer.pipeline.runtime import configured
from optimizer.report import NightlySummary
from optimizer.sandbox import SandboxServer
from optimizer.settings import Settings
from optimizer.warehouse import Warehouse
from tests.conftest import DAY_END, closed_port_url, sandbox_config, settings_for

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]


@dataclass
class Night:
    sandbox: SandboxServer
    settings: Settings
    summary: NightlySummary
    spans: list[str]


@pytest.fixture(scope="module")
def night(
    tmp_path_factory: pytest.TempPathFactory, telemetry_capture: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> Iterator[Night]:
    """One nightly run over a week of a busier sandbox."""
    exporter, _ = telemetry_capture
    with SandboxServer(sandbox_config(requests_per_day=5000)) as sandbox:
        # Any latency: support-bot's cascade is adopted, so the Registry has a cascade to record.
        settings = settings_for(sandbox, tmp_path_factory.mktemp("night"), max_latency_increase_ms=None)
        exporter.clear()
        with configured(settings):
            summary = nightly_optimization(window_end=DAY_END, backfill_days=7, max_p95_latency_increase_pct=None)
        yield Night(sandbox, settings, summary, [span.name for span in exporter.get_finished_spans()])


def test_every_analysis_result_is_stored(night: Night) -> None:
    with duckdb.connect(str(night.settings.warehouse), read_only=True) as db:
        kinds = dict(db.execute("SELECT kind, count(*) FROM recommendations GROUP BY kind").fetchall())
        experiments = db.execute("SELECT experiment_id, recommendation FROM experiment_results ORDER BY 1").fetchall()
        runs = db.execute("SELECT run_id FROM optimization_runs").fetchall()
    # one entry per application and kind; caching for the applications that send prompt hashes,
    # batching for those with latency-tolerant traffic
    assert kinds == {"cascade": 6, "compression": 1, "caching": 2, "batching": 1}
    assert [e[0] for e in experiments] == ["exp-cascade-001", "exp-compression-001"]
    assert runs == [(night.summary.run_id,)]


def test_caching_and_batching_are_found_where_the_traffic_supports_them(night: Night) -> None:
    """support-bot's prompts repeat: caching; doc-qa's never do: none; marketing-writer's
    offline jobs on GPT-4o: batch prices. Both recorded in the Registry and in the report."""
    found = {(r.kind, r.application_id): r for r in night.summary.recommendations}
    assert {k for k in found if k[0] in {"caching", "batching"}} == {
        ("caching", "support-bot"), ("batching", "marketing-writer")}
    assert all(found[k].monthly_savings_usd > 5 for k in (("caching", "support-bot"), ("batching", "marketing-writer")))
    with PlatformClients.from_settings(night.settings) as clients:
        recorded = {r.type: r for r in clients.registry.recorded_recommendations()}
    assert recorded["caching"].implementation["cache_ttl_seconds"] in (3600, 21600, 86400)
    assert "within 24 hours" in recorded["batching"].description
    html = Path(night.summary.report).read_text()
    assert 'id="caching"' in html and 'id="batching"' in html and "up to 24 hours" in html


def test_adopted_recommendations_are_recorded_in_the_registry(night: Night) -> None:
    adopted = {r.recommendation_id for r in night.summary.recommendations}
    assert adopted and any(r.application_id == "support-bot" for r in night.summary.recommendations)
    assert night.summary.potential_monthly_savings_usd == pytest.approx(
        sum(r.monthly_savings_usd for r in night.summary.recommendations))
    with PlatformClients.from_settings(night.settings) as clients:
        recorded = clients.registry.recorded_recommendations()
        experiments = {e.experiment_id: e for e in clients.registry.list_experiments()}
    assert {r.recommendation_id for r in recorded} == adopted
    cascade = next(r for r in recorded if r.type == "model_cascade")
    assert {"primary_model", "escalation_model", "escalation_criteria"} <= set(cascade.implementation)
    assert cascade.estimated_impact.cost_reduction_percentage > 0
    for experiment in experiments.values():
        assert experiment.results is not None and experiment.results.total_requests > 0
        assert experiment.metadata["recommendation"] in {"continue", "deploy_to_production", "keep_control"}


def test_events_reach_the_sink_as_cloudevents(night: Night) -> None:
    received = list(night.sandbox.state.events.values())
    assert night.summary.events.delivered == len(received) == night.summary.events.emitted > 0
    assert night.summary.events.pending == 0
    recommended = [e for e in received if e["type"] == "io.llm-platform.optimization.recommended"]
    assert len(recommended) == len(night.summary.recommendations)
    for event in received:
        assert event["specversion"] == "1.0" and event["datacontenttype"] == "application/json"
        assert event["source"] in {"/auto-optimizer", "/auto-optimizer/experiments"}
    completed = [e for e in received if e["type"] == "io.llm-platform.experiment.completed"]
    concluded = [o for o in night.summary.experiment_outcomes if o.recommendation != "continue"]
    assert len(completed) == len(concluded)


def test_the_registry_records_experiments_in_the_specifications_terms(night: Night) -> None:
    with PlatformClients.from_settings(night.settings) as clients:
        experiments = {e.experiment_id: e for e in clients.registry.list_experiments()}
    compression = experiments["exp-compression-001"]
    assert compression.results is not None and compression.conclusion is not None
    assert set(compression.results.metrics) == {"average_compression_ratio", "average_tokens_saved",
                                                "average_cost_savings_usd", "total_cost_savings_usd",
                                                "quality_score_change", "latency_change_ms"}
    assert compression.results.metrics["average_tokens_saved"] > 0
    prefix = {"deploy_to_production": "Successful - ", "keep_control": "Failed - ", "continue": "Inconclusive - "}
    for experiment in experiments.values():
        assert experiment.conclusion is not None
        assert experiment.conclusion.startswith(prefix[experiment.metadata["recommendation"]])


def test_teams_over_their_budget_threshold_are_flagged(night: Night) -> None:
    assert "team-marketing" in night.summary.budgets_flagged  # the sandbox sets its budget below its run rate
    html = Path(night.summary.report).read_text()
    assert "over threshold" in html


def test_report_has_real_numbers_and_charts(night: Night) -> None:
    html = Path(night.summary.report).read_text()
    assert html.count("<svg") >= 3  # spend over time, a cascade frontier, experiment effects
    assert "Spend by model per day" in html and 'class="chosen"' in html and 'class="interval"' in html
    assert f"{night.summary.requests_loaded:,}" in html
    assert "no data" not in html


def test_the_api_snapshot_publishes_the_analysis_windows_traffic_and_serving_models(night: Night) -> None:
    """Taken from the analysis rather than read again: the same as the window's own figures."""
    published = read_night(night.settings.api_snapshot)
    assert published is not None
    with Warehouse(night.settings.warehouse, read_only=True) as store:
        source = store.request_source((DAY_END - timedelta(days=14), DAY_END))
        assert published.traffic == source.traffic_cells()
        assert published.serving == {p.application_id: p.model for p in source.application_profiles()}


def test_the_run_traces_and_measures_itself(night: Night, telemetry_capture: tuple[InMemorySpanExporter, InMemoryMetricReader]) -> None:
    for name in ("nightly-optimization", "analyze.cascade", "analyze.compression", "analyze.experiments",
                 "record.results", "record.registry", "deliver.events", "report", "analyze.caching",
                 "analyze.batching"):
        assert name in night.spans, name
    _, reader = telemetry_capture
    data = reader.get_metrics_data()
    assert data is not None
    found = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"llm.optimization.runs", "llm.optimization.duration", "llm.optimization.cost_savings_usd"} <= set(found)
    runs = {tuple(sorted(p.attributes.items())): p.value for p in found["llm.optimization.runs"].data.data_points}
    assert runs[(("optimization.status", "success"), ("optimization.type", "model_cascade"))] >= 1


def test_events_wait_while_the_sink_is_down_and_arrive_on_the_next_run(tmp_path: Path) -> None:
    with SandboxServer(sandbox_config(requests_per_day=5000)) as sandbox:
        settings = settings_for(sandbox, tmp_path, max_latency_increase_ms=None)  # any latency, as the p95 below
        with configured(settings.model_copy(update={"events_url": closed_port_url("/events")})):
            first = nightly_optimization(window_end=DAY_END, backfill_days=7, max_p95_latency_increase_pct=None)
        assert first.events.delivered == 0 and first.events.pending == first.events.emitted > 0
        assert sandbox.state.events == {}
        with duckdb.connect(str(settings.warehouse), read_only=True) as db:
            waiting = {row[0] for row in db.execute("SELECT event_id FROM events_outbox WHERE delivered_at IS NULL").fetchall()}

        with configured(settings):
            second = nightly_optimization(window_end=DAY_END, backfill_days=7, max_p95_latency_increase_pct=None)
    received = {event_id for _, event_id in sandbox.state.events}
    assert waiting <= received  # last night's events, resent
    assert second.events.pending == 0
    assert len(received) == second.events.delivered == second.events.emitted  # each event arrived once
    # The second night found the same changes again: they are not announced again.
    announced = [e for e in sandbox.state.events.values() if e["type"].endswith("optimization.recommended")]
    assert len(announced) == len(first.recommendations) == len(second.recommendations) > 0
