"""How the sandbox's platform serves a request: which model answers, at what cost, latency and
quality, under the Orchestrator's routing rule for its application.

Every call draws its randomness from a `CallNoise` made for all of a day's requests at once,
whatever the routing: changing the routing changes how requests are answered from the moment
it takes effect, and nothing about the requests before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from optimizer.sandbox.world import APPLICATIONS, DIFFICULTY_BY_COMPLEXITY
from optimizer.sandbox.worlds import Drift
from optimizer.schemas.routing import RoutingConfig, RoutingRule, complexity_score

PROMPT_LATENCY_MS = 0.015  # per prompt token, on every model


@dataclass(frozen=True)
class CallNoise:
    """One model call's randomness per request (drawn in this order, as the generator always has)."""

    completion: np.ndarray  # lognormal factor on the completion length
    fail: np.ndarray  # uniform: fails when below the model's error rate
    latency: np.ndarray  # lognormal factor on the latency
    fail_latency: np.ndarray  # latency of a failed call
    quality: np.ndarray  # normal noise on the quality score
    confidence: np.ndarray  # normal noise on the model's confidence

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int) -> CallNoise:
        return cls(rng.lognormal(0, 0.45, n), rng.random(n), rng.lognormal(0, 0.22, n),
                   rng.uniform(80, 30_000, n), rng.normal(0, 0.05, n), rng.normal(0, 0.7, n))

    def take(self, rows: np.ndarray) -> CallNoise:
        return CallNoise(*(getattr(self, name)[rows] for name in self.__dataclass_fields__))


@dataclass(frozen=True)
class Outcome:
    completion_tokens: np.ndarray
    failed: np.ndarray
    latency_ms: np.ndarray
    cost_usd: np.ndarray
    quality: np.ndarray
    confidence: np.ndarray


@dataclass(frozen=True)
class ModelTable:
    """The world's models as arrays indexed by model number: behaviour and list prices."""

    skill: np.ndarray
    error_rate: np.ndarray
    first_token_ms: np.ndarray
    ms_per_token: np.ndarray
    verbosity: np.ndarray
    price_in: np.ndarray
    price_out: np.ndarray


def request_features(
    application: np.ndarray, complexity: np.ndarray, difficulty_noise: np.ndarray, prompt_noise: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latent difficulty, prompt tokens, median completion tokens) of requests of these
    applications (by number) and complexities, from their noise (normal, lognormal)."""
    apps = APPLICATIONS
    difficulty = (np.array(DIFFICULTY_BY_COMPLEXITY)[complexity] + np.array([a.difficulty_shift for a in apps])[application]
                  + difficulty_noise)
    prompt_median = np.array([a.prompt_tokens_median for a in apps])[application]
    prompt_tokens = np.maximum(8, np.round(prompt_median * (0.7 + 0.3 * complexity) * prompt_noise)).astype(np.int64)
    completion_median = np.array([a.completion_tokens_median for a in apps])[application] * (0.8 + 0.2 * complexity)
    return difficulty, prompt_tokens, completion_median


@dataclass(frozen=True)
class Requests:
    """What a request is, whoever answers it: per row, in the day's order."""

    difficulty: np.ndarray
    prompt_tokens: np.ndarray
    completion_median: np.ndarray
    latency_factor: np.ndarray
    error_factor: np.ndarray
    # The world's drift: per row and model, added to the model's skill where quality is
    # concerned but not its confidence (a model confidently wrong on a new kind of request).
    quality_shift: np.ndarray
    compression_loss: np.ndarray  # per row: quality lost on top when its prompt is compressed
    complexity: np.ndarray | None = None  # per row: level index (simple, moderate, complex)

    def take(self, rows: np.ndarray) -> Requests:
        taken: list[Any] = [None if value is None else value[rows]
                            for value in (getattr(self, name) for name in self.__dataclass_fields__)]
        return Requests(*taken)


def call(table: ModelTable, model: np.ndarray, requests: Requests, noise: CallNoise) -> Outcome:
    """Each row answered by `model` (a model number per row)."""
    completion = np.maximum(
        1, np.round(requests.completion_median * table.verbosity[model] * noise.completion)
    ).astype(np.int64)
    failed = noise.fail < table.error_rate[model] * requests.error_factor
    completion = np.where(failed, 0, completion)
    latency = (table.first_token_ms[model] + table.ms_per_token[model] * completion
               + PROMPT_LATENCY_MS * requests.prompt_tokens) * noise.latency * requests.latency_factor
    latency = np.where(failed, noise.fail_latency, latency)
    cost = np.where(failed, 0.0,
                    (requests.prompt_tokens * table.price_in[model] + completion * table.price_out[model]) / 1000.0)
    margin = table.skill[model] - requests.difficulty
    drifted = margin + requests.quality_shift[np.arange(len(model)), model]
    quality = np.clip(0.25 + 0.75 / (1 + np.exp(-1.3 * drifted)) + noise.quality, 0, 1)
    confidence = np.clip(1 / (1 + np.exp(-(1.6 * margin + noise.confidence))), 0, 1)
    return Outcome(completion, failed, latency, cost, quality, confidence)


def compression_ratio(noise: np.ndarray, target: float = 0.5) -> np.ndarray:
    """Share of the prompt left after compression, around `target`."""
    return np.clip(target + 0.06 * noise, 0.3, 0.8)


def compressed_quality(quality: np.ndarray, original_prompt_tokens: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Compression loses little on long prompts and a lot on short ones (and `loss` more where
    the world drifted)."""
    kept: np.ndarray = np.clip(quality - 0.004 - 0.08 * np.exp(-original_prompt_tokens / 350.0) - loss, 0, 1)
    return kept


@dataclass(frozen=True)
class Plan:
    """How a routing rule answers its application's requests, as far as the sandbox models it."""

    model: str  # a single model, or a cascade's primary
    fallback: str | None = None  # a cascade's fallback
    threshold: float | None = None  # the cascade escalates below this confidence
    compression_floor: int | None = None  # compress prompts of at least this many tokens
    # What the Orchestrator tags the requests it routes by this rule with (its optimization
    # hints): the optimization, and an experiment's id and variant.
    optimization_id: str | None = None
    experiment_id: str | None = None
    variant_id: str | None = None
    # A cascade sends requests whose complexity score is above this straight to the fallback.
    complexity_threshold: float | None = None

    @classmethod
    def of(cls, rule: RoutingRule) -> Plan | None:
        """None for a rule that names no model the sandbox can serve."""
        selection = rule.target_selection
        hints: dict[str, Any] = rule.optimization_hints.model_dump() if rule.optimization_hints else {}
        floor = int(hints.get("compression_min_prompt_tokens") or 0) if hints.get("enable_prompt_compression") else None
        tags = (hints.get("optimization_id"), hints.get("experiment_id"), hints.get("variant_id"))
        cascade = selection.cascade_config
        if cascade is not None and cascade.fallback_models:
            return cls(cascade.primary_model, cascade.fallback_models[0],
                       cascade.escalation_threshold.confidence_score or 0.0, floor, *tags,
                       complexity_threshold=cascade.escalation_threshold.complexity_score)
        if selection.preferred_models:
            return cls(selection.preferred_models[0], None, None, floor, *tags)
        return None

    def serves_like(self, model: str) -> bool:
        """Whether requests are answered as `model` alone answers them (tags aside)."""
        return (self.model, self.fallback, self.compression_floor) == (model, None, None)

    def models(self) -> list[str]:
        return [self.model, *([self.fallback] if self.fallback else [])]


@dataclass
class Served:
    """The columns serving writes, for the rows it served (in the order of `rows`)."""

    model: np.ndarray
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    failed: np.ndarray
    latency_ms: np.ndarray
    cost_usd: np.ndarray
    quality: np.ndarray
    confidence: np.ndarray
    escalated: np.ndarray  # object: True/False for cascade rows, None otherwise
    compression_technique: np.ndarray  # object
    original_prompt_tokens: np.ndarray  # -1 when not compressed


def answer_alone(
    model: str, compression_floor: int | None, index: dict[str, int], table: ModelTable, requests: Requests,
    noise: CallNoise, ratio_noise: np.ndarray,
) -> Served:
    """Every row answered by `model` alone, compressed first when its prompt is long enough."""
    n = len(requests.difficulty)
    original = requests.prompt_tokens
    compressed = np.zeros(n, dtype=bool) if compression_floor is None else original >= compression_floor
    prompt = np.where(compressed, np.maximum(4, np.round(original * compression_ratio(ratio_noise))), original)
    prompt = prompt.astype(np.int64)
    asked = Requests(requests.difficulty, prompt, requests.completion_median, requests.latency_factor,
                     requests.error_factor, requests.quality_shift, requests.compression_loss, requests.complexity)
    answer = call(table, np.full(n, index[model]), asked, noise)
    quality = np.where(compressed, compressed_quality(answer.quality, original, requests.compression_loss),
                       answer.quality)
    technique = np.full(n, None, dtype=object)
    technique[compressed] = "llmlingua"
    return Served(np.full(n, index[model]), prompt, answer.completion_tokens, answer.failed, answer.latency_ms,
                  answer.cost_usd, quality, answer.confidence, np.full(n, None, dtype=object), technique,
                  np.where(compressed, original, -1).astype(np.int64))


def too_complex(plan: Plan, requests: Requests) -> np.ndarray:
    """The rows a cascade sends straight to its fallback: complexity above its threshold."""
    if plan.complexity_threshold is None or requests.complexity is None:
        return np.zeros(len(requests.difficulty), dtype=bool)
    scores = np.array([complexity_score(level) for level in range(3)])
    direct: np.ndarray = scores[requests.complexity] > plan.complexity_threshold
    return direct


def cascade(primary: Served, fallback: Served, threshold: float, direct: np.ndarray) -> Served:
    """The primary's answers, and the fallback's below the confidence threshold or on failure
    (paying for both calls and waiting for both), or for the `direct` rows (the fallback alone)."""
    up = (primary.confidence < threshold) | primary.failed | direct

    def pick(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
        picked: np.ndarray = np.where(up, theirs, mine)
        return picked

    def both(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
        added: np.ndarray = np.where(direct, theirs, np.where(up, mine + theirs, mine))
        return added

    return Served(pick(primary.model, fallback.model), primary.prompt_tokens,
                  pick(primary.completion_tokens, fallback.completion_tokens), pick(primary.failed, fallback.failed),
                  both(primary.latency_ms, fallback.latency_ms), both(primary.cost_usd, fallback.cost_usd),
                  pick(primary.quality, fallback.quality), primary.confidence, up.astype(object),
                  primary.compression_technique, primary.original_prompt_tokens)


def serve(
    plan: Plan, index: dict[str, int], table: ModelTable, requests: Requests,
    first: CallNoise, second: CallNoise, ratio_noise: np.ndarray,
) -> Served:
    """Every row answered under `plan`: compressed first (when its prompt is long enough), then
    by the model, or by a cascade (see `cascade`; a request too complex for the cascade's
    complexity threshold goes to the fallback alone)."""
    primary = answer_alone(plan.model, plan.compression_floor, index, table, requests, first, ratio_noise)
    if plan.fallback is None or plan.threshold is None:
        return primary
    backup = answer_alone(plan.fallback, plan.compression_floor, index, table, requests, second, ratio_noise)
    return cascade(primary, backup, plan.threshold, too_complex(plan, requests))


def rules_for(config: RoutingConfig, application_id: str) -> tuple[RoutingRule | None, list[RoutingRule]]:
    """The application's own rule (the first by priority) and the rules splitting a share of
    its traffic off (`conditions.traffic_percentage`: a canary or an experiment)."""
    mine = sorted((r for r in config.routing_rules if r.conditions.get("application_id") == application_id),
                  key=lambda r: r.priority)
    base = next((r for r in mine if "traffic_percentage" not in r.conditions), None)
    return base, [r for r in mine if "traffic_percentage" in r.conditions]


def segments(timeline: Sequence[tuple[int, RoutingConfig]], start_ns: int, end_ns: int
             ) -> list[tuple[int, int, RoutingConfig]]:
    """The configurations in force over [start_ns, end_ns), each with the span it covers."""
    spans = []
    for position, (effective, config) in enumerate(timeline):
        until = timeline[position + 1][0] if position + 1 < len(timeline) else end_ns
        lo, hi = max(effective, start_ns), min(until, end_ns)
        if lo < hi:
            spans.append((lo, hi, config))
    return spans


@dataclass(frozen=True)
class RoutingNoise:
    """A day's randomness for routed calls: a first call, a fallback call, compression, and
    which split a request falls in. Drawn for every request, whatever the routing."""

    first: CallNoise
    second: CallNoise
    ratio: np.ndarray
    split: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int) -> RoutingNoise:
        return cls(CallNoise.draw(rng, n), CallNoise.draw(rng, n), rng.normal(0, 1, n), rng.random(n))


def route(
    timeline: Sequence[tuple[int, RoutingConfig]], ts_ns: np.ndarray, application: np.ndarray,
    routable: np.ndarray, baselines: Sequence[tuple[str, str]], index: dict[str, int], table: ModelTable,
    requests: Requests, noise: RoutingNoise, columns: dict[str, np.ndarray],
) -> None:
    """Serve the routable rows by the rules in force at their time, in place in `columns`
    (the day's arrays by record column, models as numbers). `baselines` names each
    application (by its number) and the model that serves it when nothing else is set."""
    if not len(ts_ns):
        return
    for lo, hi, config in segments(timeline, int(ts_ns[0]), int(ts_ns[-1]) + 1):
        in_span = routable & (ts_ns >= lo) & (ts_ns < hi)
        for number, (application_id, model) in enumerate(baselines):
            rows = in_span & (application == number)
            if not rows.any():
                continue
            base, splits = rules_for(config, application_id)
            choice = np.full(len(ts_ns), -1)
            floor = 0.0
            for position, rule in enumerate(splits):
                share = float(rule.conditions.get("traffic_percentage", 0)) / 100
                choice[rows & (noise.split >= floor) & (noise.split < floor + share)] = position
                floor += share
            plans = [(Plan.of(base) if base else None, rows & (choice == -1))]
            plans += [(Plan.of(rule), rows & (choice == position)) for position, rule in enumerate(splits)]
            for plan, chosen in plans:
                if plan is None or not chosen.any() or any(m not in index for m in plan.models()):
                    continue
                picked = np.flatnonzero(chosen)
                if not plan.serves_like(model):
                    served = serve(plan, index, table, requests.take(picked), noise.first.take(picked),
                                   noise.second.take(picked), noise.ratio[picked])
                    for name, values in vars(served).items():
                        columns[name][picked] = values
                for name in ("optimization_id", "experiment_id", "variant_id"):
                    if getattr(plan, name) is not None:
                        columns[name][picked] = getattr(plan, name)


def _drifted(drift: Drift, anchor: date, ts_ns: np.ndarray, application: np.ndarray) -> np.ndarray:
    """The rows a drift applies to: its application's, from its day on."""
    day = anchor + timedelta(days=drift.days_after_anchor)
    start_ns = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000
    rows: np.ndarray = application == [a.application_id for a in APPLICATIONS].index(drift.application_id)
    return rows & (ts_ns >= start_ns)


def quality_shift(drifts: Sequence[Drift], anchor: date, model_index: dict[str, int], ts_ns: np.ndarray,
                  application: np.ndarray) -> np.ndarray:
    """The world's drift per request and model (see `Drift`): zero where none applies."""
    shift = np.zeros((len(ts_ns), len(model_index)))
    for drift in drifts:
        if drift.model in model_index:
            shift[_drifted(drift, anchor, ts_ns, application), model_index[drift.model]] += drift.quality_shift
    return shift


def compression_loss(drifts: Sequence[Drift], anchor: date, ts_ns: np.ndarray, application: np.ndarray) -> np.ndarray:
    """The extra quality compression loses per request where the world drifted (see `Drift`)."""
    loss = np.zeros(len(ts_ns))
    for drift in drifts:
        if drift.compression_loss:
            loss[_drifted(drift, anchor, ts_ns, application)] += drift.compression_loss
    return loss
