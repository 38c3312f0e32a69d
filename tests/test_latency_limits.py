"""Latency as a constraint of its own: a one-sided bound on the mean latency change against
`max_latency_increase_ms`, for cascades (paired) and compression (Welch), and the cascade's
complexity levels."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from optimizer.analysis.cascade import GRID_STEPS, recommend_application
from optimizer.analysis.compression import FLOOR_GRID, CompressionData, PromptBucket
from optimizer.analysis.compression import recommend_application as recommend_compression
from optimizer.analysis.statistics import SampleMean
from tests.cascade_worlds import World, application, bin_index, draw, draw_with_complexity
from tests.test_analyze_cli import pair_rows, records

MARGIN, ALPHA = 0.02, 0.05
# The cheap model is fine on most requests and twice as fast; escalations wait for both.
MID = World(primary_skill=1.6, fallback_skill=2.3)


def per_pair_latency_change(pairs: object, threshold: float) -> np.ndarray:
    kept = bin_index(pairs) >= round(threshold * GRID_STEPS)  # type: ignore[arg-type]
    primary, fallback = pairs.latency_primary, pairs.latency_fallback  # type: ignore[attr-defined]
    change: np.ndarray = np.where(kept, primary - fallback, primary)
    return change


def test_the_cascade_latency_bound_is_the_one_sided_t_bound_of_the_paired_change() -> None:
    pairs = draw(MID, 3000, np.random.default_rng(31))
    result = recommend_application(application(pairs), max_quality_drop=MARGIN, alpha=ALPHA,
                                   max_p95_latency_increase_pct=None, max_latency_increase_ms=None)
    assert result.decision == "adopt" and result.confidence_threshold is not None
    change = per_pair_latency_change(pairs, result.confidence_threshold)
    bound = change.mean() + stats.t.ppf(1 - ALPHA, len(change) - 1) * stats.sem(change)
    assert result.latency_impact_ms == pytest.approx(change.mean())
    assert result.latency_increase_bound_ms == pytest.approx(bound, rel=1e-9)
    assert result.latency_impact_ms_ci is not None
    assert result.latency_impact_ms_ci[0] < change.mean() < result.latency_impact_ms_ci[1]


def test_a_cascade_whose_latency_bound_exceeds_the_limit_is_not_adopted() -> None:
    pairs = application(draw(replace(MID, primary_log_latency=7.3), 3000, np.random.default_rng(9)))
    free = recommend_application(pairs, max_quality_drop=MARGIN, alpha=ALPHA, max_p95_latency_increase_pct=None,
                                 max_latency_increase_ms=None)
    assert free.latency_increase_bound_ms is not None and free.latency_increase_bound_ms > 0
    below = recommend_application(pairs, max_quality_drop=MARGIN, alpha=ALPHA, max_p95_latency_increase_pct=None,
                                  max_latency_increase_ms=free.latency_increase_bound_ms - 1)
    assert below.decision == "reject"
    assert "max_latency_increase_ms" in below.reason and f"{below.latency_increase_bound_ms:+.0f} ms" in below.reason
    assert below.confidence_threshold == free.confidence_threshold  # the limit rules out, never moves
    above = recommend_application(pairs, max_quality_drop=MARGIN, alpha=ALPHA, max_p95_latency_increase_pct=None,
                                  max_latency_increase_ms=free.latency_increase_bound_ms + 1)
    assert above.decision == "adopt"


def test_the_default_limit_is_the_specifications_200_ms() -> None:
    slow = application(draw(replace(MID, primary_log_latency=7.3), 3000, np.random.default_rng(9)))
    result = recommend_application(slow, max_quality_drop=MARGIN, alpha=ALPHA, max_p95_latency_increase_pct=None)
    assert result.latency_increase_bound_ms is not None and result.latency_increase_bound_ms > 200
    assert result.decision == "reject" and "beyond the 200 ms limit" in result.reason


def compression_buckets(rng: np.random.Generator, n: int, slowdown_ms: float) -> tuple[PromptBucket, ...]:
    original = np.maximum(20, rng.lognormal(np.log(700), 1.0, n)).astype(int)
    compressed = rng.random(n) < 0.5
    quality = np.clip(rng.normal(0.9, 0.05, n), 0, 1)
    latency = rng.lognormal(np.log(1500), 0.3, n) + compressed * slowdown_ms
    sent = np.where(compressed, original // 2, original)
    floor = np.array([max(f for f in FLOOR_GRID if f <= x) for x in original])
    found = []
    for value in FLOOR_GRID:
        for arm in (True, False):
            rows = (floor == value) & (compressed == arm)
            if rows.any():
                found.append(PromptBucket(value, arm, "exp", int(rows.sum()), SampleMean.of(quality[rows]),
                                          int(sent[rows].sum()), int(original[rows].sum()),
                                          SampleMean.of(latency[rows])))
    return tuple(found)


@pytest.mark.parametrize("slowdown_ms", [-100.0, 400.0])
def test_compression_latency_is_measured_with_its_interval_and_bounded(slowdown_ms: float) -> None:
    data = CompressionData("app", "m", "llmlingua", 0.003, 10.0,
                           compression_buckets(np.random.default_rng(41), 8000, slowdown_ms))
    result = recommend_compression(data, max_quality_drop=MARGIN, alpha=ALPHA)
    assert result.latency_impact_ms is not None and result.latency_impact_ms_ci is not None
    assert result.latency_impact_ms_ci[0] < slowdown_ms < result.latency_impact_ms_ci[1]
    assert result.latency_increase_bound_ms is not None
    assert result.latency_impact_ms < result.latency_increase_bound_ms < result.latency_impact_ms_ci[1]
    if slowdown_ms > 200:
        assert result.decision == "reject" and "max_latency_increase_ms" in result.reason
    else:
        assert result.decision == "adopt" and f"{result.latency_impact_ms:+.0f} ms" in result.reason


def test_compression_latency_reaches_the_registry_recommendation() -> None:
    from optimizer.recommendations import registry_recommendation

    data = CompressionData("app", "m", "llmlingua", 0.003, 10.0,
                           compression_buckets(np.random.default_rng(41), 8000, -100.0))
    entry = recommend_compression(data, max_quality_drop=MARGIN, alpha=ALPHA)
    recommendation = registry_recommendation(entry, None, run_id="r", alpha=ALPHA)
    assert recommendation is not None
    assert recommendation.estimated_impact.latency_impact_ms == pytest.approx(entry.latency_impact_ms, abs=0.05)
    assert recommendation.estimated_impact.latency_impact_ms != 0


def test_latency_statistics_from_duckdb_equal_the_direct_computation(tmp_path: Path) -> None:
    from optimizer.pipeline.analyze import analyze_cascade

    pairs = draw_with_complexity(MID, 1500, np.random.default_rng(51), (0.5, 0.3, 0.2))
    rows = pair_rows(pairs)
    for row in rows:
        row["complexity"] = ("simple", "moderate", "complex")[int(pairs.complexity[int(row["pair_id"][1:])])]  # type: ignore[index]
    path = tmp_path / "pairs.parquet"
    pq.write_table(records(rows), path)
    from_file = analyze_cascade(path).recommendations[0]
    direct = recommend_application(application(pairs), max_quality_drop=MARGIN, alpha=ALPHA)
    assert [c.decision for c in from_file.candidates] == [c.decision for c in direct.candidates]
    assert from_file.complexity_levels == direct.complexity_levels
    for got, want in zip(from_file.candidates, direct.candidates, strict=True):
        assert got.latency_increase_bound_ms == pytest.approx(want.latency_increase_bound_ms)
        assert got.p95_latency_change_pct == pytest.approx(want.p95_latency_change_pct)


def test_a_cascade_for_simple_requests_only_reaches_the_routing_and_the_sandbox_serves_it_so() -> None:
    from datetime import UTC, date, datetime

    from optimizer.rollout.plan import apply_changes, change_from_recommendation
    from optimizer.sandbox import SandboxConfig
    from optimizer.sandbox.serving import Plan, serve
    from optimizer.sandbox.state import SandboxState
    from optimizer.sandbox.truth import Truth
    from optimizer.schemas.analysis import CascadeRecommendation
    from optimizer.schemas.routing import RoutingConfig

    entry = CascadeRecommendation(
        application_id="support-bot", decision="adopt", primary_model="gpt-4o-mini-2024-07-18",
        fallback_model="gpt-4o-2024-08-06", confidence_threshold=0.9, escalation_rate=0.5, cost_reduction_pct=30.0,
        quality_change=-0.01, quality_change_ci=(-0.015, -0.005), n_pairs=1000, reason="simple only",
        complexity_threshold=0.33, complexity_levels=["simple"])
    change = change_from_recommendation(entry, team_id=None, monthly_savings_usd=None, recommendation_id=None)
    assert change is not None and change.complexity_threshold == 0.33
    (rule,) = apply_changes(RoutingConfig(), [change]).routing_rules
    assert rule.target_selection.cascade_config is not None
    assert rule.target_selection.cascade_config.escalation_threshold.complexity_score == 0.33
    plan = Plan.of(rule)
    assert plan is not None and plan.complexity_threshold == 0.33

    state = SandboxState(SandboxConfig(seed=42, requests_per_day=12_000, now=datetime(2026, 12, 2, tzinfo=UTC)))
    truth = Truth(state.traffic, date(2026, 12, 2), sample=4000)
    requests, noise = truth._requests("support-bot")
    served = serve(plan, state.traffic.model_index, state.traffic.table, requests, noise.first, noise.second,
                   noise.ratio)
    alone = serve(Plan("gpt-4o-2024-08-06"), state.traffic.model_index, state.traffic.table, requests, noise.second,
                  noise.second, noise.ratio)
    assert requests.complexity is not None
    complex_rows = requests.complexity > 0
    fallback = state.traffic.model_index["gpt-4o-2024-08-06"]
    assert (served.model[complex_rows] == fallback).all() and served.escalated[complex_rows].all()
    assert np.array_equal(served.latency_ms[complex_rows], alone.latency_ms[complex_rows])  # no primary call
    assert np.array_equal(served.cost_usd[complex_rows], alone.cost_usd[complex_rows])
    assert (served.model[~complex_rows] != fallback).any()


def test_complex_requests_the_cheap_model_cannot_serve_go_straight_to_the_fallback() -> None:
    world, mix = World(primary_skill=1.6, fallback_skill=2.3), (0.6, 0.3, 0.1)
    pairs = draw_with_complexity(world, 6000, np.random.default_rng(61), mix)
    result = recommend_application(application(pairs), max_quality_drop=MARGIN, alpha=ALPHA)
    assert result.decision == "adopt" and result.confidence_threshold is not None
    assert (result.complexity_levels, result.complexity_threshold) == (["simple", "moderate"], 0.67)
    assert "complexity_threshold 0.67" in result.reason
    assert [c.decision for c in result.candidates] == ["adopt", "adopt", "reject"]  # complex requests lose too much
    # The promise holds per level: on fresh pairs, every routed level keeps the margin.
    fresh = draw_with_complexity(world, 400_000, np.random.default_rng(62), mix)
    kept = bin_index(fresh) >= round(result.confidence_threshold * GRID_STEPS)
    change = np.where(fresh.primary_failed, 0.0, fresh.quality_primary - fresh.quality_fallback) * kept
    assert fresh.complexity is not None
    for level in (0, 1):
        assert change[fresh.complexity == level].mean() >= -MARGIN
    # Records without the column: every request goes to the cheap model first, and the reason says so.
    plain = recommend_application(application(replace(pairs, complexity=None)), max_quality_drop=MARGIN, alpha=ALPHA)
    assert plain.complexity_levels is None and plain.complexity_threshold is None
    assert "carry no complexity level" in plain.reason
