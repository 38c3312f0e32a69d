"""The statistics core against scipy/statsmodels on the same rows, and its invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from optimizer.analysis.statistics import (
    Proportion,
    SampleMean,
    holm,
    mean_interval,
    minimum_detectable_effect,
    mixture_sequential_test,
    power_against,
    sample_ratio_p_value,
    two_proportions,
    welch,
)


@pytest.mark.parametrize("seed", range(5))
def test_welch_matches_scipy_on_the_same_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    control = rng.gamma(2.0, 0.01, 400 + 37 * seed)
    treatment = rng.gamma(2.2, 0.008, 350 + 11 * seed)
    mine = welch(SampleMean.of(control), SampleMean.of(treatment), alpha=0.05)
    theirs = stats.ttest_ind(treatment, control, equal_var=False)
    assert mine.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    assert mine.ci == pytest.approx(tuple(theirs.confidence_interval(0.95)), rel=1e-9)
    assert mine.absolute == pytest.approx(treatment.mean() - control.mean())


@pytest.mark.parametrize(("x_c", "n_c", "x_t", "n_t"), [(30, 1000, 52, 1100), (5, 20000, 9, 20000), (400, 900, 380, 950)])
def test_two_proportions_matches_statsmodels(x_c: int, n_c: int, x_t: int, n_t: int) -> None:
    mine = two_proportions(Proportion(n_c, x_c), Proportion(n_t, x_t))
    assert mine.p_value == pytest.approx(proportions_ztest([x_t, x_c], [n_t, n_c])[1], rel=1e-9)
    low, high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff")
    assert mine.ci == pytest.approx((low, high), rel=1e-9)


def test_sample_ratio_check_matches_scipy_chisquare() -> None:
    p = sample_ratio_p_value({"control": 5100, "treatment": 4900}, {"control": 0.5, "treatment": 0.5})
    assert p == pytest.approx(stats.chisquare([5100, 4900]).pvalue)
    skewed = sample_ratio_p_value({"a": 700, "b": 300}, {"a": 0.7, "b": 0.3})
    assert skewed == pytest.approx(1.0)


def test_holm_matches_statsmodels() -> None:
    p = [0.01, 0.04, 0.03, 0.2, 0.0001, 0.04]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_mde_is_the_effect_detected_with_the_designed_power() -> None:
    se = math.sqrt(2 / 1000)
    mde = minimum_detectable_effect(se, alpha=0.05, power=0.8)
    assert power_against(mde, se, alpha=0.05) == pytest.approx(0.8, abs=1e-4)
    effect_size = NormalIndPower().solve_power(nobs1=1000, alpha=0.05, power=0.8, ratio=1.0)
    assert mde == pytest.approx(effect_size, rel=1e-3)  # sd = 1, so Cohen's d is the MDE


def test_relative_interval_covers_the_true_ratio() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    trials = 600
    for _ in range(trials):
        control, treatment = rng.exponential(2.0, 800), rng.exponential(1.5, 800)
        interval = welch(SampleMean.of(control), SampleMean.of(treatment)).relative_ci
        assert interval is not None
        covered += interval[0] <= 1.5 / 2.0 - 1 <= interval[1]
    assert stats.binomtest(covered, trials, 0.95).pvalue > 0.001


def test_mean_interval_matches_scipy() -> None:
    values = np.random.default_rng(3).normal(-0.01, 0.1, 500)
    low, high = mean_interval(SampleMean.of(values), alpha=0.05)
    expected = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert (low, high) == pytest.approx(expected)


def test_sequential_interval_is_wider_than_fixed_and_shrinks_with_data() -> None:
    fixed = welch(SampleMean(1000, 0.0, 1.0), SampleMean(1000, 0.1, 1.0))
    sequential = mixture_sequential_test(fixed.absolute, fixed.standard_error**2, 0.1**2)
    assert sequential.ci[0] < fixed.ci[0] and sequential.ci[1] > fixed.ci[1]
    more = welch(SampleMean(4000, 0.0, 1.0), SampleMean(4000, 0.1, 1.0))
    tighter = mixture_sequential_test(more.absolute, more.standard_error**2, 0.1**2)
    assert tighter.ci[1] - tighter.ci[0] < sequential.ci[1] - sequential.ci[0]


samples = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(samples, samples)
def test_combining_two_groups_equals_summarising_them_together(first: list[float], second: list[float]) -> None:
    combined = SampleMean.of(first).combine(SampleMean.of(second))
    direct = SampleMean.of(first + second)
    assert combined.n == direct.n
    assert combined.mean == pytest.approx(direct.mean, abs=1e-6)
    assert combined.variance == pytest.approx(direct.variance, rel=1e-6, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(samples, samples)
def test_doubling_identical_data_never_widens_an_interval(control: list[float], treatment: list[float]) -> None:
    once = welch(SampleMean.of(control), SampleMean.of(treatment))
    twice = welch(SampleMean.of(control * 2), SampleMean.of(treatment * 2))
    assert twice.ci[1] - twice.ci[0] <= once.ci[1] - once.ci[0] + 1e-9
    seq_once = mixture_sequential_test(once.absolute, once.standard_error**2, 1.0)
    seq_twice = mixture_sequential_test(twice.absolute, twice.standard_error**2, 1.0)
    assert seq_twice.ci[1] - seq_twice.ci[0] <= seq_once.ci[1] - seq_once.ci[0] + 1e-9
