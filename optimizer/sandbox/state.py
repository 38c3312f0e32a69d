"""What the sandbox remembers: its clock, generated traffic, and everything clients wrote."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
from pydantic import BaseModel, Field, field_validator

from optimizer.catalog import load_catalog
from optimizer.sandbox.faults import FaultInjector, FaultSettings
from optimizer.sandbox.traffic import TrafficGenerator
from optimizer.sandbox.world import APPLICATIONS, BUDGET_FACTORS, EXPERIMENTS, TEAMS
from optimizer.sandbox.worlds import WORLDS
from optimizer.schemas.governance import (
    CostRecord,
    Policy,
    PolicyConditions,
    PolicyEnforcement,
    PolicyScope,
)
from optimizer.schemas.registry import StoredExperiment, TestPeriod
from optimizer.schemas.routing import (
    DefaultPolicy,
    RoutingConfigState,
    RoutingRule,
    StrategyRegistration,
    TargetSelection,
)
from optimizer.settings import MODEL_CATALOG, SANDBOX_DEFAULT_TOKEN

if TYPE_CHECKING:
    from optimizer.sandbox.emitter import Subscriber


class SandboxConfig(BaseModel):
    """How a sandbox instance behaves. Same seed and clock, same traffic."""

    seed: int = 42
    token: str | None = SANDBOX_DEFAULT_TOKEN
    # The event sink's own token; None: it takes events without one, as a sink inside the
    # platform's network may. Never the services' token, which the optimizer keeps from it.
    events_token: str | None = None
    requests_per_day: int = Field(default=12_000, ge=1, le=2_000_000)
    malformed_share: float = Field(default=0.002, ge=0, le=1)
    now: datetime | None = None  # where the clock starts; None follows the wall clock
    clock_speed: float = Field(default=0.0, ge=0)  # sandbox seconds per real second from `now`; 0 stops it
    anchor: date | None = None  # the day experiments and incidents are placed from
    catalog_path: Path = MODEL_CATALOG
    faults: FaultSettings = Field(default_factory=FaultSettings)
    # Which APIs it serves where the specification and the upstream services differ: both
    # (the default), or only one, so a client speaking the other fails as it would for real.
    api_style: Literal["both", "spec", "upstream"] = "both"
    # Which world it plays (`optimizer.sandbox.worlds.WORLDS`): volume and how models drift.
    world: str = "default"

    @field_validator("world")
    @classmethod
    def _known_world(cls, name: str) -> str:
        if name not in WORLDS:
            raise ValueError(f"unknown world {name!r}; known: {', '.join(WORLDS)}")
        return name


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self._clock_base = config.now.astimezone(UTC) if config.now else None
        self._clock_set_at = time.monotonic()
        self.anchor = config.anchor or self.now().date()
        self.catalog = {p.model_id: p for p in load_catalog(config.catalog_path)}
        self.world = WORLDS[config.world]
        self.traffic = TrafficGenerator(
            seed=config.seed,
            requests_per_day=self.world.requests_per_day or config.requests_per_day,
            catalog=self.catalog,
            anchor=self.anchor,
            malformed_rate=config.malformed_share,
            drifts=self.world.drifts,
        )
        self.faults = FaultInjector(config.faults)
        self.request_counts: Counter[str] = Counter()
        self.idempotent_replies: dict[tuple[str, str, str], tuple[int, bytes]] = {}
        self.experiments: dict[str, StoredExperiment] = {
            e.experiment_id: e for e in self._seed_experiments()
        }
        self.routing_versions: list[RoutingConfigState] = [self._seed_routing()]
        self.cost_records: list[CostRecord] = []
        self.anomalies: list[dict[str, object]] = []
        self.events: dict[tuple[str, str], dict[str, object]] = {}
        self.recommendations: dict[str, dict[str, object]] = {}
        self.strategies: dict[str, StrategyRegistration] = {}  # registered at the Orchestrator
        self._policies: dict[str, tuple[Policy, int, datetime]] | None = None
        # Whether `POST /policies/evaluate` lists `violations` (the gRPC message's field) beside
        # `evaluated_policies`; off, it answers exactly as the REST example does.
        self.policy_violations_listed = True
        # Where the sandbox sends the platform's events (`optimizer.sandbox.emitter`); none by default.
        self.subscriber: Subscriber | None = None

    # ---- clock -------------------------------------------------------------------------

    def now(self) -> datetime:
        """The platform's time: the wall clock, or a clock set to a moment that stands still
        or runs `clock_speed` times faster than real time (for tests that watch a rollout)."""
        if self._clock_base is None:
            return datetime.now(UTC)
        elapsed = (time.monotonic() - self._clock_set_at) * self.config.clock_speed
        return self._clock_base + timedelta(seconds=elapsed)

    def set_now(self, moment: datetime | None) -> None:
        self._clock_base = moment.astimezone(UTC) if moment else None
        self._clock_set_at = time.monotonic()

    def visible_requests(self, start: datetime, end: datetime) -> pd.DataFrame:
        """What the Observatory has received by now for [start, end): late records not yet."""
        now = self.now()
        frame = self.traffic.between(start, min(end, now))
        now_ns = int(now.timestamp() * 1_000_000_000)
        return frame[frame["visible_ns"].to_numpy() <= now_ns]

    def routing_changed(self, effective: datetime) -> None:
        """Traffic from `effective` on follows the routing versions as they now stand."""
        self.traffic.set_routing([(v.last_updated, v) for v in self.routing_versions], effective)

    def routing_at(self, moment: datetime) -> RoutingConfigState:
        """The routing version in force at `moment`."""
        due = [v for v in self.routing_versions if v.last_updated <= moment]
        return max(due, key=lambda v: v.last_updated) if due else self.routing_versions[0]

    def billed_requests(self, start: datetime, end: datetime) -> pd.DataFrame:
        """What Governance has billed for [start, end): every request up to now."""
        return self.traffic.between(start, min(end, self.now()))

    # ---- seeds -------------------------------------------------------------------------

    def _seed_experiments(self) -> list[StoredExperiment]:
        seeded = []
        for plan in EXPERIMENTS:
            app = next(a for a in APPLICATIONS if a.application_id == plan.application_id)
            configuration: dict[str, object] = {
                "variants": [
                    {"variant_id": "control", "description": f"Always {app.model}"},
                    {"variant_id": "treatment", "description": plan.hypothesis},
                ],
                "traffic_allocation": dict(plan.allocation),
                "coverage": plan.coverage,
            }
            if plan.cheap_model:
                configuration |= {
                    "primary_model": plan.cheap_model,
                    "fallback_model": app.model,
                    "escalation_threshold": plan.escalation_threshold,
                }
            else:
                configuration |= {
                    "optimization_technique": "llmlingua",
                    "compression_ratio": plan.compression_ratio,
                    "target_models": [app.model],
                }
            seeded.append(
                StoredExperiment(
                    experiment_id=plan.experiment_id,
                    experiment_type=plan.experiment_type,
                    technique=plan.technique,
                    hypothesis=plan.hypothesis,
                    configuration=configuration,
                    test_period=TestPeriod(start=self.traffic.experiment_start(plan)),
                    metadata={"created_by": "team-llmops", "application_id": app.application_id},
                    status="running",
                )
            )
        return seeded

    def _seed_routing(self) -> RoutingConfigState:
        rules = [
            RoutingRule(
                id=f"rule-{app.application_id}",
                name=f"{app.application_id} default model",
                priority=100 + 10 * index,
                conditions={"application_id": app.application_id},
                target_selection=TargetSelection(
                    strategy="capability_match", preferred_models=[app.model]
                ),
            )
            for index, app in enumerate(APPLICATIONS)
        ]
        start = datetime(self.anchor.year, self.anchor.month, self.anchor.day, tzinfo=UTC)
        return RoutingConfigState(
            config_id="cfg-000001",
            version="v1.0.0",
            routing_rules=rules,
            default_policy=DefaultPolicy(
                strategy="round_robin", models=["gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022"]
            ),
            last_updated=start - timedelta(days=30),
            status="active",
        )

    def policies(self) -> dict[str, tuple[Policy, int, datetime]]:
        """The seeded policies; budgets are set from each team's actual monthly run rate."""
        with self.lock:
            if self._policies is None:
                self._policies = {p.policy_id: (p, 1, self.now()) for p in self._seed_policies()}
            return self._policies

    def _seed_policies(self) -> list[Policy]:
        end = datetime(self.anchor.year, self.anchor.month, self.anchor.day, tzinfo=UTC)
        week = self.traffic.between(end - timedelta(days=7), end)
        weekly = week.groupby("team_id")["cost_usd"].sum()
        policies = [
            Policy(
                policy_id=f"policy-budget-{team_id.removeprefix('team-')}",
                name=f"Monthly budget - {name}",
                description=f"Monthly LLM budget of {name}",
                priority=100,
                scope=PolicyScope(teams=[team_id]),
                conditions=PolicyConditions(
                    type="cost_limit",
                    parameters={
                        "period": "monthly",
                        "limit_usd": round(float(weekly.get(team_id, 1.0)) * 30 / 7 * BUDGET_FACTORS[team_id], 2),
                        "action_on_exceed": "alert",
                        "alert_threshold_percentage": 80,
                    },
                ),
                enforcement=PolicyEnforcement(mode="warning"),
            )
            for team_id, name in TEAMS.items()
        ]
        policies.append(
            Policy(
                policy_id="policy-eu-residency-support",
                name="EU data residency - Customer Support",
                description="Support conversations hold EU customer data; models must offer EU residency",
                priority=10,
                scope=PolicyScope(teams=["team-support"], environments=["production"]),
                conditions=PolicyConditions(type="data_residency", parameters={"region": "EU"}),
            )
        )
        policies.append(
            Policy(
                policy_id="policy-allowlist-engineering",
                name="Approved models - Engineering",
                description="Source code may only go to vendors under the engineering DPA",
                priority=20,
                scope=PolicyScope(teams=["team-engineering"]),
                conditions=PolicyConditions(
                    type="model_allowlist",
                    parameters={
                        "allowed_models": [
                            "claude-3-5-sonnet-20241022",
                            "claude-3-5-haiku-20241022",
                            "gpt-4o-2024-08-06",
                        ]
                    },
                ),
            )
        )
        return policies

    def month_to_date_spend(self, team_id: str) -> float:
        now = self.now()
        start = datetime(now.year, now.month, 1, tzinfo=UTC)
        today = datetime(now.year, now.month, now.day, tzinfo=UTC)
        spent = sum(self.traffic.team_spend(start.date() + timedelta(days=d)).get(team_id, 0.0)
                    for d in range((today - start).days))
        frame = self.billed_requests(today, now)
        spent += float(frame.loc[frame["team_id"] == team_id, "cost_usd"].sum())
        spent += sum(
            r.cost_usd for r in self.cost_records
            if r.context.team_id == team_id and r.timestamp >= start
        )
        return spent
