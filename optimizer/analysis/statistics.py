"""Sufficient statistics and the tests built on them.

A group of observations enters as `SampleMean(n, mean, variance)` or `Proportion(n,
successes)`, which the warehouse computes in SQL; every test here works on those few
numbers, so a test of ten million rows costs what a test of ten does. No I/O, no clock.

Distributions are evaluated with `scipy.special`, the functions behind `scipy.stats`'s
normal, t and chi-square distributions: the same numbers, without the distribution
objects' per-call overhead (about 1 ms each), which simulations of thousands of
analyses and the nightly run's many comparisons would otherwise spend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

Interval = tuple[float, float]


@dataclass(frozen=True)
class SampleMean:
    """n observations as their mean and unbiased sample variance (ddof = 1)."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Iterable[float]) -> SampleMean:
        array = np.asarray(list(values), dtype=float)
        if array.size == 0:
            return cls(0, math.nan, math.nan)
        variance = float(array.var(ddof=1)) if array.size > 1 else 0.0
        return cls(int(array.size), float(array.mean()), variance)

    @classmethod
    def from_sums(cls, n: int, total: float, total_squares: float) -> SampleMean:
        if n == 0:
            return cls(0, math.nan, math.nan)
        mean = total / n
        variance = max((total_squares - n * mean * mean) / (n - 1), 0.0) if n > 1 else 0.0
        return cls(n, mean, variance)

    def combine(self, other: SampleMean) -> SampleMean:
        """Both groups as one (Chan et al.'s parallel update; exact, no raw rows needed)."""
        if self.n == 0:
            return other
        if other.n == 0:
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        squares = (
            self.variance * (self.n - 1)
            + other.variance * (other.n - 1)
            + delta * delta * self.n * other.n / n
        )
        return SampleMean(n, mean, squares / (n - 1) if n > 1 else 0.0)

    @property
    def variance_of_mean(self) -> float:
        return self.variance / self.n if self.n else math.inf


@dataclass(frozen=True)
class Proportion:
    n: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else math.nan

    @property
    def variance_of_rate(self) -> float:
        p = self.rate
        return p * (1 - p) / self.n if self.n else math.inf

    def as_sample_mean(self) -> SampleMean:
        """The same data as 0/1 observations (for mixture tests that need a variance)."""
        p = self.rate
        variance = p * (1 - p) * self.n / (self.n - 1) if self.n > 1 else 0.0
        return SampleMean(self.n, p, variance)


@dataclass(frozen=True)
class Difference:
    """treatment - control, with a two-sided test and intervals at level 1 - alpha."""

    control_mean: float
    treatment_mean: float
    absolute: float
    standard_error: float
    ci: Interval
    p_value: float
    relative: float | None
    relative_ci: Interval | None


def normal_quantile(probability: float) -> float:
    return float(special.ndtri(probability))


def normal_cdf(x: float) -> float:
    return float(special.ndtr(x))


def _two_sided_normal_p(statistic: float) -> float:
    return 2 * normal_cdf(-abs(statistic))


def _two_sided_t_p(statistic: float, df: float) -> float:
    return float(2 * special.stdtr(df, -abs(statistic)))


def _degenerate_p(difference: float) -> float:
    """p-value when there is no sampling noise at all: any difference is certain."""
    return 1.0 if difference == 0 else 0.0


def relative_difference(
    control: SampleMean, treatment: SampleMean, alpha: float
) -> tuple[float | None, Interval | None]:
    """treatment/control - 1 with a delta-method interval; None when the control mean is 0."""
    if control.mean == 0 or math.isnan(control.mean):
        return None, None
    ratio = treatment.mean / control.mean
    # Var(mt/mc) ~ (Var(mt) + ratio^2 Var(mc)) / mc^2, written so tiny means do not underflow.
    spread = math.hypot(
        math.sqrt(treatment.variance_of_mean), ratio * math.sqrt(control.variance_of_mean)
    ) / abs(control.mean)
    half = normal_quantile(1 - alpha / 2) * spread
    return ratio - 1, (ratio - 1 - half, ratio - 1 + half)


def welch(control: SampleMean, treatment: SampleMean, alpha: float = 0.05) -> Difference:
    """Welch's unequal-variance t-test and interval for the difference of two means."""
    difference = treatment.mean - control.mean
    v_c, v_t = control.variance_of_mean, treatment.variance_of_mean
    se = math.sqrt(v_c + v_t)
    if se == 0:
        p_value, ci = _degenerate_p(difference), (difference, difference)
    else:
        denominator = v_c**2 / max(control.n - 1, 1) + v_t**2 / max(treatment.n - 1, 1)
        # Welch-Satterthwaite; when the variances are so small their squares underflow,
        # the pooled degrees of freedom are the limit it tends to.
        df = (v_c + v_t) ** 2 / denominator if denominator > 0 else max(control.n + treatment.n - 2, 1)
        p_value = _two_sided_t_p(difference / se, df)
        half = float(special.stdtrit(df, 1 - alpha / 2)) * se
        ci = (difference - half, difference + half)
    relative, relative_ci = relative_difference(control, treatment, alpha)
    return Difference(control.mean, treatment.mean, difference, se, ci, p_value, relative, relative_ci)


def two_proportions(control: Proportion, treatment: Proportion, alpha: float = 0.05) -> Difference:
    """Two-proportion z-test (pooled variance under H0) with a Wald interval (unpooled)."""
    difference = treatment.rate - control.rate
    pooled = (control.successes + treatment.successes) / (control.n + treatment.n)
    se_null = math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / treatment.n))
    p_value = _degenerate_p(difference) if se_null == 0 else _two_sided_normal_p(difference / se_null)
    se = math.sqrt(control.variance_of_rate + treatment.variance_of_rate)
    half = normal_quantile(1 - alpha / 2) * se
    relative, relative_ci = relative_difference(control.as_sample_mean(), treatment.as_sample_mean(), alpha)
    return Difference(
        control.rate, treatment.rate, difference, se, (difference - half, difference + half),
        p_value, relative, relative_ci,
    )


def mean_interval(sample: SampleMean, alpha: float = 0.05) -> Interval:
    """Two-sided t interval for one mean (used for paired differences)."""
    if sample.n < 2 or sample.variance == 0:
        return (sample.mean, sample.mean)
    half = float(special.stdtrit(sample.n - 1, 1 - alpha / 2)) * math.sqrt(sample.variance_of_mean)
    return (sample.mean - half, sample.mean + half)


def mean_upper_bound(sample: SampleMean, alpha: float = 0.05) -> float:
    """One-sided upper t bound for one mean at level alpha: the mean is at most this with
    confidence 1 - alpha (the upper end of the two-sided 1 - 2 alpha interval)."""
    return mean_interval(sample, 2 * alpha)[1]


def welch_upper_bound(control: SampleMean, treatment: SampleMean, alpha: float = 0.05) -> float:
    """One-sided Welch upper bound at level alpha for treatment - control."""
    return welch(control, treatment, 2 * alpha).ci[1]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error rate at any alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def sample_ratio_p_value(observed: Mapping[str, int], expected_shares: Mapping[str, float]) -> float:
    """Chi-square goodness of fit of the variant counts to the planned allocation."""
    names = sorted(expected_shares)
    counts = np.array([observed.get(name, 0) for name in names], dtype=float)
    shares = np.array([expected_shares[name] for name in names], dtype=float)
    if counts.sum() == 0 or len(names) < 2:
        return 1.0
    expected = counts.sum() * shares / shares.sum()
    statistic = float(((counts - expected) ** 2 / expected).sum())
    return float(special.chdtrc(len(names) - 1, statistic))


def minimum_detectable_effect(standard_error: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true |difference| a two-sided test at `alpha` detects with `power`."""
    return (normal_quantile(1 - alpha / 2) + normal_quantile(power)) * standard_error


def power_against(effect: float, standard_error: float, alpha: float = 0.05) -> float:
    """Probability that a two-sided test at `alpha` detects a true difference `effect`."""
    if standard_error == 0:
        return 1.0 if effect else alpha
    z = normal_quantile(1 - alpha / 2)
    shift = abs(effect) / standard_error
    return normal_cdf(shift - z) + normal_cdf(-shift - z)


@dataclass(frozen=True)
class SequentialResult:
    """An always-valid test and confidence sequence (mSPRT with a normal mixture).

    `p_value` can be read after every new batch of data, as often as one likes: the
    chance that it ever falls below alpha under the null is at most alpha (Ville's
    inequality). `ci` covers the true difference at every look simultaneously.
    """

    p_value: float
    ci: Interval


def mixture_sequential_test(
    difference: float, variance: float, mixing_variance: float, alpha: float = 0.05
) -> SequentialResult:
    """Normal-mixture SPRT for a difference estimated with `variance` (Johari et al., 2017).

    `mixing_variance` (tau squared) is the spread of effects the test is tuned to find;
    the test stays valid for any choice, only its power moves.
    """
    if variance <= 0:
        return SequentialResult(_degenerate_p(difference), (difference, difference))
    total = variance + mixing_variance
    log_likelihood_ratio = 0.5 * math.log(variance / total) + (
        mixing_variance * difference**2 / (2 * variance * total)
    )
    p_value = 1.0 if log_likelihood_ratio <= 0 else min(1.0, math.exp(-log_likelihood_ratio))
    half = math.sqrt(
        2 * variance * total / mixing_variance
        * (math.log(1 / alpha) + 0.5 * math.log(total / variance))
    )
    return SequentialResult(p_value, (difference - half, difference + half))


def block_mean_interval(totals: Sequence[float], alpha: float = 0.05) -> Interval:
    """t interval for the mean of per-block totals (a day's savings, say), the blocks taken as
    independent: whatever ties requests together within a block (a prompt repeated in a
    burst, a job's requests arriving together) stays inside the block's total. (nan, nan)
    below two blocks."""
    if len(totals) < 2:
        return (math.nan, math.nan)
    return mean_interval(SampleMean.of(totals), alpha)
