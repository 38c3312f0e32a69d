"""Experiment analysis: error rates and power proven by seeded simulation, and the decision rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optimizer.analysis.experiments import VariantStatistics, analyse_experiment
from optimizer.analysis.statistics import Proportion, SampleMean, minimum_detectable_effect, welch

ALPHA = 0.05
EVEN = {"control": 0.5, "treatment": 0.5}


def within_binomial_noise(hits: int, trials: int, rate: float) -> bool:
    return bool(stats.binomtest(hits, trials, rate).pvalue > 0.001)


def variant(name: str, cost: np.ndarray, quality: np.ndarray, errors: int, latency: np.ndarray | None = None) -> VariantStatistics:
    latency = latency if latency is not None else np.full(len(cost), 1000.0)
    return VariantStatistics(name, SampleMean.of(cost), SampleMean.of(latency), SampleMean.of(quality),
                             Proportion(len(cost), errors))


def test_aa_experiments_reject_at_the_nominal_rate() -> None:
    """Fixed-horizon Welch tests on identical arms: false positives at rate alpha."""
    rng = np.random.default_rng(20261125)
    trials, n = 2000, 400
    control = rng.gamma(2.0, 0.01, (trials, n))
    treatment = rng.gamma(2.0, 0.01, (trials, n))
    positives = sum(
        welch(SampleMean.of(c), SampleMean.of(t), ALPHA).p_value < ALPHA
        for c, t in zip(control, treatment, strict=True)
    )
    assert within_binomial_noise(positives, trials, ALPHA), positives / trials


def _peeking_false_positive_rates(
    rng: np.random.Generator, trials: int, looks: int, per_look: int
) -> tuple[float, float, float]:
    """Share of A/A experiments ever declared different or deployed, looking every day:
    (fixed-horizon p below alpha, always-valid p below alpha, recommendation to deploy)."""
    naive = sequential = deployed = 0
    for _ in range(trials):
        control = rng.normal(0.02, 0.01, looks * per_look)
        treatment = rng.normal(0.02, 0.01, looks * per_look)
        naive_hit = sequential_hit = deploy_hit = False
        for look in range(1, looks + 1):
            size = look * per_look
            c, t = control[:size], treatment[:size]
            analysis = analyse_experiment(
                "aa", [variant("control", c, c, 0), variant("treatment", t, t, 0)], EVEN, ALPHA
            )
            cost = next(x for x in analysis.comparisons if x.metric == "cost_usd")
            naive_hit |= cost.p_value < ALPHA
            sequential_hit |= cost.sequential_p_value < ALPHA
            deploy_hit |= analysis.recommendation == "deploy_to_production"
        naive += naive_hit
        sequential += sequential_hit
        deployed += deploy_hit
    return naive / trials, sequential / trials, deployed / trials


@pytest.mark.slow
def test_daily_peeking_inflates_fixed_p_values_but_not_the_sequential_decision() -> None:
    naive, sequential, deployed = _peeking_false_positive_rates(
        np.random.default_rng(7), trials=400, looks=14, per_look=150
    )
    noise = 3 * np.sqrt(ALPHA * (1 - ALPHA) / 400)
    assert naive > 2 * ALPHA  # looking every day at fixed-horizon p-values finds false winners
    assert sequential <= ALPHA + noise
    assert deployed <= ALPHA + noise


def test_a_true_effect_of_the_mde_is_detected_with_the_designed_power() -> None:
    rng = np.random.default_rng(99)
    trials, n, sd = 2000, 1000, 1.0
    effect = minimum_detectable_effect(sd * np.sqrt(2 / n), ALPHA, 0.8)
    control = rng.normal(0.0, sd, (trials, n))
    treatment = rng.normal(effect, sd, (trials, n))
    detected = sum(
        welch(SampleMean.of(c), SampleMean.of(t), ALPHA).p_value < ALPHA
        for c, t in zip(control, treatment, strict=True)
    )
    assert within_binomial_noise(detected, trials, 0.8), detected / trials


def _arm(rng: np.random.Generator, name: str, n: int, cost: float, quality: float, error_rate: float) -> VariantStatistics:
    return variant(
        name, rng.gamma(2.0, cost / 2, n), np.clip(rng.normal(quality, 0.1, n // 2), 0, 1),
        int(rng.binomial(n, error_rate)), rng.lognormal(7, 0.3, n),
    )


def test_a_cheaper_variant_with_kept_quality_wins() -> None:
    rng = np.random.default_rng(1)
    analysis = analyse_experiment("exp", [_arm(rng, "control", 20000, 0.0245, 0.92, 0.002),
                                          _arm(rng, "treatment", 20000, 0.0134, 0.90, 0.003)], EVEN)
    assert (analysis.winner, analysis.recommendation) == ("treatment", "deploy_to_production")
    assert {c.metric for c in analysis.comparisons} == {"cost_usd", "latency_ms", "quality_score", "error_rate"}


def test_a_variant_that_loses_too_much_quality_is_not_deployed() -> None:
    rng = np.random.default_rng(2)
    analysis = analyse_experiment("exp", [_arm(rng, "control", 20000, 0.0245, 0.92, 0.002),
                                          _arm(rng, "treatment", 20000, 0.0134, 0.80, 0.003)], EVEN)
    assert (analysis.winner, analysis.recommendation) == (None, "keep_control")


def test_an_unreliable_variant_is_not_deployed() -> None:
    rng = np.random.default_rng(3)
    analysis = analyse_experiment("exp", [_arm(rng, "control", 20000, 0.0245, 0.92, 0.002),
                                          _arm(rng, "treatment", 20000, 0.0134, 0.92, 0.09)], EVEN)
    assert analysis.recommendation == "keep_control"


def test_too_little_data_means_continue() -> None:
    rng = np.random.default_rng(4)
    analysis = analyse_experiment("exp", [_arm(rng, "control", 60, 0.0245, 0.92, 0.0),
                                          _arm(rng, "treatment", 60, 0.0200, 0.91, 0.0)], EVEN)
    assert analysis.recommendation == "continue"


def test_sample_ratio_mismatch_stops_any_decision() -> None:
    rng = np.random.default_rng(5)
    analysis = analyse_experiment("exp", [_arm(rng, "control", 20000, 0.0245, 0.92, 0.002),
                                          _arm(rng, "treatment", 18500, 0.0134, 0.90, 0.003)], EVEN)
    assert analysis.srm_detected and analysis.recommendation == "invalid_srm" and analysis.winner is None


def test_holm_adjusts_across_all_comparisons_of_the_experiment() -> None:
    rng = np.random.default_rng(6)
    arms = [_arm(rng, "control", 5000, 0.02, 0.9, 0.01), _arm(rng, "b", 5000, 0.02, 0.9, 0.01),
            _arm(rng, "c", 5000, 0.019, 0.9, 0.01)]
    analysis = analyse_experiment("exp", arms, {"control": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert len(analysis.comparisons) == 8
    smallest = min(analysis.comparisons, key=lambda c: c.p_value)
    assert smallest.p_value_adjusted == pytest.approx(min(1.0, 8 * smallest.p_value))
    assert all(c.p_value_adjusted >= c.p_value for c in analysis.comparisons)


def test_an_experiment_can_hold_a_change_to_a_tighter_quality_margin() -> None:
    """The specification's rule tolerates 0.05 of quality; an optimization's experiment is held
    to the margin its change was certified with, and a cheaper arm losing 0.03 does not win."""
    from optimizer.analysis.experiments import analyse_experiment
    from optimizer.analysis.statistics import Proportion, SampleMean

    control = VariantStatistics("control", SampleMean(20_000, 0.010, 1e-6), SampleMean(20_000, 900, 1e4),
                                SampleMean(20_000, 0.90, 0.002), Proportion(20_000, 20))
    cheaper = VariantStatistics("treatment", SampleMean(20_000, 0.006, 1e-6), SampleMean(20_000, 900, 1e4),
                                SampleMean(20_000, 0.87, 0.002), Proportion(20_000, 20))
    shares = {"control": 0.5, "treatment": 0.5}
    assert analyse_experiment("exp", [control, cheaper], shares).recommendation == "deploy_to_production"
    tight = analyse_experiment("exp", [control, cheaper], shares, max_quality_drop=0.02)
    assert tight.recommendation == "keep_control" and "loses more than 0.02 quality" in " ".join(tight.reasons)
