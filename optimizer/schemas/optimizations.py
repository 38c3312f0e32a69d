"""An optimization: one application's routing change on its way from a nightly finding,
through approval and an experiment, to deployment (or not)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from optimizer.schemas.rollout import ProposedChange

OptimizationStatus = Literal[
    "waiting_approval",  # asked for; a person has not answered yet
    "superseded",  # a newer finding for the application replaced it before anyone answered
    "rejected",  # a person said no, or nobody answered in time
    "blocked",  # Governance refused a model it routes to, or the configuration was invalid
    "experimenting",  # live on a share of the traffic, against control traffic of the same hours
    "deployed",  # the experiment found it better: all traffic
    "stopped",  # the experiment found it no better, or it ran out of time: previous rules restored
    "rolled_back",  # its guardrails broke, or Sentinel stopped it: previous rules restored
]
OPEN: frozenset[OptimizationStatus] = frozenset({"waiting_approval", "experimenting"})
LIVE: frozenset[OptimizationStatus] = frozenset({"experimenting", "deployed"})

# What identifies a change: which models and which technique, not how it is tuned (a
# cascade's threshold or a compression floor moves a little from night to night with the
# evidence; it is still the change that was tried).
_ROUTING_FIELDS = ("application_id", "kind", "primary_model", "fallback_model", "preferred_models", "technique")


def fingerprint(changes: Sequence[ProposedChange]) -> str:
    """The same routing change gets the same fingerprint on any night, however it is tuned."""
    canonical = sorted(json.dumps(c.model_dump(include=set(_ROUTING_FIELDS), mode="json"), sort_keys=True)
                       for c in changes)
    return hashlib.sha256("\n".join(canonical).encode()).hexdigest()[:16]


class LoopSummary(BaseModel):
    """What one nightly run did in the closed loop."""

    proposed: list[str] = Field(default_factory=list)  # optimization ids asked for tonight
    waiting_for_deployment: list[str] = Field(default_factory=list)  # asked for, no run to ask through yet
    superseded: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)  # application -> why nothing was asked
    decided: dict[str, str] = Field(default_factory=dict)  # optimization id -> what became of it


class Optimization(BaseModel):
    optimization_id: str
    application_id: str
    changes: list[ProposedChange]
    fingerprint: str
    status: OptimizationStatus
    reason: str = ""
    proposed_by: str  # the nightly run that found it
    proposed_at: datetime
    updated_at: datetime
    forecast_monthly_savings_usd: float = 0.0
    approval_run_id: str | None = None  # the rollout flow run that asks for approval
    experiment_id: str | None = None
    traffic_percent: float | None = None
    started_at: datetime | None = None  # live from
    ended_at: datetime | None = None
    previous_version: str | None = None  # the routing version it was started against
    history: list[str] = Field(default_factory=list)  # "<time> <status>: <reason>", oldest first

    def moved(self, status: OptimizationStatus, reason: str, at: datetime, **update: object) -> Optimization:
        """The same optimization in its next status, with the step kept in its history."""
        return self.model_copy(update={"status": status, "reason": reason, "updated_at": at,
                                       "history": [*self.history, f"{at.isoformat()} {status}: {reason}"], **update})


class RealizedSavings(BaseModel):
    """What a deployed change really did, measured on the traffic it served against its
    application's traffic before its experiment began; beside what it was forecast to save."""

    optimization_id: str
    application_id: str
    requests_before: int
    requests_after: int
    days_after: float
    requests_per_day: float
    cost_per_request_before_usd: float
    cost_per_request_after_usd: float
    saving_per_request_usd: float
    saving_per_request_ci: tuple[float, float]
    realized_monthly_savings_usd: float
    realized_monthly_savings_ci: tuple[float, float]
    forecast_monthly_savings_usd: float
    forecast_error_usd: float  # realized - forecast
    forecast_error_pct: float | None  # of the forecast
    quality_change: float | None  # after - before
    quality_change_ci: tuple[float, float] | None
    latency_change_ms: float | None
    latency_change_ci: tuple[float, float] | None
    # Prompt tokens it saves a month at its traffic (fewer sent per request since, e.g. compressed).
    realized_monthly_tokens_saved: float | None = None
