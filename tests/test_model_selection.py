"""Model choice ranks on what the warehouse measured, the Registry's benchmark only for a model
with no traffic in scope; the Registry's search applies compliance and data residency."""

from __future__ import annotations

import pytest

from optimizer.analysis.models import (
    LATENCY_BUCKET_RATIO,
    ListedModel,
    SelectionCriteria,
    bucket_p95,
    measure,
    rank,
    scope_of,
)
from optimizer.clients import PlatformClients
from optimizer.pipeline.models import search_request, selection_response
from optimizer.sandbox import SandboxServer
from optimizer.schemas.registry import ModelSearchRequest, SearchConstraints
from optimizer.schemas.selection import ModelRanking, ModelSelectionRequest, TrafficCell
from tests.conftest import settings_for


def cell(app: str, model: str, n: int, cost: float, quality: float, latency_ms: float,
         task: str | None = "generation") -> TrafficCell:
    """`n` requests, each costing `cost`, scoring `quality`, answered in `latency_ms`."""
    import math
    bucket = math.floor(math.log(latency_ms) / math.log(LATENCY_BUCKET_RATIO))
    return TrafficCell(app, task, model, n, n * cost, n, n * quality, 0, n * 500, n * 100, ((bucket, n),))


LISTED = [
    # The benchmark flatters the cheap model: 0.90 against the big one's 0.85.
    ListedModel("big", benchmark_quality=0.85, p95_latency_ms=2000, cost_per_request_usd=0.010),
    ListedModel("cheap", benchmark_quality=0.90, p95_latency_ms=900, cost_per_request_usd=0.001),
    ListedModel("unused", benchmark_quality=0.80, p95_latency_ms=1500, cost_per_request_usd=0.004),
]
TRAFFIC = [
    cell("support", "big", 1000, 0.010, 0.92, 1800),
    cell("support", "cheap", 400, 0.001, 0.70, 800),  # shadow calls on the same prompts
    cell("triage", "cheap", 5000, 0.0005, 0.95, 500),  # easy traffic elsewhere
]


def test_measured_quality_outranks_the_benchmark() -> None:
    measured = measure(TRAFFIC, ["support"])
    ranking = rank(LISTED, measured, SelectionCriteria(optimize_for="quality", anchor_model="big"))
    by_id = {r.model_id: r for r in ranking.ranked}
    assert by_id["big"].score > by_id["cheap"].score
    assert by_id["cheap"].quality_score == pytest.approx(0.70) and by_id["cheap"].source == "warehouse"
    assert by_id["big"].requests == 1000 and "measured on 1,000 requests" in by_id["big"].rationale


def test_a_model_without_traffic_falls_back_to_its_benchmark_anchored_on_a_measured_one() -> None:
    ranking = rank(LISTED, measure(TRAFFIC, ["support"]), SelectionCriteria(optimize_for="quality", anchor_model="big"))
    unused = next(r for r in ranking.ranked if r.model_id == "unused")
    assert unused.source == "registry" and unused.requests == 0
    assert unused.quality_score == pytest.approx(0.92 + 0.80 - 0.85)
    assert "no traffic in scope" in unused.rationale and "benchmark" in unused.rationale
    assert unused.latency_p95_ms == 1500 and unused.cost_per_request_usd == 0.004


def test_quality_is_compared_within_the_scope_asked_about() -> None:
    """Over every application the cheap model's easy traffic makes it look best."""
    everywhere = rank(LISTED, measure(TRAFFIC), SelectionCriteria(optimize_for="quality"))
    support = rank(LISTED, measure(TRAFFIC, ["support"]), SelectionCriteria(optimize_for="quality"))
    def best_quality(ranking: ModelRanking) -> str:
        return max(ranking.ranked, key=lambda r: r.quality_score or 0).model_id

    assert best_quality(everywhere) == "cheap"
    assert best_quality(support) == "big"


def test_constraints_exclude_on_the_figures_ranked_on_with_the_reason() -> None:
    ranking = rank(LISTED, measure(TRAFFIC, ["support"]),
                   SelectionCriteria(optimize_for="cost", min_quality=0.8, max_latency_p95_ms=1900))
    assert [r.model_id for r in ranking.ranked] == ["unused", "big"]
    reasons = {e.model_id: e.reason for e in ranking.excluded}
    assert set(reasons) == {"cheap"} and "quality 0.700, below 0.800" in reasons["cheap"]
    cheaper = rank(LISTED, measure(TRAFFIC, ["support"]), SelectionCriteria(optimize_for="cost"))
    assert cheaper.ranked[0].model_id == "cheap"


def test_too_little_traffic_counts_as_none() -> None:
    few = [cell("support", "big", 1000, 0.010, 0.92, 1800), cell("support", "cheap", 20, 0.001, 0.70, 800)]
    cheap = next(r for r in rank(LISTED, measure(few), SelectionCriteria()).ranked if r.model_id == "cheap")
    assert cheap.source == "registry" and "20 requests in scope, too few" in cheap.rationale


def test_bucketed_p95_is_within_the_bucket_ratio() -> None:
    import math
    latencies = [100.0 + 10 * i for i in range(200)]
    buckets: dict[int, int] = {}
    for value in latencies:
        key = math.floor(math.log(value) / math.log(LATENCY_BUCKET_RATIO))
        buckets[key] = buckets.get(key, 0) + 1
    exact = sorted(latencies)[math.ceil(0.95 * len(latencies)) - 1]
    found = bucket_p95(buckets)
    assert found is not None and abs(found / exact - 1) <= LATENCY_BUCKET_RATIO - 1
    assert scope_of(TRAFFIC, ["support"]).prompt_tokens == pytest.approx(500)


def test_the_answer_has_the_specifications_fields() -> None:
    ranking = rank(LISTED, measure(TRAFFIC, ["support"]), SelectionCriteria(optimize_for="cost"))
    answer = selection_response(ranking).to_wire()
    assert answer["recommended_model"] == "cheap"
    assert {"model_id", "score", "rationale"} <= set(answer["alternatives"][0])  # type: ignore[index]
    assert set(answer["estimated_metrics"]) == {"cost_per_request_usd", "latency_p95_ms", "quality_score"}  # type: ignore[arg-type]


def test_the_search_asks_the_registry_for_compliance_and_residency() -> None:
    request = ModelSelectionRequest.model_validate({
        "requirements": {"task_type": "reasoning", "context_needed": 100000, "features": ["function_calling"]},
        "constraints": {"compliance_requirements": ["hipaa"], "data_residency": "EU", "max_cost_per_request": 0.01},
        "preferences": {"optimize_for": "latency"},
    })
    wire = search_request(request).to_wire()
    assert wire["required_capabilities"] == {"min_context_window": 100000, "features": ["function_calling"],
                                             "reasoning_capability": "advanced"}
    assert wire["constraints"] == {"required_compliance": ["hipaa"], "allowed_regions": [], "data_residency": "EU"}
    assert wire["preferences"] == {"optimize_for": "latency", "exclude_providers": []}


def test_the_registry_search_keeps_to_compliance_and_data_residency(shared_sandbox: SandboxServer,
                                                                    tmp_path: object) -> None:
    from pathlib import Path
    with PlatformClients.from_settings(settings_for(shared_sandbox, Path(str(tmp_path)))) as clients:
        def found(**constraints: object) -> set[str]:
            result = clients.registry.search_models(ModelSearchRequest(
                constraints=SearchConstraints.model_validate(constraints)))
            assert result.total_matches == len(result.matches)
            return {m.model_id for m in result.matches}

        everything = found()
        eu = found(data_residency="EU")
        assert eu and eu < everything
        assert not any(m.startswith("claude") for m in eu)  # Anthropic's offer only US residency
        hipaa = found(required_compliance=["hipaa"])
        assert "gemini-1.5-flash-002" not in hipaa and hipaa < everything
        assert found(required_compliance=["SOC2"]) == everything
        assert found(required_compliance=["FedRAMP"]) == set()


def test_the_warehouse_sums_traffic_per_application_task_and_model() -> None:
    import duckdb

    from optimizer.schemas.analysis import InputSummary
    from optimizer.warehouse.analytics import RequestSource

    db = duckdb.connect(":memory:")
    db.execute("""CREATE TABLE requests AS SELECT * FROM (VALUES
        ('support', 'generation', 'big', 0.01, 0.9, 'ok', 500, 100, 1000.0, TIMESTAMPTZ '2026-11-20 10:00:00+00'),
        ('support', 'generation', 'big', 0.03, NULL, 'ok', 700, 300, 3000.0, TIMESTAMPTZ '2026-11-20 11:00:00+00'),
        ('support', 'generation', 'big', 0.00, NULL, 'error', 600, 0, 50.0, TIMESTAMPTZ '2026-11-20 12:00:00+00'),
        ('support', NULL, 'cheap', 0.001, 0.7, 'ok', 500, 100, 400.0, TIMESTAMPTZ '2026-11-20 13:00:00+00')
    ) AS t(application_id, task_type, model, cost_usd, quality_score, status, prompt_tokens, completion_tokens,
           latency_ms, ts)""")
    big, cheap = sorted(RequestSource(db, InputSummary(rows=4)).traffic_cells(), key=lambda c: c.model_id)
    assert (big.requests, big.scored, big.errors, big.prompt_tokens_sum, big.completion_tokens_sum) == (3, 1, 1, 1800, 400)
    assert big.cost_usd_sum == pytest.approx(0.04) and big.quality_sum == pytest.approx(0.9)
    assert sum(n for _, n in big.latency_buckets) == 2  # the error's latency is left out
    assert bucket_p95(dict(big.latency_buckets)) == pytest.approx(3000, rel=LATENCY_BUCKET_RATIO - 1)
    assert cheap.task_type is None and cheap.requests == 1


def test_a_latency_alert_moves_to_the_best_model_about_as_good_and_faster() -> None:
    from optimizer.rollout.strategies import faster_alternatives, quality_upgrade

    ranking = rank(LISTED, measure(TRAFFIC, ["support"]), SelectionCriteria(optimize_for="latency", anchor_model="big"))
    (change,) = faster_alternatives({"support": "big", "other": "cheap"}, ranking, affected_model="big",
                                    degraded_p95_ms=5000, teams={"support": "team-a"}, max_quality_drop=0.06)
    # `unused` (0.87 by its benchmark, 1500 ms) is within 0.06 of big's measured 0.92; `cheap`'s measured 0.70 is not
    assert change.preferred_models == ["unused", "big"] and change.team_id == "team-a"
    assert "no traffic in scope" in change.reason and "measured on 1,000 requests" in change.reason
    assert faster_alternatives({"support": "big"}, ranking, affected_model="big", degraded_p95_ms=5000, teams={},
                               max_quality_drop=0.01) == []
    upgrade = quality_upgrade("support", "cheap", ranking, {})
    assert upgrade is not None and upgrade.preferred_models == ["big", "cheap"]
    assert quality_upgrade("support", "big", ranking, {}) is None  # nothing beats its measured quality
