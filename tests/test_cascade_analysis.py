"""Cascade recommendations in worlds with known truth, and their quality promise on fresh data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from optimizer.analysis.cascade import (
    GRID_STEPS,
    ApplicationPairs,
    recommend,
    recommend_application,
)
from tests.cascade_worlds import BORDERLINE, FINE, HOPELESS, application, draw, true_quality_change

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
