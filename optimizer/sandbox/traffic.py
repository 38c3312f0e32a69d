"""Seeded request traffic, generated one UTC day at a time and identical for a given seed.

Each request gets a latent difficulty; a model's quality and confidence on it follow from
its skill, so shadow pairs, cascades and compression trade cost against quality the way
real traffic does. Volume follows a daily curve (peak mid-afternoon UTC) and a weekly one
(weekends are quiet). A small share of records arrives late (up to five hours after the
request) and a configurable share is rendered malformed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from optimizer.sandbox.day_cache import shared_day
from optimizer.sandbox.prompts import prompt_hashes
from optimizer.sandbox.sampling import day_ids, day_start_ns, hourly_weights, pick_rows
from optimizer.sandbox.serving import (
    PROMPT_LATENCY_MS,
    CallNoise,
    ModelTable,
    Outcome,
    Requests,
    RoutingNoise,
    call,
    compressed_quality,
    compression_loss,
    quality_shift,
    request_features,
    route,
)
from optimizer.sandbox.world import (
    APPLICATIONS,
    COMPLEXITIES,
    ENVIRONMENT_SHARES,
    ENVIRONMENTS,
    EXPERIMENTS,
    MODEL_BEHAVIOUR,
    TASK_LABELS,
    Drift,
    ExperimentPlan,
    Incident,
    seeded_incidents,
)
from optimizer.schemas.registry import ModelProfile
from optimizer.schemas.routing import RoutingConfig

NS_PER_S = 1_000_000_000
NS_PER_HOUR = 3600 * NS_PER_S
ROUTING_STREAM = 7  # the random stream of routed calls, apart from the day's own
WEEKDAY_VOLUME = (1.0, 1.04, 1.06, 1.03, 0.95, 0.45, 0.38)  # Monday first
MALFORMED_KINDS = ("missing_model", "negative_tokens", "quality_out_of_range", "unknown_status", "non_numeric_cost",
                   "bad_timestamp", "missing_request_id", "non_numeric_latency")
LATE_SHARE = 0.03
MAX_LATE_S = 5 * 3600


class TrafficGenerator:
    """Produces the requests of any day as a DataFrame sorted by (ts, request_id)."""

    def __init__(
        self,
        *,
        seed: int,
        requests_per_day: int,
        catalog: dict[str, ModelProfile],
        anchor: date,
        malformed_rate: float = 0.002,
        cache_days: int = 64,
        drifts: Sequence[Drift] = (),
    ) -> None:
        self.seed = seed
        self.requests_per_day = requests_per_day
        self.anchor = anchor
        self.malformed_rate = malformed_rate
        self.models = [m for m in MODEL_BEHAVIOUR if m in catalog]
        self._model_index = {m: i for i, m in enumerate(self.models)}
        behaviour = [MODEL_BEHAVIOUR[m] for m in self.models]
        costs = [catalog[m].cost_structure for m in self.models]
        self.table = ModelTable(
            skill=np.array([b.skill for b in behaviour]), error_rate=np.array([b.error_rate for b in behaviour]),
            first_token_ms=np.array([b.first_token_ms for b in behaviour]),
            ms_per_token=np.array([b.ms_per_output_token for b in behaviour]),
            verbosity=np.array([b.verbosity for b in behaviour]),
            price_in=np.array([c.input_cost_per_1k_tokens for c in costs]),
            price_out=np.array([c.output_cost_per_1k_tokens for c in costs]),
        )
        self._price_in, self._price_out = self.table.price_in, self.table.price_out
        self._provider = np.array([catalog[m].provider for m in self.models], dtype=object)
        self._cache: OrderedDict[date, pd.DataFrame] = OrderedDict()
        self._cache_days = cache_days
        self._team_spend: dict[date, dict[str, float]] = {}
        self.incidents: list[Incident] = seeded_incidents(anchor)
        self.drifts: tuple[Drift, ...] = tuple(drifts)
        # The Orchestrator's routing over time: (effective from, in ns; configuration), in order.
        self._routing: list[tuple[int, RoutingConfig]] = []
        self._experiment_ends: dict[str, int] = {}  # seeded experiments concluded: when, in ns

    def add_incident(self, incident: Incident) -> None:
        """Start an incident; days it touches are generated again with it."""
        self.incidents.append(incident)
        self._forget(incident.start.date(), incident.end.date())

    def _forget(self, first: date, last: date | None = None) -> None:
        """Drop what was generated for the days from `first` (to `last`, if given): they are
        generated again, with what changed, when next asked for."""
        for days in (self._cache, self._team_spend):
            for day in [d for d in days if d >= first and (last is None or d <= last)]:
                days.pop(day, None)

    @property
    def model_index(self) -> dict[str, int]:
        """Each model's number in the generator's arrays."""
        return self._model_index

    def set_routing(self, timeline: Sequence[tuple[datetime, RoutingConfig]], changed_from: datetime) -> None:
        """The routing in force over time; traffic from `changed_from` on is served by it (days
        generated before are generated again, the requests before that moment unchanged)."""
        self._routing = sorted(((int(start.timestamp() * NS_PER_S), config) for start, config in timeline),
                               key=lambda item: item[0])
        self._forget(changed_from.astimezone(UTC).date())

    def end_experiment(self, experiment_id: str, at: datetime) -> None:
        """A seeded experiment stops enrolling requests from `at` on (it was concluded)."""
        if experiment_id in self._experiment_ends:
            return
        self._experiment_ends[experiment_id] = int(at.timestamp() * NS_PER_S)
        self._forget(at.astimezone(UTC).date())

    def experiment_start(self, plan: ExperimentPlan) -> datetime:
        day = self.anchor - timedelta(days=plan.started_days_before_anchor)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    def day(self, day: date) -> pd.DataFrame:
        if day not in self._cache:  # generated once per process for all that the day depends on
            identity = (day, self.seed, self.requests_per_day, self.anchor, self.malformed_rate, tuple(self.models),
                        self._price_in.tobytes(), self._price_out.tobytes(), repr(self.drifts), repr(self.incidents),
                        repr(self._routing), tuple(sorted(self._experiment_ends.items())))
            self._cache[day] = shared_day(identity, lambda: self._generate(day))
            if len(self._cache) > self._cache_days:
                self._cache.popitem(last=False)
        self._cache.move_to_end(day)
        return self._cache[day]

    def team_spend(self, day: date) -> dict[str, float]:
        """Each team's cost over a whole day, kept: budget checks sum a month of days at
        every policy evaluation."""
        spend = self._team_spend.get(day)
        if spend is None:
            totals = self.day(day).groupby("team_id")["cost_usd"].sum()
            spend = self._team_spend[day] = {str(team): float(cost) for team, cost in totals.items()}
        return spend

    def between(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Requests with start <= ts < end (both UTC-aware)."""
        if end <= start:
            return self.day(start.date()).iloc[0:0]
        days = []
        current = start.astimezone(UTC).date()
        last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
        while current <= last:
            days.append(self.day(current))
            current += timedelta(days=1)
        frame = pd.concat(days, ignore_index=True) if len(days) > 1 else days[0]
        start_ns = int(start.timestamp() * NS_PER_S)
        end_ns = int(end.timestamp() * NS_PER_S)
        ts = frame["ts_ns"].to_numpy()
        return frame[(ts >= start_ns) & (ts < end_ns)]

    # ---- generation ------------------------------------------------------------------

    def _outcome(
        self,
        rng: np.random.Generator,
        model: np.ndarray,
        difficulty: np.ndarray,
        prompt_tokens: np.ndarray,
        completion_median: np.ndarray,
        latency_factor: np.ndarray,
        error_factor: np.ndarray,
        skill_shift: np.ndarray,
    ) -> Outcome:
        requests = Requests(difficulty, prompt_tokens, completion_median, latency_factor, error_factor, skill_shift,
                            np.zeros(len(model)))
        return call(self.table, model, requests, CallNoise.draw(rng, len(model)))

    def _generate(self, day: date) -> pd.DataFrame:
        rng = np.random.default_rng([self.seed, day.toordinal()])
        n = int(rng.poisson(self.requests_per_day * WEEKDAY_VOLUME[day.weekday()]))
        start_ns = day_start_ns(day)
        hour = rng.choice(24, size=n, p=hourly_weights())
        ts_ns = start_ns + hour * NS_PER_HOUR + (rng.random(n) * NS_PER_HOUR).astype(np.int64)
        ts_ns.sort()

        apps = APPLICATIONS
        app = rng.choice(len(apps), size=n, p=np.array([a.traffic_share for a in apps]) / sum(a.traffic_share for a in apps))
        task = pick_rows(rng, np.array([a.task_mix for a in apps])[app])
        complexity = pick_rows(rng, np.array([a.complexity_mix for a in apps])[app])
        environment = rng.choice(len(ENVIRONMENTS), size=n, p=ENVIRONMENT_SHARES)
        production = environment == 0
        difficulty, prompt_tokens, completion_median = request_features(
            app, complexity, rng.normal(0, 0.8, n), rng.lognormal(0, 0.55, n))
        model = np.array([self._model_index[a.model] for a in apps])[app]
        shift = quality_shift(self.drifts, self.anchor, self._model_index, ts_ns, app)
        loss = compression_loss(self.drifts, self.anchor, ts_ns, app)

        latency_factor = np.ones(n)
        error_factor = np.ones(n)
        for incident in self.incidents:
            window = (ts_ns >= int(incident.start.timestamp() * NS_PER_S)) & (
                ts_ns < int(incident.end.timestamp() * NS_PER_S)
            )
            if not window.any():
                continue
            if incident.model is not None:
                window &= model == self._model_index[incident.model]
            if incident.application_id is not None:
                window &= app == [a.application_id for a in apps].index(incident.application_id)
            latency_factor[window] *= incident.latency_factor
            error_factor[window] *= incident.error_factor
            prompt_tokens[window] = np.round(prompt_tokens[window] * incident.prompt_factor)

        served = self._outcome(rng, model, difficulty, prompt_tokens, completion_median, latency_factor, error_factor,
                               shift)
        completion = served.completion_tokens
        failed = served.failed
        latency = served.latency_ms
        cost = served.cost_usd
        quality = served.quality
        confidence = served.confidence
        experiment_id = np.full(n, None, dtype=object)
        variant_id = np.full(n, None, dtype=object)
        escalated = np.full(n, None, dtype=object)
        technique = np.full(n, None, dtype=object)
        original_prompt = np.full(n, -1, dtype=np.int64)
        in_experiment = np.zeros(n, dtype=bool)

        for plan in EXPERIMENTS:
            if datetime(day.year, day.month, day.day, tzinfo=UTC) < self.experiment_start(plan):
                continue
            app_index = [a.application_id for a in apps].index(plan.application_id)
            enrolled = (app == app_index) & production & (rng.random(n) < plan.coverage)
            enrolled &= ts_ns < self._experiment_ends.get(plan.experiment_id, ts_ns[-1] + 1 if n else 0)
            treated = enrolled & (rng.random(n) < plan.allocation.get("treatment", 0.5))
            in_experiment |= enrolled
            experiment_id[enrolled] = plan.experiment_id
            variant_id[enrolled] = "control"
            variant_id[treated] = "treatment"
            rows = np.flatnonzero(treated)
            if plan.technique == "model_cascade" and plan.cheap_model:
                cheap = self._outcome(
                    rng, np.full(len(rows), self._model_index[plan.cheap_model]), difficulty[rows],
                    prompt_tokens[rows], completion_median[rows], latency_factor[rows], error_factor[rows], shift[rows],
                )
                escalate = (cheap.confidence < plan.escalation_threshold) | cheap.failed
                keep = rows[~escalate]
                model[keep] = self._model_index[plan.cheap_model]
                completion[keep] = cheap.completion_tokens[~escalate]
                failed[keep] = cheap.failed[~escalate]
                quality[keep] = cheap.quality[~escalate]
                cost[keep] = cheap.cost_usd[~escalate]
                latency[keep] = cheap.latency_ms[~escalate]
                up = rows[escalate]
                cost[up] += cheap.cost_usd[escalate]
                latency[up] += cheap.latency_ms[escalate]
                confidence[rows] = cheap.confidence
                escalated[rows] = escalate
                escalated[enrolled & ~treated] = None
            elif plan.technique == "prompt_compression":
                ratio = np.clip(rng.normal(plan.compression_ratio, 0.06, len(rows)), 0.3, 0.8)
                original_prompt[rows] = prompt_tokens[rows]
                prompt_tokens[rows] = np.maximum(4, np.round(prompt_tokens[rows] * ratio))
                technique[rows] = "llmlingua"
                m = model[rows]
                cost[rows] = np.where(
                    failed[rows], 0.0,
                    (prompt_tokens[rows] * self._price_in[m] + completion[rows] * self._price_out[m]) / 1000.0,
                )
                latency[rows] -= PROMPT_LATENCY_MS * (original_prompt[rows] - prompt_tokens[rows])
                quality[rows] = compressed_quality(quality[rows], original_prompt[rows], loss[rows])

        shadow_model = np.array(
            [self._model_index[a.shadow_model] if a.shadow_model else -1 for a in apps]
        )[app]
        shadow_rate = np.array([a.shadow_rate for a in apps])[app]
        paired = production & ~in_experiment & (shadow_model >= 0) & (rng.random(n) < shadow_rate)
        # The platform scores half of an experiment's requests and a quarter of the rest (drawn
        # before routing, so a day's draws do not depend on it).
        evaluation_draw = rng.random(n)
        # The Orchestrator's routing serves the rest (a shadow-evaluation sample stays on the
        # application's own model, so its pairs keep comparing that model with the candidate).
        optimization_id = np.full(n, None, dtype=object)
        if self._routing:
            route(self._routing, ts_ns, app, ~in_experiment & ~paired, [(a.application_id, a.model) for a in apps],
                  self._model_index, self.table, Requests(difficulty, prompt_tokens.copy(), completion_median,
                                                          latency_factor, error_factor, shift, loss, complexity),
                  RoutingNoise.draw(np.random.default_rng([self.seed, day.toordinal(), ROUTING_STREAM]), n),
                  {"model": model, "prompt_tokens": prompt_tokens, "completion_tokens": completion, "failed": failed,
                   "latency_ms": latency, "cost_usd": cost, "quality": quality, "confidence": confidence,
                   "escalated": escalated, "compression_technique": technique,
                   "original_prompt_tokens": original_prompt, "optimization_id": optimization_id,
                   "experiment_id": experiment_id, "variant_id": variant_id})
        scored_more = in_experiment | pd.notna(experiment_id)
        evaluated = (paired | (evaluation_draw < np.where(scored_more, 0.5, 0.25))) & ~failed

        serial, request_id, trace_id, high, shadow_span_id = day_ids(day, rng.integers(0, 2**63, size=(n, 2)))
        prompt_hash = prompt_hashes(self.seed, day, app, task)
        pair_id = np.full(n, None, dtype=object)
        pair_id[paired] = np.char.add("pair-", serial[paired]).astype(object)

        primary = {
            "request_id": request_id,
            "ts_ns": ts_ns,
            "trace_id": trace_id,
            "span_id": high.astype(object),
            "app": app,
            "task": task,
            "complexity": complexity,
            "environment": environment,
            "model": model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "cost_usd": cost,
            "latency_ms": latency,
            "failed": failed,
            "quality_score": np.where(evaluated, quality, np.nan),
            "experiment_id": experiment_id,
            "variant_id": variant_id,
            "pair_id": pair_id,
            "shadow": np.zeros(n, dtype=bool),
            "confidence_score": confidence,
            "escalated": escalated,
            "compression_technique": technique,
            "original_prompt_tokens": original_prompt,
            "optimization_id": optimization_id,
            "prompt_hash": prompt_hash,
        }

        rows = np.flatnonzero(paired)
        shadow = self._outcome(
            rng, shadow_model[rows], difficulty[rows], prompt_tokens[rows],
            completion_median[rows], latency_factor[rows], error_factor[rows], shift[rows],
        )
        k = len(rows)
        secondary = {
            "request_id": np.char.add(np.char.add("req-", serial[rows]), "-shadow").astype(object),
            "ts_ns": ts_ns[rows] + 1_000_000,
            "trace_id": trace_id[rows],
            "span_id": shadow_span_id[rows],
            "app": app[rows],
            "task": task[rows],
            "complexity": complexity[rows],
            "environment": environment[rows],
            "model": shadow_model[rows],
            "prompt_tokens": prompt_tokens[rows],
            "completion_tokens": shadow.completion_tokens,
            "cost_usd": shadow.cost_usd,
            "latency_ms": shadow.latency_ms,
            "failed": shadow.failed,
            "quality_score": np.where(shadow.failed, np.nan, shadow.quality),
            "experiment_id": np.full(k, None, dtype=object),
            "variant_id": np.full(k, None, dtype=object),
            "pair_id": pair_id[rows],
            "shadow": np.ones(k, dtype=bool),
            "confidence_score": shadow.confidence,
            "escalated": np.full(k, None, dtype=object),
            "compression_technique": np.full(k, None, dtype=object),
            "original_prompt_tokens": np.full(k, -1, dtype=np.int64),
            "optimization_id": np.full(k, None, dtype=object),
            "prompt_hash": prompt_hash[rows],  # the same prompt, asked of the other model
        }
        frame = pd.concat([pd.DataFrame(primary), pd.DataFrame(secondary)], ignore_index=True)
        return self._finish(frame, rng)

    def _finish(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        n = len(frame)
        apps = APPLICATIONS
        app = frame["app"].to_numpy()
        model = frame["model"].to_numpy()
        frame["application_id"] = np.array([a.application_id for a in apps], dtype=object)[app]
        frame["team_id"] = np.array([a.team_id for a in apps], dtype=object)[app]
        frame["task_type"] = np.array(TASK_LABELS, dtype=object)[frame["task"].to_numpy()]
        frame["complexity"] = np.array(COMPLEXITIES, dtype=object)[frame["complexity"].to_numpy()]
        frame["environment"] = np.array(ENVIRONMENTS, dtype=object)[frame["environment"].to_numpy()]
        frame["provider"] = self._provider[model]
        frame["model"] = np.array(self.models, dtype=object)[model]
        frame["status"] = np.where(frame["failed"].to_numpy(), "error", "ok").astype(object)
        late = rng.random(n) < LATE_SHARE
        delay_s = np.where(late, rng.uniform(600, MAX_LATE_S, n), rng.exponential(20, n))
        frame["visible_ns"] = frame["ts_ns"].to_numpy() + (delay_s * NS_PER_S).astype(np.int64)
        malformed = rng.random(n) < self.malformed_rate
        frame["malformed"] = np.where(malformed, rng.integers(0, len(MALFORMED_KINDS), n), -1)
        frame = frame.drop(columns=["app", "task", "failed"])
        return frame.sort_values(["ts_ns", "request_id"], ignore_index=True)

