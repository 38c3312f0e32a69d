"""Model cascades from shadow pairs: a cheaper model answers first, the current one takes
the requests whose confidence falls below a threshold.

Each shadow pair is one prompt answered by both models, so a cascade's quality change at
threshold t is a paired quantity, D(t) = 1[confidence >= t] * (q_primary - q_fallback),
averaged over pairs; its cost and latency follow the same way. Thresholds are tested on a
fixed grid from the most cautious (escalate almost everything) down, each at level alpha
(split across candidate models), stopping at the first threshold whose confidence interval
reaches below -max_quality_drop. Fixed-sequence testing in a pre-set order controls the
family-wise error rate, so choosing the cheapest passing threshold on the same pairs that
certify it does not break the quality promise ("learn then test").

Latency is a constraint, not a test: an escalated request waits for both models, so a
cascade raises the tail of latency even when it lowers the mean. The pairs also give the
95th percentile of latency the cascade would have had at every threshold (an escalated pair
waits for both calls), and a cascade whose p95 would rise by more than a budget (20%
by default, below the 30% a rollout's guardrail allows, since the guardrail reads a noisy
percentile of the live traffic) is not recommended. The cheapest threshold that keeps
quality is also the fastest that does (it escalates least), so the budget only ever rules
a cascade out; it never moves the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optimizer.analysis.statistics import SampleMean, mean_interval
from optimizer.schemas.analysis import (
    MAX_P95_LATENCY_INCREASE_PCT,
    CascadeCandidate,
    CascadeRecommendation,
    CascadeReport,
    FrontierPoint,
)

GRID_STEPS = 100  # thresholds 0.00, 0.01, ..., 1.00
LATENCY_STEP = 5  # the p95 latency is known at every fifth grid step (0.00, 0.05, ...)
FAILED_PRIMARY_BIN = -1  # the primary model errored: such requests always escalate
MIN_PAIRS = 200


@dataclass(frozen=True)
class PairBin:
    """Shadow pairs whose primary confidence c has floor(100 c) == `bin`."""

    bin: int
    n: int
    quality_diff_sum: float  # sum of (q_primary - q_fallback)
    quality_diff_squares: float
    primary_cost_sum: float
    fallback_cost_sum: float
    primary_latency_sum: float
    fallback_latency_sum: float


@dataclass(frozen=True)
class CandidatePairs:
    primary_model: str
    bins: tuple[PairBin, ...]
    # (grid step, p95 latency of the cascade at that threshold) for every LATENCY_STEP-th step,
    # and the p95 latency of the fallback alone, over the same pairs; empty when unknown.
    p95_latency_ms: tuple[tuple[int, float], ...] = ()
    fallback_p95_latency_ms: float | None = None

    def p95_latency_increase_pct(self, step: int) -> float | None:
        """At most the rise at `step`: the percentile at the next step it is known for (more
        escalation never makes a request faster)."""
        known = sorted((s, p) for s, p in self.p95_latency_ms if s >= step)
        if not known or not self.fallback_p95_latency_ms:
            return None
        return 100 * (known[0][1] / self.fallback_p95_latency_ms - 1)

    @property
    def n_pairs(self) -> int:
        return sum(b.n for b in self.bins)


@dataclass(frozen=True)
class ApplicationPairs:
    application_id: str
    fallback_model: str | None  # the model that served most of its non-shadow requests
    candidates: tuple[CandidatePairs, ...]


@dataclass(frozen=True)
class _Point:
    step: int
    answered: int  # pairs the primary answers at this threshold
    quality: SampleMean
    cost_reduction: float
    latency_change_ms: float


def _points(pairs: CandidatePairs) -> list[_Point]:
    """The cascade at every grid threshold, most cautious first."""
    n = pairs.n_pairs
    fallback_cost = sum(b.fallback_cost_sum for b in pairs.bins)
    primary_cost = sum(b.primary_cost_sum for b in pairs.bins)
    fallback_latency = sum(b.fallback_latency_sum for b in pairs.bins)
    primary_latency = sum(b.primary_latency_sum for b in pairs.bins)
    points = []
    for step in range(GRID_STEPS, -1, -1):
        kept = [b for b in pairs.bins if b.bin >= step]
        escalated = [b for b in pairs.bins if b.bin < step]
        cost = primary_cost + sum(b.fallback_cost_sum for b in escalated)
        latency = primary_latency + sum(b.fallback_latency_sum for b in escalated)
        points.append(
            _Point(
                step=step,
                answered=sum(b.n for b in kept),
                quality=SampleMean.from_sums(
                    n, sum(b.quality_diff_sum for b in kept), sum(b.quality_diff_squares for b in kept)
                ),
                cost_reduction=1 - cost / fallback_cost if fallback_cost else 0.0,
                latency_change_ms=(latency - fallback_latency) / n,
            )
        )
    return points


def _frontier_point(point: _Point, n: int, alpha: float) -> FrontierPoint:
    return FrontierPoint(
        confidence_threshold=point.step / GRID_STEPS,
        escalation_rate=1 - point.answered / n,
        cost_reduction_pct=100 * point.cost_reduction,
        quality_change=point.quality.mean,
        quality_change_ci=mean_interval(point.quality, alpha),
        latency_change_ms=point.latency_change_ms,
    )


@dataclass(frozen=True)
class _Verdict:
    candidate: CascadeCandidate
    chosen: _Point | None
    shown: _Point | None
    frontier: list[FrontierPoint]


def _evaluate(
    pairs: CandidatePairs, max_quality_drop: float, alpha: float, min_pairs: int, max_p95_increase_pct: float | None
) -> _Verdict:
    n = pairs.n_pairs
    model = pairs.primary_model
    if n < min_pairs:
        return _Verdict(
            CascadeCandidate(primary_model=model, n_pairs=n, decision="insufficient_data",
                             confidence_threshold=None, cost_reduction_pct=None, quality_change=None,
                             quality_change_ci=None,
                             reason=f"{n} shadow pairs with {model}; at least {min_pairs} are needed"),
            None, None, [],
        )
    points = _points(pairs)
    frontier = [_frontier_point(p, n, alpha) for p in points]
    chosen: _Point | None = None
    failed: _Point | None = None
    for point in points:  # fixed sequence: most cautious first, stop at the first failure
        if mean_interval(point.quality, alpha)[0] >= -max_quality_drop:
            if point.answered:
                chosen = point
        else:
            failed = point
            break
    p95_increase = pairs.p95_latency_increase_pct(chosen.step) if chosen is not None else None
    too_slow = p95_increase is not None and max_p95_increase_pct is not None and p95_increase > max_p95_increase_pct
    if chosen is not None and chosen.cost_reduction > 0 and not too_slow:
        low, high = mean_interval(chosen.quality, alpha)
        reason = (
            f"{model} answers {chosen.answered / n:.0%} of requests and the rest escalate below "
            f"confidence {chosen.step / GRID_STEPS:.2f}: cost falls {100 * chosen.cost_reduction:.1f}% and "
            f"quality changes by {chosen.quality.mean:+.4f} (CI {low:+.4f} to {high:+.4f}), within the "
            f"{max_quality_drop} margin, on {n} shadow pairs"
        )
        decision = "adopt"
        shown = chosen
    else:
        shown = failed or chosen or points[-1]
        low = mean_interval(shown.quality, alpha)[0]
        if chosen is not None and chosen.cost_reduction <= 0:
            reason = (
                f"{model} keeps quality only when it escalates so much that the cascade costs "
                f"{-100 * chosen.cost_reduction:.1f}% more than always using the current model"
            )
        elif chosen is not None:
            shown = chosen
            reason = (
                f"{model} keeps quality when it escalates below confidence {chosen.step / GRID_STEPS:.2f}, but "
                f"requests that escalate wait for both models: p95 latency would rise {p95_increase:.0f}%, "
                f"beyond the {max_p95_increase_pct:g}% budget"
            )
        else:
            reason = (
                f"even escalating every request below confidence {shown.step / GRID_STEPS:.2f}, "
                f"{model} could lower quality by {-low:.4f}, beyond the {max_quality_drop} margin"
            )
        decision = "reject"
    return _Verdict(
        CascadeCandidate(
            primary_model=model, n_pairs=n, decision=decision,
            confidence_threshold=shown.step / GRID_STEPS,
            cost_reduction_pct=100 * shown.cost_reduction, quality_change=shown.quality.mean,
            quality_change_ci=mean_interval(shown.quality, alpha), reason=reason,
            p95_latency_change_pct=pairs.p95_latency_increase_pct(shown.step),
        ),
        chosen if decision == "adopt" else None, shown, frontier,
    )


def recommend_application(
    application: ApplicationPairs, *, max_quality_drop: float, alpha: float, min_pairs: int = MIN_PAIRS,
    max_p95_latency_increase_pct: float | None = MAX_P95_LATENCY_INCREASE_PCT,
) -> CascadeRecommendation:
    cheaper = [
        c for c in application.candidates
        if sum(b.primary_cost_sum for b in c.bins) < sum(b.fallback_cost_sum for b in c.bins)
    ]
    testable = [c for c in cheaper if c.n_pairs >= min_pairs]
    level = alpha / max(len(testable), 1)  # Bonferroni across candidate primaries
    verdicts = [_evaluate(c, max_quality_drop, level, min_pairs, max_p95_latency_increase_pct) for c in cheaper]
    adopted = [v for v in verdicts if v.chosen is not None]
    if adopted:
        best = max(adopted, key=lambda v: v.chosen.cost_reduction if v.chosen else 0.0)
    elif any(v.candidate.decision == "reject" for v in verdicts):
        best = max((v for v in verdicts if v.candidate.decision == "reject"), key=lambda v: v.candidate.n_pairs)
    elif verdicts:
        best = max(verdicts, key=lambda v: v.candidate.n_pairs)
    else:
        return CascadeRecommendation(
            application_id=application.application_id, decision="insufficient_data",
            primary_model=None, fallback_model=application.fallback_model, confidence_threshold=None,
            escalation_rate=None, cost_reduction_pct=None, quality_change=None, quality_change_ci=None,
            n_pairs=0, reason="no shadow pairs with a model cheaper than the current one",
        )
    point = best.shown
    frontier_point = None
    if point is not None:
        frontier_point = next(f for f in best.frontier if f.confidence_threshold == point.step / GRID_STEPS)
    return CascadeRecommendation(
        application_id=application.application_id,
        decision=best.candidate.decision,
        primary_model=best.candidate.primary_model,
        fallback_model=application.fallback_model,
        confidence_threshold=best.candidate.confidence_threshold,
        escalation_rate=frontier_point.escalation_rate if frontier_point else None,
        cost_reduction_pct=best.candidate.cost_reduction_pct,
        quality_change=best.candidate.quality_change,
        quality_change_ci=best.candidate.quality_change_ci,
        n_pairs=best.candidate.n_pairs,
        reason=best.candidate.reason,
        latency_change_ms=frontier_point.latency_change_ms if frontier_point else None,
        p95_latency_change_pct=best.candidate.p95_latency_change_pct,
        frontier=best.frontier,
        candidates=[v.candidate for v in verdicts],
    )


def recommend(
    applications: Sequence[ApplicationPairs],
    *,
    max_quality_drop: float = 0.02,
    alpha: float = 0.05,
    min_pairs: int = MIN_PAIRS,
    max_p95_latency_increase_pct: float | None = MAX_P95_LATENCY_INCREASE_PCT,
) -> CascadeReport:
    """One recommendation per application, in application order; `max_p95_latency_increase_pct`
    None lets latency rise as it will."""
    return CascadeReport(
        recommendations=[
            recommend_application(a, max_quality_drop=max_quality_drop, alpha=alpha, min_pairs=min_pairs,
                                  max_p95_latency_increase_pct=max_p95_latency_increase_pct)
            for a in sorted(applications, key=lambda a: a.application_id)
        ],
        max_quality_drop=max_quality_drop,
        alpha=alpha,
    )
