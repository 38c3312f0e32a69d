"""Shadow pairs as the cascade analysis reads them: per confidence bin (and complexity level)
sums computed by the warehouse, and the cascades a candidate primary allows (all requests to
the primary first, or only the simpler complexity levels; see `optimizer.schemas.routing` for
the levels' scores).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from optimizer.schemas.routing import COMPLEXITY_LEVELS, complexity_threshold

GRID_STEPS = 100  # thresholds 0.00, 0.01, ..., 1.00
LATENCY_STEP = 5  # the p95 latency is known at every fifth grid step (0.00, 0.05, ...)
FAILED_PRIMARY_BIN = -1  # the primary model errored: such requests always escalate
DIRECT_BIN = GRID_STEPS + 1  # requests the cascade sends straight to the fallback (too complex)
MIN_PAIRS = 200
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
