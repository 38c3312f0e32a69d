"""The world's hidden truth: what a routing really does to an application's quality, cost and
latency on a given day, and the best routing there is (the oracle a simulation is scored
against): the cheapest routing the platform can put evidence behind whose true quality stays
within the margin, whose true p95 latency stays within what a rollout's guardrail allows and
whose true mean latency rises by at most the specification's `max_latency_increase_ms`.

Figures are expectations over a large sample of the application's requests, each answered
under the routing with the world's own randomness: no optimizer sees them, the sandbox knows
them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from optimizer.sandbox.serving import (
    Plan,
    Requests,
    RoutingNoise,
    Served,
    answer_alone,
    cascade,
    compression_loss,
    quality_shift,
    request_features,
    rules_for,
    too_complex,
)
from optimizer.sandbox.traffic import TrafficGenerator
from optimizer.sandbox.world import APPLICATIONS, COMPLEXITIES, EXPERIMENTS
from optimizer.schemas.routing import RoutingConfig, complexity_threshold

SAMPLE = 20_000
THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(1, 20))
COMPRESSION_FLOORS = (0, 200, 400, 600, 800, 1000, 1500, 2000, 3000)
DAYS_PER_MONTH = 30.4
MAX_P95_LATENCY_INCREASE_PCT = 30.0  # a rollout's default guardrail
MAX_LATENCY_INCREASE_MS = 200.0  # the specification's goal for a request's mean latency
# A cascade may route every request to its primary first, or only simple ones, or simple and
# moderate ones (the complexity thresholds of the routing schema).
COMPLEXITY_THRESHOLDS = (None, complexity_threshold(0), complexity_threshold(1))


@dataclass(frozen=True)
class Effect:
    """Per request, in expectation."""

    quality: float
    cost_usd: float
    latency_ms: float
    p95_latency_ms: float


@dataclass(frozen=True)
class Verdict:
    """One application's truth on a day: its own model, the routing in force, the oracle."""

    application_id: str
    requests_per_day: float  # routable requests (not shadow samples, not seeded experiments)
    baseline: Effect
    live: Effect
    live_plan: dict[str, Any] | None
    oracle: Effect
    oracle_plan: dict[str, Any]
    margin: float
    # The shares split off to other rules (an experiment's arms, a canary): each plan, its
    # share in percent and its quality drop against the baseline.
    arms: list[dict[str, Any]] = field(default_factory=list)

    @property
    def oracle_monthly_savings_usd(self) -> float:
        return (self.baseline.cost_usd - self.oracle.cost_usd) * self.requests_per_day * DAYS_PER_MONTH

    @property
    def live_monthly_savings_usd(self) -> float:
        return (self.baseline.cost_usd - self.live.cost_usd) * self.requests_per_day * DAYS_PER_MONTH

    @property
    def live_quality_drop(self) -> float:
        return self.baseline.quality - self.live.quality

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"oracle_monthly_savings_usd": self.oracle_monthly_savings_usd,
                               "live_monthly_savings_usd": self.live_monthly_savings_usd,
                               "live_quality_drop": self.live_quality_drop}


class Truth:
    """Expectations for the applications of one generator's world, on one day."""

    def __init__(self, traffic: TrafficGenerator, day: date, *, seed: int = 0, sample: int = SAMPLE) -> None:
        self.traffic, self.day = traffic, day
        self._samples: dict[str, tuple[Requests, RoutingNoise]] = {}
        # Each model's answers at each compression floor, as first or second call: every
        # routing of the application combines a few of them (serve() does the same, uncached).
        self._alone: dict[tuple[str, str, int | None, bool], Served] = {}
        self._seed, self._sample = seed, sample

    def _requests(self, application_id: str) -> tuple[Requests, RoutingNoise]:
        if application_id not in self._samples:
            number = [a.application_id for a in APPLICATIONS].index(application_id)
            app = APPLICATIONS[number]
            rng = np.random.default_rng([self._seed, number, 99])
            n = self._sample
            application = np.full(n, number)
            complexity = rng.choice(len(COMPLEXITIES), size=n, p=np.array(app.complexity_mix) / sum(app.complexity_mix))
            difficulty, prompt, completion = request_features(application, complexity, rng.normal(0, 0.8, n),
                                                               rng.lognormal(0, 0.55, n))
            moment = datetime(self.day.year, self.day.month, self.day.day, 12, tzinfo=UTC)
            ts_ns = np.full(n, int(moment.timestamp()) * 1_000_000_000)
            shift = quality_shift(self.traffic.drifts, self.traffic.anchor, self.traffic.model_index, ts_ns,
                                  application)
            loss = compression_loss(self.traffic.drifts, self.traffic.anchor, ts_ns, application)
            self._samples[application_id] = (
                Requests(difficulty, prompt, completion, np.ones(n), np.ones(n), shift, loss, complexity),
                RoutingNoise.draw(rng, n))
        return self._samples[application_id]

    def _answer_alone(self, application_id: str, model: str, floor: int | None, second: bool) -> Served:
        key = (application_id, model, floor, second)
        if key not in self._alone:
            requests, noise = self._requests(application_id)
            self._alone[key] = answer_alone(model, floor, self.traffic.model_index, self.traffic.table, requests,
                                            noise.second if second else noise.first, noise.ratio)
        return self._alone[key]

    def effect(self, application_id: str, plan: Plan) -> Effect:
        served = self._answer_alone(application_id, plan.model, plan.compression_floor, False)
        if plan.fallback is not None and plan.threshold is not None:
            backup = self._answer_alone(application_id, plan.fallback, plan.compression_floor, True)
            served = cascade(served, backup, plan.threshold, too_complex(plan, self._requests(application_id)[0]))
        return Effect(float(served.quality.mean()), float(served.cost_usd.mean()), float(served.latency_ms.mean()),
                      float(np.percentile(served.latency_ms, 95)))

    def candidates(self, application_id: str) -> list[Plan]:
        """The routings the platform can put evidence behind for the application: a cascade
        from the model it shadow-evaluates (when that one is cheaper) at any threshold, for every
        request or only the simpler complexity levels, and,
        where its traffic runs a compression experiment, compression at any floor, alone or
        with the cascade. Compression elsewhere may well pay, but no optimizer could know
        without trying it first."""
        app = next(a for a in APPLICATIONS if a.application_id == application_id)
        table, index = self.traffic.table, self.traffic.model_index
        price = table.price_in + table.price_out
        compressed = any(e.application_id == application_id and e.technique == "prompt_compression"
                         for e in EXPERIMENTS)
        floors = (None, *COMPRESSION_FLOORS) if compressed else (None,)
        plans = [Plan(app.model, compression_floor=floor) for floor in floors]
        if app.shadow_model and app.shadow_model in index and price[index[app.shadow_model]] < price[index[app.model]]:
            plans += [Plan(app.shadow_model, app.model, threshold, floor, complexity_threshold=levels)
                      for threshold in THRESHOLDS for floor in floors for levels in COMPLEXITY_THRESHOLDS]
        return plans

    def verdict(self, application_id: str, live: Plan | None, margin: float, requests_per_day: float,
                max_p95_increase_pct: float = MAX_P95_LATENCY_INCREASE_PCT) -> Verdict:
        app = next(a for a in APPLICATIONS if a.application_id == application_id)
        baseline = self.effect(application_id, Plan(app.model))
        effects = [(plan, self.effect(application_id, plan)) for plan in self.candidates(application_id)]
        allowed = [(plan, e) for plan, e in effects if e.quality >= baseline.quality - margin
                   and e.p95_latency_ms <= baseline.p95_latency_ms * (1 + max_p95_increase_pct / 100)
                   and e.latency_ms <= baseline.latency_ms + MAX_LATENCY_INCREASE_MS]
        best_plan, best = min(allowed, key=lambda item: item[1].cost_usd)
        live_effect = self.effect(application_id, live) if live is not None else baseline
        return Verdict(application_id, requests_per_day, baseline, live_effect,
                       asdict(live) if live is not None else None, best, asdict(best_plan), margin)


def routable_requests_per_day(traffic: TrafficGenerator, day: date) -> dict[str, float]:
    """How many of each application's requests a day the routing serves (a week's mean): not
    shadow samples, not requests enrolled in a seeded experiment."""
    end = datetime(day.year, day.month, day.day, tzinfo=UTC)
    frame = traffic.between(end - timedelta(days=7), end)
    routed = frame[~frame["shadow"] & frame["pair_id"].isna()
                   & ~(frame["experiment_id"].notna() & frame["optimization_id"].isna())]
    return {str(app): count / 7 for app, count in routed["application_id"].value_counts().items()}


def verdicts(traffic: TrafficGenerator, routing: RoutingConfig, day: date, margin: float,
             max_p95_increase_pct: float = MAX_P95_LATENCY_INCREASE_PCT) -> list[Verdict]:
    """Every application's truth on `day` under `routing` (its own rule; a split's share aside)."""
    truth = Truth(traffic, day)
    volume = routable_requests_per_day(traffic, day)
    found = []
    for app in APPLICATIONS:
        base, splits = rules_for(routing, app.application_id)
        live = Plan.of(base) if base is not None else None
        if live is not None and live.serves_like(app.model):
            live = None
        verdict = truth.verdict(app.application_id, live, margin, volume.get(app.application_id, 0.0),
                                max_p95_increase_pct)
        for rule in splits:
            plan = Plan.of(rule)
            if plan is not None:
                verdict.arms.append({"plan": asdict(plan), "share": float(rule.conditions["traffic_percentage"]),
                                     "quality_drop": verdict.baseline.quality - truth.effect(app.application_id,
                                                                                              plan).quality})
        found.append(verdict)
    return found
