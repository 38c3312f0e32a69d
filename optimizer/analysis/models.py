"""Which model to use: candidates ranked on cost, latency and quality measured on real traffic.

A benchmark score says how a model does on someone else's questions; the warehouse says how
it does on this organisation's. So a candidate with enough traffic in the scope asked about
(applications, task type) is ranked on its measured figures. One without is ranked on the
Registry's: its list price at the scope's average tokens, its catalog p95, and a quality
derived from its benchmark, anchored on a measured model (the benchmark's difference between
the two, added to the anchor's measured quality), so both kinds share one scale. Each ranked
model says which it was.

Quality is compared only within the scope: a cheap model measured on easy traffic elsewhere
would look as good as an expensive one measured on hard traffic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from optimizer.schemas.selection import (
    ExcludedModel,
    ModelRanking,
    OptimizeFor,
    RankedModel,
    TrafficCell,
)

# Latencies are kept as counts per bucket [r^k, r^(k+1)) ms, r = 1.05, so the p95 of any
# union of cells is known to within 2.5% without the rows.
LATENCY_BUCKET_RATIO = 1.05
# Fewer requests than this in scope, and a model's figures are the Registry's.
MIN_MEASURED_REQUESTS = 200
# How much the preferred figure weighs in the score; the other two share the rest.
PREFERRED_WEIGHT = 0.6


@dataclass(frozen=True)
class MeasuredModel:
    model_id: str
    requests: int
    cost_per_request_usd: float
    p95_latency_ms: float | None
    quality: float | None
    error_rate: float


@dataclass(frozen=True)
class ListedModel:
    """A Registry search match: what the Registry says of a model."""

    model_id: str
    benchmark_quality: float | None
    p95_latency_ms: float | None
    cost_per_request_usd: float | None  # at the scope's average tokens when known


@dataclass(frozen=True)
class SelectionCriteria:
    optimize_for: OptimizeFor = "cost"
    max_cost_per_request_usd: float | None = None
    max_latency_p95_ms: float | None = None
    min_quality: float | None = None
    anchor_model: str | None = None  # the model benchmark-derived quality is anchored on
    min_requests: int = MIN_MEASURED_REQUESTS


@dataclass(frozen=True)
class Scope:
    """The traffic asked about, summed over models."""

    requests: int
    prompt_tokens: float | None  # averages per request
    completion_tokens: float | None


def bucket_p95(buckets: Mapping[int, int]) -> float | None:
    """The p95 latency of bucketed counts: the geometric middle of the bucket it falls in."""
    total = sum(buckets.values())
    if total == 0:
        return None
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= 0.95 * total:
            return float(LATENCY_BUCKET_RATIO ** (bucket + 0.5))
    raise AssertionError("unreachable")


def _in_scope(cells: Iterable[TrafficCell], applications: Sequence[str], task_type: str | None) -> list[TrafficCell]:
    return [c for c in cells if (not applications or c.application_id in applications)
            and (task_type is None or c.task_type == task_type)]


def scope_of(cells: Iterable[TrafficCell], applications: Sequence[str] = (), task_type: str | None = None) -> Scope:
    chosen = _in_scope(cells, applications, task_type)
    n = sum(c.requests for c in chosen)
    if n == 0:
        return Scope(0, None, None)
    return Scope(n, sum(c.prompt_tokens_sum for c in chosen) / n, sum(c.completion_tokens_sum for c in chosen) / n)


def measure(
    cells: Iterable[TrafficCell], applications: Sequence[str] = (), task_type: str | None = None
) -> dict[str, MeasuredModel]:
    """Each model's figures over the cells of the scope (every application if none given)."""
    grouped: dict[str, list[TrafficCell]] = {}
    for cell in _in_scope(cells, applications, task_type):
        grouped.setdefault(cell.model_id, []).append(cell)
    measured = {}
    for model, group in grouped.items():
        n = sum(c.requests for c in group)
        scored = sum(c.scored for c in group)
        buckets: dict[int, int] = {}
        for cell in group:
            for bucket, count in cell.latency_buckets:
                buckets[bucket] = buckets.get(bucket, 0) + count
        measured[model] = MeasuredModel(
            model_id=model, requests=n, cost_per_request_usd=sum(c.cost_usd_sum for c in group) / n,
            p95_latency_ms=bucket_p95(buckets), quality=sum(c.quality_sum for c in group) / scored if scored else None,
            error_rate=sum(c.errors for c in group) / n,
        )
    return measured


@dataclass(frozen=True)
class _Figures:
    model_id: str
    cost: float | None
    p95: float | None
    quality: float | None
    measured: MeasuredModel | None
    note: str


def _anchor(measured: Mapping[str, MeasuredModel], listed: Mapping[str, ListedModel],
            criteria: SelectionCriteria) -> MeasuredModel | None:
    """The measured model unmeasured models' quality is placed against: the one asked for,
    else the most used one with a benchmark."""
    usable = {m: f for m, f in measured.items() if f.requests >= criteria.min_requests and f.quality is not None
              and m in listed and listed[m].benchmark_quality is not None}
    if criteria.anchor_model in usable:
        return usable[criteria.anchor_model]
    return max(usable.values(), key=lambda f: (f.requests, f.model_id), default=None)


def _figures(model: ListedModel, measured: MeasuredModel | None, anchor: MeasuredModel | None,
             anchor_benchmark: float | None, criteria: SelectionCriteria) -> _Figures:
    if measured is not None and measured.requests >= criteria.min_requests:
        return _Figures(model.model_id, measured.cost_per_request_usd, measured.p95_latency_ms, measured.quality,
                        measured, f"measured on {measured.requests:,} requests")
    seen = f"{measured.requests} requests in scope, too few" if measured else "no traffic in scope"
    benchmark = model.benchmark_quality
    if benchmark is None:
        quality, how = None, "no benchmark"
    elif anchor is not None and anchor.quality is not None and anchor_benchmark is not None:
        quality = min(max(anchor.quality + benchmark - anchor_benchmark, 0.0), 1.0)
        how = (f"quality from its benchmark {benchmark:.3f} against {anchor.model_id}'s {anchor_benchmark:.3f}, "
               f"applied to {anchor.model_id}'s measured {anchor.quality:.3f}")
    else:
        quality, how = benchmark, f"quality is its benchmark {benchmark:.3f}"
    return _Figures(model.model_id, model.cost_per_request_usd, model.p95_latency_ms, quality, None,
                    f"{seen}: Registry price and p95, {how}")


def _relative_to_best(values: Mapping[str, float | None]) -> dict[str, float]:
    """For a cost or a latency: the best (lowest) over each value, so twice the cost scores half;
    0 for an unknown figure."""
    known = [v for v in values.values() if v is not None and not math.isnan(v)]
    best = min(known, default=0.0)
    return {model: 0.0 if value is None or math.isnan(value) else 1.0 if value <= best else best / value
            for model, value in values.items()}


def _between_worst_and_best(values: Mapping[str, float | None]) -> dict[str, float]:
    """For quality, where differences count in points, not ratios: 1 for the best, 0 for the
    worst (and for an unknown figure)."""
    known = [v for v in values.values() if v is not None and not math.isnan(v)]
    if not known:
        return dict.fromkeys(values, 0.0)
    low, high = min(known), max(known)
    return {model: 0.0 if value is None or math.isnan(value) else 1.0 if high == low else (value - low) / (high - low)
            for model, value in values.items()}


def _breach(f: _Figures, criteria: SelectionCriteria) -> str | None:
    if criteria.max_cost_per_request_usd is not None and f.cost is not None \
            and f.cost > criteria.max_cost_per_request_usd:
        return f"costs ${f.cost:.5f} a request, above ${criteria.max_cost_per_request_usd:.5f} ({f.note})"
    if criteria.max_latency_p95_ms is not None and (f.p95 is None or f.p95 > criteria.max_latency_p95_ms):
        shown = f"{f.p95:.0f} ms" if f.p95 is not None else "unknown"
        return f"p95 {shown}, above {criteria.max_latency_p95_ms:.0f} ms ({f.note})"
    if criteria.min_quality is not None and (f.quality is None or f.quality < criteria.min_quality):
        shown = f"{f.quality:.3f}" if f.quality is not None else "unknown"
        return f"quality {shown}, below {criteria.min_quality:.3f} ({f.note})"
    return None


def rank(listed: Sequence[ListedModel], measured: Mapping[str, MeasuredModel],
         criteria: SelectionCriteria) -> ModelRanking:
    """The Registry's matches ranked best first; those breaking a constraint on the figures
    they are judged by are excluded, with the reason."""
    by_id = {m.model_id: m for m in listed}
    anchor = _anchor(measured, by_id, criteria)
    anchor_benchmark = by_id[anchor.model_id].benchmark_quality if anchor else None
    figures, excluded = [], []
    for model in listed:
        f = _figures(model, measured.get(model.model_id), anchor, anchor_benchmark, criteria)
        if (reason := _breach(f, criteria)) is not None:
            excluded.append(ExcludedModel(model_id=model.model_id, reason=reason))
        else:
            figures.append(f)
    normalised = {
        "cost": _relative_to_best({f.model_id: f.cost for f in figures}),
        "latency": _relative_to_best({f.model_id: f.p95 for f in figures}),
        "quality": _between_worst_and_best({f.model_id: f.quality for f in figures}),
    }
    other_weight = (1 - PREFERRED_WEIGHT) / 2
    ranked = []
    for f in figures:
        score = sum((PREFERRED_WEIGHT if name == criteria.optimize_for else other_weight) * values[f.model_id]
                    for name, values in normalised.items())
        ranked.append(RankedModel(
            model_id=f.model_id, score=round(score, 4), cost_per_request_usd=f.cost, latency_p95_ms=f.p95,
            quality_score=f.quality, source="warehouse" if f.measured else "registry",
            requests=f.measured.requests if f.measured else 0, rationale=_rationale(f),
        ))
    ranked.sort(key=lambda r: (-r.score, r.model_id))
    return ModelRanking(ranked=ranked, excluded=excluded)


def _rationale(f: _Figures) -> str:
    cost = f"${f.cost:.5f} a request" if f.cost is not None else "cost unknown"
    p95 = f"p95 {f.p95:.0f} ms" if f.p95 is not None else "p95 unknown"
    quality = f"quality {f.quality:.3f}" if f.quality is not None else "quality unknown"
    return f"{cost}, {p95}, {quality} ({f.note})"
