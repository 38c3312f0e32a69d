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

Latency is a constraint with its own test: an escalated request waits for both models. The
mean latency change per request, L(t), is paired too and only grows with t (escalating a pair
adds its fallback's latency); its one-sided upper bound is tested against
`max_latency_increase_ms` from the fastest threshold up, stopping at the first failure, so the
latency promise holds at level alpha for every threshold certified, the chosen one included.
The pairs also give the 95th percentile of latency the cascade would have at every fifth grid
step, and a cascade whose p95 would rise by more than a percent budget (20% by default, below
the 30% a rollout's guardrail allows) is not recommended either. The cheapest threshold that
keeps quality is also the fastest that does (it escalates least), so latency only ever rules
a cascade out; it never moves the threshold.

Where the requests carry a complexity level, a cascade may also send the more complex levels
straight to the fallback (the spec's `complexity_threshold`). The promises then hold per level:
each level's pairs get their own two sequences (alpha split across levels and candidates), and
a cascade routing levels up to k takes the lowest threshold certified for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optimizer.analysis.cascade_pairs import (
    COMPLEXITY_LEVELS,
    DIRECT_BIN,
    FAILED_PRIMARY_BIN,
    GRID_STEPS,
    LATENCY_STEP,
    MIN_PAIRS,
    ApplicationPairs,
    CandidatePairs,
    PairBin,
    complexity_threshold,
)
from optimizer.analysis.statistics import SampleMean, mean_interval, mean_upper_bound
from optimizer.schemas.analysis import (
    MAX_LATENCY_INCREASE_MS,
    MAX_P95_LATENCY_INCREASE_PCT,
    CascadeCandidate,
    CascadeRecommendation,
    CascadeReport,
    FrontierPoint,
)

# The pairs' shapes are defined in cascade_pairs; importing them from here keeps working.
__all__ = ["FAILED_PRIMARY_BIN", "GRID_STEPS", "LATENCY_STEP", "MIN_PAIRS", "ApplicationPairs", "CandidatePairs",
           "PairBin", "recommend", "recommend_application"]

@dataclass(frozen=True)
class _Point:
    step: int
    answered: int  # pairs the primary answers at this threshold
    quality: SampleMean
    cost_reduction: float
    latency: SampleMean  # latency change per request, ms


def _running_sums(bins: Sequence[PairBin], steps: Sequence[int], kept: bool) -> list[tuple[float, ...]]:
    """At each of `steps` (in order), the sums over the bins kept there (bin >= step) or
    escalated (bin < step), added up bin by bin as the steps pass them: one pass over the
    bins instead of one per step. Per sum: n answered, quality difference and its squares,
    fallback cost, fallback latency, latency change squares."""
    ordered = sorted(bins, key=lambda b: b.bin, reverse=kept)
    totals = [0.0] * 6
    found, i = [], 0
    for step in steps:
        while i < len(ordered) and (ordered[i].bin >= step if kept else ordered[i].bin < step):
            b = ordered[i]
            for k, value in enumerate((b.n if b.bin != DIRECT_BIN else 0, b.quality_diff_sum, b.quality_diff_squares,
                                       b.fallback_cost_sum, b.fallback_latency_sum,
                                       b.kept_latency_squares if kept else b.escalated_latency_squares)):
                totals[k] += value
            i += 1
        found.append(tuple(totals))
    return found


def _points(pairs: CandidatePairs) -> list[_Point]:
    """The cascade at every grid threshold, most cautious first."""
    n = pairs.n_pairs
    fallback_cost = sum(b.fallback_cost_sum for b in pairs.bins)
    primary_cost = sum(b.primary_cost_sum for b in pairs.bins)
    fallback_latency = sum(b.fallback_latency_sum for b in pairs.bins)
    primary_latency = sum(b.primary_latency_sum for b in pairs.bins)
    steps = range(GRID_STEPS, -1, -1)
    points = []
    for step, kept, escalated in zip(steps, _running_sums(pairs.bins, steps, kept=True),
                                     reversed(_running_sums(pairs.bins, steps[::-1], kept=False)), strict=True):
        answered, quality, quality_squares, _, _, kept_squares = kept
        _, _, _, escalated_cost, escalated_latency, escalated_squares = escalated
        cost = primary_cost + escalated_cost
        latency = primary_latency + escalated_latency
        # A kept pair changes latency by primary - fallback, an escalated one by primary.
        points.append(
            _Point(
                step=step,
                answered=int(answered),
                quality=SampleMean.from_sums(n, quality, quality_squares),
                cost_reduction=1 - cost / fallback_cost if fallback_cost else 0.0,
                latency=SampleMean.from_sums(n, latency - fallback_latency, kept_squares + escalated_squares),
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
        latency_change_ms=point.latency.mean,
    )


def _fastest_failing_step(points: Sequence[_Point], limit: float | None, alpha: float) -> int | None:
    """Fixed-sequence test of the latency limit from the fastest threshold up: the first step
    whose upper bound exceeds it (every step below is certified); None when none does."""
    if limit is None:
        return None
    for point in sorted(points, key=lambda p: p.step):
        if mean_upper_bound(point.latency, alpha) > limit:
            return point.step
    return None


@dataclass(frozen=True)
class _Verdict:
    candidate: CascadeCandidate
    chosen: _Point | None
    shown: _Point | None
    frontier: list[FrontierPoint]


@dataclass(frozen=True)
class _Limits:
    max_quality_drop: float
    alpha: float
    min_pairs: int
    max_p95_increase_pct: float | None
    max_latency_increase_ms: float | None


def _routing_text(pairs: CandidatePairs) -> str:
    if pairs.highest_routed_level is None:
        return ""
    routed = COMPLEXITY_LEVELS[: pairs.highest_routed_level + 1]
    if pairs.highest_routed_level == len(COMPLEXITY_LEVELS) - 1:
        return "every complexity level goes to it first; "
    return (f"only {'/'.join(routed)} requests go to it first (complexity_threshold "
            f"{complexity_threshold(pairs.highest_routed_level):.2f}), the rest straight to the fallback; ")


def _candidate(pairs: CandidatePairs, point: _Point | None, decision: str, reason: str,
               alpha: float) -> CascadeCandidate:
    level = pairs.highest_routed_level if decision != "insufficient_data" else None
    common = {
        "primary_model": pairs.primary_model, "n_pairs": pairs.n_pairs, "decision": decision, "reason": reason,
        "complexity_threshold": complexity_threshold(level) if level is not None else None,
        "complexity_levels": list(COMPLEXITY_LEVELS[: level + 1]) if level is not None else None,
    }
    if point is None:
        return CascadeCandidate(confidence_threshold=None, cost_reduction_pct=None, quality_change=None,
                                quality_change_ci=None, **common)
    return CascadeCandidate(
        confidence_threshold=point.step / GRID_STEPS, cost_reduction_pct=100 * point.cost_reduction,
        quality_change=point.quality.mean, quality_change_ci=mean_interval(point.quality, alpha),
        p95_latency_change_pct=pairs.p95_latency_increase_pct(point.step),
        latency_impact_ms=point.latency.mean, latency_impact_ms_ci=mean_interval(point.latency, alpha),
        latency_increase_bound_ms=mean_upper_bound(point.latency, alpha), **common,
    )


@dataclass(frozen=True)
class _LevelTests:
    """One complexity level's own fixed-sequence tests (level None: every request)."""

    level: int | None
    points: dict[int, _Point]  # by grid step
    lowest_certified: int | None  # quality holds from this step up (None: not even at 1.00)
    first_failure: _Point | None  # where the quality sequence stopped
    slowest_certified: int  # latency holds up to this step (-1: at none)


def _level_tests(pairs: CandidatePairs, level: int | None, limits: _Limits, alpha: float) -> _LevelTests:
    points = _points(pairs.of_level(level))
    lowest: int | None = None
    failure: _Point | None = None
    for point in points:  # fixed sequence: most cautious first, stop at the first failure
        if mean_interval(point.quality, alpha)[0] >= -limits.max_quality_drop:
            lowest = point.step
        else:
            failure = point
            break
    slow_from = _fastest_failing_step(points, limits.max_latency_increase_ms, alpha)
    return _LevelTests(level, {p.step: p for p in points}, lowest, failure,
                       GRID_STEPS if slow_from is None else slow_from - 1)


def _level_name(level: int | None) -> str:
    return "" if level is None else f"{COMPLEXITY_LEVELS[level]} "


def _evaluate(pairs: CandidatePairs, tests: dict[int | None, _LevelTests], limits: _Limits,
              alpha: float) -> _Verdict:
    """The cheapest threshold certified for every level the cascade routes to its primary
    (quality from the cautious end, latency from the fast end), then cost and the p95 budget."""
    n = pairs.n_pairs
    model = pairs.primary_model
    if n < limits.min_pairs:
        reason = f"{n} shadow pairs with {model}; at least {limits.min_pairs} are needed"
        return _Verdict(_candidate(pairs, None, "insufficient_data", reason, alpha), None, None, [])
    points = _points(pairs)
    by_step = {p.step: p for p in points}
    frontier = [_frontier_point(p, n, alpha) for p in points]
    routed = [tests[level] for level in (pairs.routed or (None,))]
    certified = [t.lowest_certified for t in routed]
    step = None if None in certified else max(c for c in certified if c is not None)
    chosen = by_step[step] if step is not None and by_step[step].answered else None
    routing = _routing_text(pairs)
    if chosen is None:
        binding = max(routed, key=lambda t: GRID_STEPS + 1 if t.lowest_certified is None else t.lowest_certified)
        failure = binding.first_failure
        shown = by_step[failure.step] if failure is not None else points[-1]
        low = mean_interval(failure.quality, alpha)[0] if failure is not None else mean_interval(shown.quality, alpha)[0]
        reason = (
            f"{routing}even escalating every {_level_name(binding.level)}request below confidence "
            f"{shown.step / GRID_STEPS:.2f}, {model} could lower {'their ' if binding.level is not None else ''}"
            f"quality by {-low:.4f}, beyond the {limits.max_quality_drop} margin"
        )
        return _Verdict(_candidate(pairs, shown, "reject", reason, alpha), None, shown, frontier)
    p95_increase = pairs.p95_latency_increase_pct(chosen.step)
    budget = limits.max_p95_increase_pct
    slow = next((t for t in routed if t.slowest_certified < chosen.step), None)
    keeps = f"{routing}{model} keeps quality when it escalates below confidence {chosen.step / GRID_STEPS:.2f}, but "
    if chosen.cost_reduction <= 0:
        reason = (
            f"{routing}{model} keeps quality only when it escalates so much that the cascade costs "
            f"{-100 * chosen.cost_reduction:.1f}% more than always using the current model"
        )
    elif p95_increase is not None and budget is not None and p95_increase > budget:
        reason = (f"{keeps}requests that escalate wait for both models: p95 latency would rise "
                  f"{p95_increase:.0f}%, beyond the {budget:g}% budget")
    elif slow is not None:
        own = slow.points[chosen.step].latency
        reason = (
            f"{keeps}requests that escalate wait for both models: the latency of {_level_name(slow.level)}requests "
            f"would rise {own.mean:+.0f} ms a request (upper bound {mean_upper_bound(own, alpha):+.0f} ms at "
            f"{1 - alpha:.1%} confidence), beyond the {limits.max_latency_increase_ms:g} ms limit "
            "(max_latency_increase_ms)"
        )
    else:
        low, high = mean_interval(chosen.quality, alpha)
        reason = (
            f"{model} answers {chosen.answered / n:.0%} of requests and the rest escalate below "
            f"confidence {chosen.step / GRID_STEPS:.2f}; {routing}cost falls {100 * chosen.cost_reduction:.1f}% and "
            f"quality changes by {chosen.quality.mean:+.4f} (CI {low:+.4f} to {high:+.4f}), within the "
            f"{limits.max_quality_drop} margin{' for every level routed' if pairs.routed else ''}; latency changes "
            f"by {chosen.latency.mean:+.0f} ms a request (at most {mean_upper_bound(chosen.latency, alpha):+.0f} ms), "
            f"on {n} shadow pairs"
        )
        return _Verdict(_candidate(pairs, chosen, "adopt", reason, alpha), chosen, chosen, frontier)
    return _Verdict(_candidate(pairs, chosen, "reject", reason, alpha), None, chosen, frontier)


def _no_candidate(application: ApplicationPairs) -> CascadeRecommendation:
    return CascadeRecommendation(
        application_id=application.application_id, decision="insufficient_data",
        primary_model=None, fallback_model=application.fallback_model, confidence_threshold=None,
        escalation_rate=None, cost_reduction_pct=None, quality_change=None, quality_change_ci=None,
        n_pairs=0, reason="no shadow pairs with a model cheaper than the current one",
    )


def _complexity_note(options: Sequence[CandidatePairs]) -> str:
    if any(o.highest_routed_level is not None for o in options):
        return ""
    return " (the requests carry no complexity level, so every request goes to the cheaper model first)"


def recommend_application(
    application: ApplicationPairs, *, max_quality_drop: float, alpha: float, min_pairs: int = MIN_PAIRS,
    max_p95_latency_increase_pct: float | None = MAX_P95_LATENCY_INCREASE_PCT,
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS,
) -> CascadeRecommendation:
    cheaper = [
        c for c in application.candidates
        if sum(b.primary_cost_sum for b in c.bins) < sum(b.fallback_cost_sum for b in c.bins)
    ]
    # One family of tests per candidate primary and complexity level (one per primary when the
    # requests carry no level): Bonferroni across them, so every certified claim holds at once.
    families = sum(len(c.levels() or [None]) for c in cheaper if c.n_pairs >= min_pairs)
    level = alpha / max(families, 1)
    limits = _Limits(max_quality_drop, alpha, min_pairs, max_p95_latency_increase_pct, max_latency_increase_ms)
    options = []
    for candidate in cheaper:
        levels: list[int | None] = [*candidate.levels()] or [None]
        tests = {k: _level_tests(candidate, k, limits, level) for k in levels}
        options += [(option, tests) for option in candidate.routing_options()]
    verdicts = [_evaluate(option, tests, limits, level) for option, tests in options]
    adopted = [v for v in verdicts if v.chosen is not None]
    widest = lambda v: (v.candidate.n_pairs, len(v.candidate.complexity_levels or ()))  # noqa: E731
    if adopted:
        best = max(adopted, key=lambda v: v.chosen.cost_reduction if v.chosen else 0.0)
    elif any(v.candidate.decision == "reject" for v in verdicts):
        best = max((v for v in verdicts if v.candidate.decision == "reject"), key=widest)
    elif verdicts:
        best = max(verdicts, key=widest)
    else:
        return _no_candidate(application)
    point, chosen = best.shown, best.candidate
    frontier_point = None
    if point is not None:
        frontier_point = next(f for f in best.frontier if f.confidence_threshold == point.step / GRID_STEPS)
    return CascadeRecommendation(
        application_id=application.application_id,
        decision=chosen.decision,
        primary_model=chosen.primary_model,
        fallback_model=application.fallback_model,
        confidence_threshold=chosen.confidence_threshold,
        escalation_rate=frontier_point.escalation_rate if frontier_point else None,
        cost_reduction_pct=chosen.cost_reduction_pct,
        quality_change=chosen.quality_change,
        quality_change_ci=chosen.quality_change_ci,
        n_pairs=chosen.n_pairs,
        reason=chosen.reason + _complexity_note([option for option, _ in options]),
        latency_change_ms=frontier_point.latency_change_ms if frontier_point else None,
        p95_latency_change_pct=chosen.p95_latency_change_pct,
        latency_impact_ms=chosen.latency_impact_ms,
        latency_impact_ms_ci=chosen.latency_impact_ms_ci,
        latency_increase_bound_ms=chosen.latency_increase_bound_ms,
        complexity_threshold=chosen.complexity_threshold,
        complexity_levels=chosen.complexity_levels,
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
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS,
) -> CascadeReport:
    """One recommendation per application, in application order; a latency limit of None lets
    latency rise as it will."""
    return CascadeReport(
        recommendations=[
            recommend_application(a, max_quality_drop=max_quality_drop, alpha=alpha, min_pairs=min_pairs,
                                  max_p95_latency_increase_pct=max_p95_latency_increase_pct,
                                  max_latency_increase_ms=max_latency_increase_ms)
            for a in sorted(applications, key=lambda a: a.application_id)
        ],
        max_quality_drop=max_quality_drop,
        alpha=alpha,
        max_latency_increase_ms=max_latency_increase_ms,
    )
