"""Shadow pairs as the cascade analysis reads them: per confidence bin (and complexity level)
sums computed by the warehouse, and the cascades a candidate primary allows (all requests to
the primary first, or only the simpler complexity levels; see `optimizer.schemas.routing` for
the levels' scores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from optimizer.schemas.routing import COMPLEXITY_LEVELS, complexity_threshold

GRID_STEPS = 100  # thresholds 0.00, 0.01, ..., 1.00
LATENCY_STEP = 5  # the p95 latency is known at every fifth grid step (0.00, 0.05, ...)
FAILED_PRIMARY_BIN = -1  # the primary model errored: such requests always escalate
DIRECT_BIN = GRID_STEPS + 1  # requests the cascade sends straight to the fallback (too complex)
MIN_PAIRS = 200
TAIL = 0.95  # the latency percentile a cascade's budget holds
NO_LEVEL = len(COMPLEXITY_LEVELS)  # a pair whose request has no complexity level: above every cutoff
__all__ = ["COMPLEXITY_LEVELS", "complexity_threshold"]  # the levels' scores live with the routing schema


@dataclass(frozen=True)
class PairBin:
    """Shadow pairs whose primary confidence c has floor(100 c) == `bin` (and, when known,
    whose request has complexity level `complexity`)."""

    bin: int
    n: int
    quality_diff_sum: float  # sum of (q_primary - q_fallback)
    quality_diff_squares: float
    primary_cost_sum: float
    fallback_cost_sum: float
    primary_latency_sum: float
    fallback_latency_sum: float
    kept_latency_squares: float = 0.0  # sum of (latency_primary - latency_fallback)^2
    escalated_latency_squares: float = 0.0  # sum of latency_primary^2
    complexity: int | None = None  # index in COMPLEXITY_LEVELS; None when the request has none


@dataclass(frozen=True)
class CandidatePairs:
    primary_model: str
    bins: tuple[PairBin, ...]
    # (grid step, p95 latency of the cascade at that threshold) for every LATENCY_STEP-th step,
    # and the p95 latency of the fallback alone, over the same pairs; empty when unknown.
    p95_latency_ms: tuple[tuple[int, float], ...] = ()
    fallback_p95_latency_ms: float | None = None
    # (highest level routed to the primary, grid step, p95) for cascades routing only some levels.
    routed_p95_latency_ms: tuple[tuple[int, int, float], ...] = ()
    routed: tuple[int, ...] = ()  # the levels sent to the primary first; empty: every request

    @property
    def highest_routed_level(self) -> int | None:
        return max(self.routed) if self.routed else None

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

    def levels(self) -> list[int]:
        """The complexity levels of the pairs; empty unless every pair carries one."""
        if any(b.complexity is None for b in self.bins):
            return []
        return sorted({b.complexity for b in self.bins if b.complexity is not None})

    def of_level(self, level: int | None) -> CandidatePairs:
        """The pairs of one complexity level (None: all of them)."""
        if level is None:
            return self
        return replace(self, bins=tuple(b for b in self.bins if b.complexity == level), p95_latency_ms=(),
                       routed_p95_latency_ms=(), routed=(level,))

    def routing_options(self) -> list[CandidatePairs]:
        """The cascade routing every level to the primary and, when every pair carries a level,
        those routing only the simpler ones (the rest go straight to the fallback)."""
        levels = self.levels()
        if not levels:
            return [self]
        return [self._routing_up_to(levels[: i + 1], last=i == len(levels) - 1) for i in range(len(levels))]

    def _routing_up_to(self, routed: list[int], *, last: bool) -> CandidatePairs:
        level = routed[-1]
        bins = [b for b in self.bins if b.complexity is not None and b.complexity <= level]
        direct = [b for b in self.bins if b.complexity is not None and b.complexity > level]
        if direct:  # answered by the fallback alone: no quality, cost or latency change
            fallback_cost = sum(b.fallback_cost_sum for b in direct)
            fallback_latency = sum(b.fallback_latency_sum for b in direct)
            bins.append(PairBin(DIRECT_BIN, sum(b.n for b in direct), 0.0, 0.0, fallback_cost, fallback_cost,
                                fallback_latency, fallback_latency))
        p95 = self.p95_latency_ms if last else tuple((s, p) for k, s, p in self.routed_p95_latency_ms if k == level)
        return replace(self, bins=tuple(bins), p95_latency_ms=p95, routed=tuple(routed))


@dataclass(frozen=True)
class ApplicationPairs:
    application_id: str
    fallback_model: str | None  # the model that served most of its non-shadow requests
    candidates: tuple[CandidatePairs, ...]


def quantile_cont(values: np.ndarray, q: float, *, below: int = 0) -> float:
    """DuckDB's `quantile_cont` of `values` and `below` more values known to lie under the
    two order statistics it reads: those at floor and ceil of (n - 1) q, lo and hi,
    interpolated as lo (1 - d) + hi d with one rounding for the first product and the sum
    (a fused multiply-add, as DuckDB's build computes it): the same float, bit for bit."""
    position = (len(values) + below - 1) * q
    lo_rank, hi_rank = math.floor(position), math.ceil(position)
    ordered = np.partition(values, sorted({lo_rank - below, hi_rank - below}))
    lo, hi = float(ordered[lo_rank - below]), float(ordered[hi_rank - below])
    if lo_rank == hi_rank:
        return lo
    weight = position - lo_rank
    return float(Fraction(lo) * Fraction(1.0 - weight) + Fraction(hi * weight))


def latency_tails(bins: np.ndarray, levels: np.ndarray, primary: np.ndarray, fallback: np.ndarray,
                  ) -> tuple[float, list[list[tuple[int, float]]]]:
    """One candidate's pairs (primary bin, complexity level or NO_LEVEL, both latencies) as
    the fallback's p95 latency alone and, for each highest level routed to the primary (0, 1,
    and the last for every request, whatever its level), the cascade's p95 at every
    LATENCY_STEP-th threshold step.

    A routed request waits for the primary, and for the fallback too when its bin is below
    the threshold; the others wait for the fallback alone. A pair's wait only grows with the
    threshold, so the pairs that stay under the lowest threshold's lower order statistic at
    every threshold are counted, not sorted again for each (most of them: the tail is 5%).
    """
    steps = range(0, GRID_STEPS + 1, LATENCY_STEP)
    by_cutoff = []
    for cutoff in range(len(COMPLEXITY_LEVELS)):
        routed = levels <= cutoff if cutoff < len(COMPLEXITY_LEVELS) - 1 else np.ones(len(levels), dtype=bool)
        fastest = np.where(routed, primary, fallback)
        slowest = np.where(routed, primary + fallback, fallback)
        lo_rank = math.floor((len(fastest) - 1) * TAIL)
        tail = slowest >= np.partition(fastest, lo_rank)[lo_rank]
        below = len(fastest) - int(np.count_nonzero(tail))
        kept_when = np.where(routed[tail], bins[tail], FAILED_PRIMARY_BIN - 1)  # never kept when not routed
        kept, escalated = primary[tail], slowest[tail]
        by_cutoff.append([(step, quantile_cont(np.where(kept_when >= step, kept, escalated), TAIL, below=below))
                          for step in steps])
    return quantile_cont(fallback, TAIL), by_cutoff
