"""Prompt compression: is quality on compressed traffic non-inferior, and what does it save?

Compressed and uncompressed requests of the same application and model are compared on
evaluator quality (Welch interval of the difference). When the application runs an
experiment with compressed and uncompressed arms, only that experiment's randomised rows
are compared; otherwise all traffic is, and the result is observational. Compression
loses more on short prompts, so a prompt-length floor is chosen the same way cascade
thresholds are: floors on a fixed grid are tested from the longest prompts down, each
non-inferiority test at level alpha, stopping at the first failure (fixed-sequence
testing keeps the family-wise error at alpha). The sequence starts at the longest floor
with enough data to pass at all (an interval no wider than the margin), which uses only
sample sizes and spreads, not the differences being tested. The lowest passing floor is
recommended.

Latency is measured, not assumed: the mean latency of compressed minus uncompressed requests
(`latency_impact_ms`, Welch interval). A floor passes only when quality is non-inferior and the
one-sided Welch upper bound of the latency change stays within `max_latency_increase_ms` (a
compressor in the request path can cost more time than the shorter prompt saves): both tests
at level alpha, on the same fixed sequence, so the claim "quality and latency both hold" keeps
its level (an intersection-union test) and the sequence keeps the family-wise error at alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from optimizer.analysis.statistics import SampleMean, welch, welch_upper_bound
from optimizer.schemas.analysis import (
    MAX_LATENCY_INCREASE_MS,
    CompressionRecommendation,
    CompressionReport,
    FloorCheck,
)

FLOOR_GRID: tuple[int, ...] = (0, 250, 500, 1000, 2000, 4000, 8000, 16000)
MIN_EVALUATED = 100  # evaluated requests per arm before a floor is tested
DAYS_PER_MONTH = 30.0
NO_LATENCY = SampleMean(0, math.nan, math.nan)  # latency not recorded


@dataclass(frozen=True)
class PromptBucket:
    """Requests of one arm whose original prompt length is in [floor, next floor)."""

    floor: int
    compressed: bool
    experiment_id: str  # "" for traffic outside any experiment
    requests: int
    quality: SampleMean
    prompt_tokens: int  # sent, after any compression
    original_prompt_tokens: int  # before compression (equal to sent when uncompressed)
    latency: SampleMean = NO_LATENCY  # latency_ms of the requests


@dataclass(frozen=True)
class CompressionData:
    application_id: str
    model: str
    technique: str
    input_cost_per_1k: float | None
    days_observed: float
    buckets: tuple[PromptBucket, ...]


def _arm(buckets: Sequence[PromptBucket], compressed: bool, floor: int) -> list[PromptBucket]:
    return [b for b in buckets if b.compressed == compressed and b.floor >= floor]


def _quality(buckets: Sequence[PromptBucket]) -> SampleMean:
    return reduce(SampleMean.combine, (b.quality for b in buckets), SampleMean(0, 0.0, 0.0))


def _latency(buckets: Sequence[PromptBucket]) -> SampleMean:
    return reduce(SampleMean.combine, (b.latency for b in buckets if b.latency.n), SampleMean(0, 0.0, 0.0))


def latency_impact(buckets: Sequence[PromptBucket], floor: int, alpha: float) -> dict[str, Any]:
    """Compressed minus uncompressed mean latency above `floor`: the estimate, its two-sided
    interval and its one-sided upper bound at `alpha`; Nones when unknown."""
    compressed, plain = _latency(_arm(buckets, True, floor)), _latency(_arm(buckets, False, floor))
    if min(compressed.n, plain.n) < 2:
        return {"latency_impact_ms": None, "latency_impact_ms_ci": None, "latency_increase_bound_ms": None}
    difference = welch(plain, compressed, alpha)
    return {"latency_impact_ms": difference.absolute, "latency_impact_ms_ci": difference.ci,
            "latency_increase_bound_ms": welch_upper_bound(plain, compressed, alpha)}


def _too_slow(latency: dict[str, Any], limit: float | None) -> bool:
    bound = latency["latency_increase_bound_ms"]
    return bound is not None and limit is not None and bool(bound > limit)


def comparable_buckets(data: CompressionData) -> tuple[tuple[PromptBucket, ...], str | None]:
    """The randomised experiment's rows when there is one with both arms (and its id);
    else all rows (and None)."""
    experiments = sorted({b.experiment_id for b in data.buckets if b.experiment_id})
    for experiment in experiments:
        rows = tuple(b for b in data.buckets if b.experiment_id == experiment)
        if {b.compressed for b in rows} == {True, False}:
            return rows, experiment
    return data.buckets, None


def _floor_check(buckets: Sequence[PromptBucket], floor: int, max_quality_drop: float, alpha: float) -> FloorCheck:
    compressed, plain = _quality(_arm(buckets, True, floor)), _quality(_arm(buckets, False, floor))
    difference = welch(plain, compressed, alpha)
    return FloorCheck(
        min_prompt_tokens=floor, n_compressed=compressed.n, n_uncompressed=plain.n,
        quality_change=difference.absolute, quality_change_ci=difference.ci,
        non_inferior=difference.ci[0] >= -max_quality_drop,
    )


def _starting_floors(
    buckets: Sequence[PromptBucket], max_quality_drop: float, alpha: float, min_evaluated: int
) -> list[int]:
    """Floors to test, longest prompts first, from the first one precise enough to pass.

    A floor is precise enough when its interval is no wider than the margin; judging that
    uses sample sizes and spreads only. When no floor is, the single lowest floor is tested.
    """
    testable = [
        floor for floor in sorted(FLOOR_GRID, reverse=True)
        if min(_quality(_arm(buckets, True, floor)).n, _quality(_arm(buckets, False, floor)).n) >= min_evaluated
    ]
    for index, floor in enumerate(testable):
        low, high = _floor_check(buckets, floor, max_quality_drop, alpha).quality_change_ci
        if (high - low) / 2 <= max_quality_drop / 2:
            return testable[index:]
    return testable[-1:]


def recommend_application(
    data: CompressionData, *, max_quality_drop: float, alpha: float, min_evaluated: int = MIN_EVALUATED,
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS,
) -> CompressionRecommendation:
    buckets, experiment = comparable_buckets(data)
    basis = f"randomised experiment {experiment}" if experiment else "observational comparison (no randomised experiment)"
    checks: list[FloorCheck] = []
    chosen: FloorCheck | None = None
    slow: FloorCheck | None = None  # the first floor that kept quality but not latency
    for floor in _starting_floors(buckets, max_quality_drop, alpha, min_evaluated):
        check = _floor_check(buckets, floor, max_quality_drop, alpha)
        checks.append(check)
        if not check.non_inferior:
            break
        if _too_slow(latency_impact(buckets, floor, alpha), max_latency_increase_ms):
            slow = check
            break
        chosen = check
    n_compressed = sum(b.requests for b in buckets if b.compressed)
    n_plain = sum(b.requests for b in buckets if not b.compressed)
    common = {
        "application_id": data.application_id, "technique": data.technique, "model": data.model,
        "n_compressed": n_compressed, "n_uncompressed": n_plain, "floors": checks, "experiment_id": experiment,
    }
    if not checks:
        return CompressionRecommendation(
            **common, decision="insufficient_data", token_reduction_pct=None, quality_change=None,
            quality_change_ci=None, estimated_monthly_savings_usd=None, min_prompt_tokens=None,
            reason=f"fewer than {min_evaluated} evaluated requests in an arm at every prompt-length floor",
        )
    shown = chosen or checks[-1]
    latency = latency_impact(buckets, shown.min_prompt_tokens, alpha)
    common |= latency
    sent = sum(b.prompt_tokens for b in _arm(buckets, True, shown.min_prompt_tokens))
    original = sum(b.original_prompt_tokens for b in _arm(buckets, True, shown.min_prompt_tokens))
    reduction = 1 - sent / original if original else 0.0
    savings = _monthly_savings(data, shown.min_prompt_tokens, reduction)
    low, high = shown.quality_change_ci
    if chosen is None and slow is not None:
        return CompressionRecommendation(
            **common, decision="reject", token_reduction_pct=100 * reduction,
            quality_change=slow.quality_change, quality_change_ci=slow.quality_change_ci,
            estimated_monthly_savings_usd=savings, min_prompt_tokens=slow.min_prompt_tokens,
            reason=(f"{data.technique} on {_prompts(slow.min_prompt_tokens)} keeps quality, but latency could rise "
                    f"{latency['latency_impact_ms']:+.0f} ms a request (upper bound "
                    f"{latency['latency_increase_bound_ms']:+.0f} ms), beyond the {max_latency_increase_ms:g} ms "
                    f"limit (max_latency_increase_ms) ({basis})"),
        )
    if chosen is None:
        return CompressionRecommendation(
            **common, decision="reject", token_reduction_pct=100 * reduction,
            quality_change=shown.quality_change, quality_change_ci=shown.quality_change_ci,
            estimated_monthly_savings_usd=savings, min_prompt_tokens=shown.min_prompt_tokens,
            reason=(
                f"on {_prompts(shown.min_prompt_tokens)} quality could fall by {-low:.4f}, "
                f"beyond the {max_quality_drop} margin ({basis})"
            ),
        )
    bound = latency["latency_increase_bound_ms"]
    decision = "adopt" if reduction > 0 and (savings is None or savings > 0) else "reject"
    priced = f"saving about {savings:,.2f} USD a month" if savings is not None else "(model price unknown)"
    timing = (f"latency changes by {latency['latency_impact_ms']:+.0f} ms a request (at most {bound:+.0f} ms)"
              if bound is not None else "latency unknown")
    if decision == "adopt":
        reason = (f"{data.technique} on {_prompts(chosen.min_prompt_tokens)} cuts prompt tokens "
                  f"{100 * reduction:.1f}% {priced}; quality changes by {chosen.quality_change:+.4f} "
                  f"(CI {low:+.4f} to {high:+.4f}), within the {max_quality_drop} margin; {timing} ({basis})")
    else:
        reason = "compression keeps quality but saves nothing"
    return CompressionRecommendation(
        **common, decision=decision, token_reduction_pct=100 * reduction,
        quality_change=chosen.quality_change, quality_change_ci=chosen.quality_change_ci,
        estimated_monthly_savings_usd=savings, min_prompt_tokens=chosen.min_prompt_tokens, reason=reason,
    )


def _prompts(floor: int) -> str:
    return "every prompt" if floor == 0 else f"prompts of {floor}+ tokens"


def _monthly_savings(data: CompressionData, floor: int, reduction: float) -> float | None:
    """Savings if every eligible request of the application (any arm, any experiment) were compressed."""
    if data.input_cost_per_1k is None:
        return None
    eligible = [b for b in data.buckets if b.floor >= floor]
    requests = sum(b.requests for b in eligible)
    original = sum(b.original_prompt_tokens for b in eligible)
    if not requests:
        return 0.0
    per_request = original / requests * reduction * data.input_cost_per_1k / 1000
    return per_request * requests / max(data.days_observed, 1.0) * DAYS_PER_MONTH


def recommend(
    applications: Sequence[CompressionData],
    *,
    max_quality_drop: float = 0.02,
    alpha: float = 0.05,
    min_evaluated: int = MIN_EVALUATED,
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS,
) -> CompressionReport:
    return CompressionReport(
        recommendations=[
            recommend_application(a, max_quality_drop=max_quality_drop, alpha=alpha, min_evaluated=min_evaluated,
                                  max_latency_increase_ms=max_latency_increase_ms)
            for a in sorted(applications, key=lambda a: a.application_id)
        ],
        max_quality_drop=max_quality_drop,
        alpha=alpha,
        max_latency_increase_ms=max_latency_increase_ms,
    )
