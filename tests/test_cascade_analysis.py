"""Cascade recommendations in worlds with known truth, and their quality promise on fresh data."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizer.analysis.cascade import (
    GRID_STEPS,
    ApplicationPairs,
    recommend,
    recommend_application,
)
from optimizer.sandbox.export import export_requests
from optimizer.schemas.loads import LoadBatch
from optimizer.warehouse import Warehouse
from tests.cascade_worlds import (
    BORDERLINE,
    FINE,
    HOPELESS,
    World,
    application,
    draw,
    true_quality_change,
)
from tests.conftest import DAY_END, sandbox_config

MARGIN = 0.02
ALPHA = 0.05


def test_a_cheap_model_that_is_nearly_as_good_is_adopted_with_real_savings() -> None:
    result = recommend_application(application(draw(FINE, 3000, np.random.default_rng(1))),
                                   max_quality_drop=MARGIN, alpha=ALPHA)
    assert result.decision == "adopt"
    assert result.cost_reduction_pct is not None and result.cost_reduction_pct > 40
    assert result.quality_change_ci is not None and result.quality_change_ci[0] >= -MARGIN
    assert result.primary_model == "cheap" and result.fallback_model == "big"
    assert result.escalation_rate is not None and 0 <= result.escalation_rate < 0.6


def test_a_hopeless_cheap_model_is_rejected() -> None:
    result = recommend_application(application(draw(HOPELESS, 3000, np.random.default_rng(2))),
                                   max_quality_drop=MARGIN, alpha=ALPHA)
    assert result.decision == "reject"
    assert "margin" in result.reason or "costs" in result.reason


def test_too_few_pairs_is_insufficient_data() -> None:
    result = recommend_application(application(draw(FINE, 150, np.random.default_rng(3))),
                                   max_quality_drop=MARGIN, alpha=ALPHA)
    assert result.decision == "insufficient_data" and result.n_pairs == 150


def test_every_application_gets_exactly_one_entry() -> None:
    rng = np.random.default_rng(4)
    apps = [application(draw(FINE, 1000, rng), app="b"), application(draw(HOPELESS, 1000, rng), app="a"),
            ApplicationPairs("c", "big", ())]
    report = recommend(apps, max_quality_drop=MARGIN, alpha=ALPHA)
    assert [r.application_id for r in report.recommendations] == ["a", "b", "c"]
    assert report.recommendations[2].decision == "insufficient_data"


def test_the_frontier_spans_the_grid_and_cost_falls_as_the_threshold_falls() -> None:
    result = recommend_application(application(draw(BORDERLINE, 3000, np.random.default_rng(5))),
                                   max_quality_drop=MARGIN, alpha=ALPHA)
    thresholds = [p.confidence_threshold for p in result.frontier]
    assert thresholds == [step / GRID_STEPS for step in range(GRID_STEPS, -1, -1)]
    savings = [p.cost_reduction_pct for p in result.frontier]
    assert savings == sorted(savings)
    escalation = [p.escalation_rate for p in result.frontier]
    assert escalation == sorted(escalation, reverse=True)


@pytest.mark.slow
def test_adopted_cascades_keep_the_quality_promise_on_fresh_data() -> None:
    """In a borderline world the chosen threshold's true quality change stays within the
    margin except at the rate the test's level allows (one-sided alpha/2)."""
    truth = true_quality_change(BORDERLINE, np.random.default_rng(1000))
    assert truth.min() < -MARGIN < truth.max()  # the margin is crossed somewhere: a real choice
    rng = np.random.default_rng(2026)
    runs, adopted, violations = 300, 0, 0
    for _ in range(runs):
        result = recommend_application(application(draw(BORDERLINE, 2000, rng)), max_quality_drop=MARGIN, alpha=ALPHA)
        if result.decision != "adopt":
            continue
        adopted += 1
        assert result.confidence_threshold is not None
        violations += truth[round(result.confidence_threshold * GRID_STEPS)] < -MARGIN
    assert adopted > runs / 2
    assert violations / adopted <= ALPHA / 2 + 3 * np.sqrt(ALPHA / 2 / adopted)


def test_choosing_by_point_estimate_would_break_the_promise() -> None:
    """The reason for the procedure: picking the cheapest threshold whose estimate looks
    fine overfits and, on fresh data, loses more quality than promised far too often."""
    truth = true_quality_change(BORDERLINE, np.random.default_rng(1000))
    rng = np.random.default_rng(77)
    violations = 0
    runs = 200
    for _ in range(runs):
        result = recommend_application(application(draw(BORDERLINE, 2000, rng)), max_quality_drop=MARGIN, alpha=ALPHA)
        naive = [p for p in result.frontier if p.quality_change >= -MARGIN]
        cheapest = max(naive, key=lambda p: p.cost_reduction_pct)
        violations += truth[round(cheapest.confidence_threshold * GRID_STEPS)] < -MARGIN
    assert violations / runs > 4 * ALPHA / 2  # four times what the procedure promises


def test_cheapest_of_several_adopted_candidates_wins() -> None:
    rng = np.random.default_rng(8)
    good = application(draw(FINE, 2000, rng), primary="cheap-good").candidates[0]
    pricey = application(draw(replace(FINE, primary_cost=0.0015), 2000, rng), primary="cheap-pricey").candidates[0]
    result = recommend_application(ApplicationPairs("app", "big", (good, pricey)), max_quality_drop=MARGIN, alpha=ALPHA)
    assert {c.primary_model for c in result.candidates} == {"cheap-good", "cheap-pricey"}
    assert [c.decision for c in result.candidates] == ["adopt", "adopt"]
    assert (result.decision, result.primary_model) == ("adopt", "cheap-good")


def test_a_cascade_that_would_slow_the_tail_too_much_is_not_recommended() -> None:
    """Escalated requests wait for both models: when a third of them escalate and the primary
    is nearly as slow as the fallback, the cascade's p95 is far worse than the fallback's."""
    mid = World(primary_skill=1.6, fallback_skill=2.3)
    slow = application(draw(replace(mid, primary_log_latency=7.3), 3000, np.random.default_rng(9)))
    result = recommend_application(slow, max_quality_drop=MARGIN, alpha=ALPHA)
    assert result.decision == "reject" and "p95 latency would rise" in result.reason
    assert result.p95_latency_change_pct is not None and result.p95_latency_change_pct > 20
    unbounded = recommend_application(slow, max_quality_drop=MARGIN, alpha=ALPHA, max_p95_latency_increase_pct=None,
                                      max_latency_increase_ms=None)
    assert unbounded.decision == "adopt" and unbounded.confidence_threshold == result.confidence_threshold
    fast = recommend_application(application(draw(mid, 3000, np.random.default_rng(9))), max_quality_drop=MARGIN,
                                 alpha=ALPHA)
    assert fast.decision == "adopt" and fast.p95_latency_change_pct is not None
    assert fast.p95_latency_change_pct <= 20


def test_the_warehouse_computes_the_cascade_p95_from_the_pairs(tmp_path: Path) -> None:
    data = tmp_path / "requests.parquet"
    export_requests(data, days=7, end=DAY_END.date(), config=sandbox_config(requests_per_day=3000))
    with Warehouse(tmp_path / "w.duckdb") as store:
        store.loads.load(LoadBatch(source="test", request_files=[data]))
        found = {a.application_id: a for a in store.request_source((DAY_END - timedelta(days=7), DAY_END)).cascade_pairs()}
    frame = pd.read_parquet(data)
    own = frame[~frame["shadow"] & frame["pair_id"].notna()]
    shadow = frame[frame["shadow"]]
    pairs = own.merge(shadow, on="pair_id", suffixes=("_f", "_c"))
    pairs = pairs[(pairs["status_f"] == "ok") & pairs["quality_score_f"].notna()
                  & ((pairs["status_c"] == "error")
                     | (pairs["quality_score_c"].notna() & pairs["confidence_score_c"].notna()))]
    app = pairs[pairs["application_id_f"] == "support-bot"]
    candidate = found["support-bot"].candidates[0]
    assert candidate.primary_model == app["model_c"].iloc[0]
    confidence = np.round(app["confidence_score_c"].to_numpy() * GRID_STEPS, 6)
    bins = np.where(app["status_c"] == "error", -1, np.minimum(np.floor(confidence), GRID_STEPS))
    primary, both = app["latency_ms_c"].to_numpy(), (app["latency_ms_c"] + app["latency_ms_f"]).to_numpy()
    assert candidate.fallback_p95_latency_ms == pytest.approx(np.quantile(app["latency_ms_f"], 0.95))
    for step, p95 in candidate.p95_latency_ms:
        assert p95 == pytest.approx(np.quantile(np.where(bins >= step, primary, both), 0.95)), step
    assert [s for s, _ in candidate.p95_latency_ms] == list(range(0, GRID_STEPS + 1, 5))
