"""Simulated shadow-pair worlds with known truth, for the cascade analysis tests."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from optimizer.analysis.cascade import (
    FAILED_PRIMARY_BIN,
    GRID_STEPS,
    LATENCY_STEP,
    ApplicationPairs,
    CandidatePairs,
    PairBin,
)


@dataclass(frozen=True)
class World:
    primary_skill: float
    fallback_skill: float
    confidence_noise: float = 0.7
    primary_cost: float = 0.0002
    fallback_cost: float = 0.003
    primary_error_rate: float = 0.005
    primary_log_latency: float = 6.5  # median latency e^6.5 = 665 ms (the fallback's: 1.8 s)


FINE = World(primary_skill=2.1, fallback_skill=2.3)
HOPELESS = World(primary_skill=-1.0, fallback_skill=2.3, confidence_noise=3.0)
BORDERLINE = World(primary_skill=1.0, fallback_skill=2.3)


@dataclass(frozen=True)
class Pairs:
    confidence: np.ndarray
    primary_failed: np.ndarray
    quality_primary: np.ndarray
    quality_fallback: np.ndarray
    cost_primary: np.ndarray
    cost_fallback: np.ndarray
    latency_primary: np.ndarray
    latency_fallback: np.ndarray
    complexity: np.ndarray | None = None  # level index per pair (simple, moderate, complex)


def _quality(rng: np.random.Generator, margin: np.ndarray) -> np.ndarray:
    return np.clip(0.25 + 0.75 / (1 + np.exp(-1.3 * margin)) + rng.normal(0, 0.05, margin.shape), 0, 1)


def draw(world: World, n: int, rng: np.random.Generator) -> Pairs:
    difficulty = rng.normal(0.0, 1.0, n)
    confidence = 1 / (1 + np.exp(-(1.6 * (world.primary_skill - difficulty) + rng.normal(0, world.confidence_noise, n))))
    return Pairs(
        confidence=confidence,
        primary_failed=rng.random(n) < world.primary_error_rate,
        quality_primary=_quality(rng, world.primary_skill - difficulty),
        quality_fallback=_quality(rng, world.fallback_skill - difficulty),
        cost_primary=world.primary_cost * rng.lognormal(0, 0.3, n),
        cost_fallback=world.fallback_cost * rng.lognormal(0, 0.3, n),
        latency_primary=rng.lognormal(world.primary_log_latency, 0.3, n),
        latency_fallback=rng.lognormal(7.5, 0.3, n),
    )


# Mean difficulty of a request by complexity level, as the sandbox has it.
DIFFICULTY_BY_LEVEL = (-0.6, 0.6, 1.7)


def draw_with_complexity(world: World, n: int, rng: np.random.Generator,
                         mix: tuple[float, float, float]) -> Pairs:
    """Pairs whose requests carry a complexity level: harder levels are harder for both models,
    so the cheap model is less confident on them and escalates more."""
    level = rng.choice(3, size=n, p=mix)
    difficulty = np.array(DIFFICULTY_BY_LEVEL)[level] + rng.normal(0.0, 0.8, n)
    confidence = 1 / (1 + np.exp(-(1.6 * (world.primary_skill - difficulty) + rng.normal(0, world.confidence_noise, n))))
    pairs = draw(world, n, rng)
    return replace(pairs, confidence=confidence, complexity=level,
                   quality_primary=_quality(rng, world.primary_skill - difficulty),
                   quality_fallback=_quality(rng, world.fallback_skill - difficulty))


def bin_index(pairs: Pairs) -> np.ndarray:
    """Each pair's confidence bin, as the warehouse computes it in SQL."""
    bins: np.ndarray = np.where(
        pairs.primary_failed, FAILED_PRIMARY_BIN,
        np.minimum(np.floor(np.round(pairs.confidence * GRID_STEPS, 6)), GRID_STEPS),
    ).astype(int)
    return bins


def bins_of(pairs: Pairs) -> tuple[PairBin, ...]:
    """The binning the warehouse does in SQL, in numpy."""
    binned = bin_index(pairs)
    diff = np.where(pairs.primary_failed, 0.0, pairs.quality_primary - pairs.quality_fallback)
    levels = pairs.complexity if pairs.complexity is not None else np.full(len(binned), -1)
    found = []
    for value, level in sorted({(int(b), int(k)) for b, k in zip(binned, levels, strict=True)}):
        rows = (binned == value) & (levels == level)
        kept = pairs.latency_primary[rows] - pairs.latency_fallback[rows]
        found.append(PairBin(
            value, int(rows.sum()), float(diff[rows].sum()), float((diff[rows] ** 2).sum()),
            float(pairs.cost_primary[rows].sum()), float(pairs.cost_fallback[rows].sum()),
            float(pairs.latency_primary[rows].sum()), float(pairs.latency_fallback[rows].sum()),
            float((kept ** 2).sum()), float((pairs.latency_primary[rows] ** 2).sum()),
            None if level < 0 else level,
        ))
    return tuple(found)


def p95_latency_of(pairs: Pairs) -> tuple[tuple[tuple[int, float], ...], float]:
    """The p95 latency of the cascade at every LATENCY_STEP-th step and of the fallback alone, as
    the warehouse computes them: an escalated pair waits for both calls."""
    binned, both = bin_index(pairs), pairs.latency_primary + pairs.latency_fallback
    steps = tuple((step, float(np.quantile(np.where(binned >= step, pairs.latency_primary, both), 0.95)))
                  for step in range(0, GRID_STEPS + 1, LATENCY_STEP))
    return steps, float(np.quantile(pairs.latency_fallback, 0.95))


def routed_p95_latency_of(pairs: Pairs) -> tuple[tuple[int, int, float], ...]:
    """The cascade's p95 when only levels up to k go to the primary (the rest to the fallback alone)."""
    if pairs.complexity is None:
        return ()
    binned, both = bin_index(pairs), pairs.latency_primary + pairs.latency_fallback
    found = []
    for level in (0, 1):
        for step in range(0, GRID_STEPS + 1, LATENCY_STEP):
            latency = np.where(pairs.complexity > level, pairs.latency_fallback,
                               np.where(binned >= step, pairs.latency_primary, both))
            found.append((level, step, float(np.quantile(latency, 0.95))))
    return tuple(found)


def application(pairs: Pairs, app: str = "app", primary: str = "cheap", fallback: str = "big") -> ApplicationPairs:
    return ApplicationPairs(app, fallback, (CandidatePairs(primary, bins_of(pairs), *p95_latency_of(pairs),
                                                           routed_p95_latency_of(pairs)),))


def true_quality_change(world: World, rng: np.random.Generator, n: int = 400_000) -> np.ndarray:
    """Mean cascade-minus-fallback quality at every grid step, estimated on a huge fresh sample."""
    pairs = draw(world, n, rng)
    diff = np.where(pairs.primary_failed, 0.0, pairs.quality_primary - pairs.quality_fallback)
    binned = bin_index(pairs)
    return np.array([(diff * (binned >= step)).mean() for step in range(GRID_STEPS + 1)])
