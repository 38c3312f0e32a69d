"""A/B experiment analysis: every variant against `control` on cost, latency, quality, errors.

Fixed-horizon results (Welch t-test, two-proportion z-test, Holm-adjusted) are reported
as the contract names them. The recommendation is taken from always-valid sequential
results instead, because the nightly flow looks at running experiments every night and
fixed-horizon p-values read that often would declare false winners far more often than
alpha.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from optimizer.analysis.statistics import (
    Difference,
    Proportion,
    SampleMean,
    holm,
    minimum_detectable_effect,
    mixture_sequential_test,
    power_against,
    sample_ratio_p_value,
    two_proportions,
    welch,
)
from optimizer.schemas.analysis import Comparison, ExperimentAnalysis, Metric, VariantSummary

CONTROL = "control"
SRM_ALPHA = 0.001  # checked every night: a stricter level keeps false alarms rare
MIN_SUCCESS_RATE = 0.95  # the specification's decision rule
MAX_QUALITY_DROP = 0.05  # the specification's decision rule
SUCCESS_MIXING_SD = 0.02


@dataclass(frozen=True)
class VariantStatistics:
    """One variant's sufficient statistics; `errors.n` counts every request."""

    variant_id: str
    cost_usd: SampleMean
    latency_ms: SampleMean
    quality_score: SampleMean
    errors: Proportion

    @property
    def n(self) -> int:
        return self.errors.n


def reference_effect(metric: Metric, control: VariantStatistics, max_quality_drop: float = MAX_QUALITY_DROP) -> float:
    """The effect size a comparison is judged against (power) and tuned to (sequential test).

    10% of the control mean for cost and latency; the experiment's quality margin (the
    specification's 0.05 unless it says otherwise: the sequential test is most powerful for
    effects of the size it is tuned to, and the margin is the size that matters); half the
    control error rate, at least half a percentage point, for errors.
    """
    if metric == "cost_usd":
        return 0.1 * abs(control.cost_usd.mean)
    if metric == "latency_ms":
        return 0.1 * abs(control.latency_ms.mean)
    if metric == "quality_score":
        return max_quality_drop
    return max(0.5 * control.errors.rate, 0.005)


def _difference(metric: Metric, control: VariantStatistics, treatment: VariantStatistics, alpha: float) -> Difference:
    if metric == "error_rate":
        return two_proportions(control.errors, treatment.errors, alpha)
    samples: dict[str, tuple[SampleMean, SampleMean]] = {
        "cost_usd": (control.cost_usd, treatment.cost_usd),
        "latency_ms": (control.latency_ms, treatment.latency_ms),
        "quality_score": (control.quality_score, treatment.quality_score),
    }
    return welch(*samples[metric], alpha)


def _measurable(metric: Metric, control: VariantStatistics, treatment: VariantStatistics) -> bool:
    if metric == "quality_score":
        return control.quality_score.n >= 2 and treatment.quality_score.n >= 2
    return control.n >= 2 and treatment.n >= 2


@dataclass(frozen=True)
class _Raw:
    variant_id: str
    metric: Metric
    difference: Difference
    reference: float
    n_control: int
    n_treatment: int

    def sequential(self, alpha: float) -> tuple[float, tuple[float, float]]:
        mixing = max(self.reference, 1e-12) ** 2
        result = mixture_sequential_test(
            self.difference.absolute, self.difference.standard_error**2, mixing, alpha
        )
        return result.p_value, result.ci


def _success_interval(errors: Proportion, alpha: float) -> tuple[float, float]:
    """Always-valid interval for 1 - error rate, with a half-count guard against zero variance."""
    smoothed = (errors.successes + 0.5) / (errors.n + 1)
    variance = smoothed * (1 - smoothed) / errors.n
    success = 1 - errors.rate
    return mixture_sequential_test(success, variance, SUCCESS_MIXING_SD**2, alpha).ci


def analyse_experiment(
    experiment_id: str,
    variants: Sequence[VariantStatistics],
    allocation: Mapping[str, float],
    alpha: float = 0.05,
    max_quality_drop: float = MAX_QUALITY_DROP,
) -> ExperimentAnalysis:
    """Compare every variant with `control`; the caller guarantees `control` is present.
    A winner must keep quality within `max_quality_drop` (the specification's 0.05 unless
    the experiment says otherwise)."""
    by_id = {v.variant_id: v for v in variants}
    control = by_id[CONTROL]
    total = sum(v.n for v in variants)
    srm_p = sample_ratio_p_value({v.variant_id: v.n for v in variants}, allocation)
    summaries = [
        VariantSummary(
            variant_id=v.variant_id, n=v.n, expected_share=float(allocation.get(v.variant_id, 0.0)),
            observed_share=v.n / total if total else 0.0,
        )
        for v in sorted(variants, key=lambda v: (v.variant_id != CONTROL, v.variant_id))
    ]
    treatments = [v for v in variants if v.variant_id != CONTROL]
    metrics: tuple[Metric, ...] = ("cost_usd", "latency_ms", "quality_score", "error_rate")
    raws = [
        _Raw(
            t.variant_id, metric, _difference(metric, control, t, alpha),
            reference_effect(metric, control, max_quality_drop),
            control.quality_score.n if metric == "quality_score" else control.n,
            t.quality_score.n if metric == "quality_score" else t.n,
        )
        for t in sorted(treatments, key=lambda v: v.variant_id)
        for metric in metrics
        if _measurable(metric, control, t)
    ]
    sequential = [raw.sequential(alpha) for raw in raws]
    adjusted = holm([raw.difference.p_value for raw in raws])
    adjusted_sequential = holm([p for p, _ in sequential])
    comparisons = [
        Comparison(
            variant_id=raw.variant_id, metric=raw.metric,
            control_mean=raw.difference.control_mean, treatment_mean=raw.difference.treatment_mean,
            absolute_diff=raw.difference.absolute, relative_diff=raw.difference.relative,
            ci=raw.difference.ci, relative_ci=raw.difference.relative_ci,
            p_value=raw.difference.p_value, p_value_adjusted=adj, significant=adj < alpha,
            n_control=raw.n_control, n_treatment=raw.n_treatment,
            mde=minimum_detectable_effect(raw.difference.standard_error, alpha),
            power=power_against(raw.reference, raw.difference.standard_error, alpha),
            power_reference_effect=raw.reference,
            sequential_p_value=seq_p, sequential_p_value_adjusted=seq_adj,
            sequential_ci=seq_ci, sequential_significant=seq_adj < alpha,
        )
        for raw, adj, (seq_p, seq_ci), seq_adj in zip(raws, adjusted, sequential, adjusted_sequential, strict=True)
    ]
    winner, recommendation, reasons = _decide(
        srm_p, control, treatments, raws, alpha, max_quality_drop
    )
    return ExperimentAnalysis(
        experiment_id=experiment_id, srm_p_value=srm_p, srm_detected=srm_p < SRM_ALPHA,
        variants=summaries, comparisons=comparisons, winner=winner,
        recommendation=recommendation, reasons=reasons,
    )


def _decide(
    srm_p: float,
    control: VariantStatistics,
    treatments: Sequence[VariantStatistics],
    raws: Sequence[_Raw],
    alpha: float,
    max_quality_drop: float = MAX_QUALITY_DROP,
) -> tuple[str | None, str, list[str]]:
    """Intersection-union rule per variant, Bonferroni across variants, sequential intervals.

    A variant wins only if all three claims hold at once (saves cost, quality within the
    margin, success rate at least 0.95), so each claim is tested at the variant's level
    and no further correction is needed for the conjunction.
    """
    if srm_p < SRM_ALPHA:
        return None, "invalid_srm", [
            f"sample ratio mismatch (p = {srm_p:.2g} < {SRM_ALPHA}): assignment is broken, no decision is valid"
        ]
    level = alpha / max(len(treatments), 1)
    reasons: list[str] = []
    winners: list[tuple[float, str]] = []
    losers = 0
    for treatment in sorted(treatments, key=lambda v: v.variant_id):
        found = {raw.metric: raw for raw in raws if raw.variant_id == treatment.variant_id}
        name = treatment.variant_id
        cost_ci = found["cost_usd"].sequential(level)[1] if "cost_usd" in found else (-math.inf, math.inf)
        quality_ci = (
            found["quality_score"].sequential(level)[1] if "quality_score" in found else (-math.inf, math.inf)
        )
        success_ci = _success_interval(treatment.errors, level) if treatment.n else (0.0, 1.0)
        saves = cost_ci[1] < 0
        keeps_quality = quality_ci[0] >= -max_quality_drop
        reliable = success_ci[0] >= MIN_SUCCESS_RATE
        if saves and keeps_quality and reliable:
            winners.append((found["cost_usd"].difference.absolute, name))
            reasons.append(
                f"{name} saves {-found['cost_usd'].difference.absolute:.4g} USD per request "
                f"(always-valid interval {cost_ci[0]:.4g} to {cost_ci[1]:.4g}), keeps quality within "
                f"{max_quality_drop} and succeeds at least {MIN_SUCCESS_RATE:.0%} of the time"
            )
            continue
        if cost_ci[0] >= 0 or quality_ci[1] < -max_quality_drop or success_ci[1] < MIN_SUCCESS_RATE:
            losers += 1
            why = (
                "cannot save cost" if cost_ci[0] >= 0
                else f"loses more than {max_quality_drop} quality" if quality_ci[1] < -max_quality_drop
                else f"fails more than {1 - MIN_SUCCESS_RATE:.0%} of requests"
            )
            reasons.append(f"{name} {why}, with statistical support")
            continue
        missing = [
            claim for claim, held in (("a cost saving", saves), ("quality within the margin", keeps_quality),
                                      (f"a success rate of at least {MIN_SUCCESS_RATE:.0%}", reliable))
            if not held
        ]
        reasons.append(f"{name}: not yet enough evidence for {', '.join(missing)}")
    if winners:
        return min(winners)[1], "deploy_to_production", reasons
    if treatments and losers == len(treatments):
        return None, "keep_control", reasons
    return None, "continue", reasons
