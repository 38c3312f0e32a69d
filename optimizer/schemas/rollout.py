"""Rollouts: the changes proposed to the Orchestrator, the checks they pass, what happened."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from optimizer.schemas.routing import RoutingConfig, RoutingConfigState

ChangeKind = Literal["model_cascade", "prompt_compression", "preferred_model", "caching", "batching"]
RolloutStatus = Literal["no_change", "blocked", "rejected", "timed_out", "applied", "rolled_back", "experimenting"]

# What a person reads for each status (the run's final state in the Prefect UI, the result
# artifact); the status values themselves are stored and emitted, so they stay as they are.
OUTCOME_TITLES: dict[RolloutStatus, str] = {
    "applied": "Promoted",
    "rolled_back": "Rolled back",
    "rejected": "Rejected",
    "timed_out": "Timed out",
    "blocked": "Blocked by policy",
    "no_change": "Nothing to do",
    "experimenting": "Experiment started",
}


class ProposedChange(BaseModel):
    """One application's routing change, with the evidence it rests on."""

    model_config = ConfigDict(frozen=True)

    application_id: str
    kind: ChangeKind
    team_id: str | None = None
    primary_model: str | None = None  # cascade: answers first
    fallback_model: str | None = None  # cascade: takes escalations
    confidence_threshold: float | None = None
    complexity_threshold: float | None = None  # cascade: requests scoring above it go straight to the fallback
    preferred_models: list[str] = Field(default_factory=list)  # preferred_model: in order of preference
    technique: str | None = None  # prompt_compression
    min_prompt_tokens: int | None = None
    cache_ttl_seconds: int | None = None  # caching: how long an answer is served again
    batch_task_types: list[str] = Field(default_factory=list)  # batching: the requests sent to a batch API
    monthly_savings_usd: float | None = None
    quality_change: float | None = None
    quality_change_ci: tuple[float, float] | None = None
    reason: str = ""
    recommendation_id: str | None = None

    def models(self) -> list[str]:
        """The models this change sends traffic to."""
        named = [self.primary_model, self.fallback_model, *self.preferred_models]
        return [m for m in named if m]


class Guardrails(BaseModel):
    """What a canary may not do to an application's traffic, against the hour before it."""

    max_error_rate_increase: float = Field(default=0.01, ge=0)  # absolute, 0.01 = one point
    max_p95_latency_increase_pct: float = Field(default=30.0, ge=0)
    max_quality_drop: float = Field(default=0.03, ge=0)
    min_requests: int = Field(default=30, ge=1)  # per application, before the canary can be judged
    min_evaluated: int = Field(default=100, ge=1)  # quality-scored requests before quality is judged
    alpha: float = Field(default=0.01, gt=0, lt=1)  # a rise in errors must also be significant
    # Judged again and again on growing data (an experiment, each night): a rise in errors must
    # then be significant by an always-valid test, or every look would be another chance of
    # rolling back a good change.
    sequential: bool = False
    # Applications whose change accepts a delay (batching: a batch API answers within hours):
    # their p95 latency is reported, not judged.
    latency_exempt: list[str] = Field(default_factory=list)

    def accepting_delays_of(self, changes: list[ProposedChange]) -> Guardrails:
        """These guardrails, with the applications the changes batch exempt from latency."""
        batched = sorted({c.application_id for c in changes if c.kind == "batching"})
        return self.model_copy(update={"latency_exempt": batched}) if batched else self


class GuardrailReading(BaseModel):
    application_id: str
    window: Literal["baseline", "canary"]
    requests: int
    error_rate: float | None
    p95_latency_ms: float | None
    quality: float | None
    evaluated: int = 0


class GuardrailVerdict(BaseModel):
    healthy: bool
    breaches: list[str] = Field(default_factory=list)
    # Guardrails that could not be judged (e.g. no quality scores), so nobody reads the
    # verdict as covering them.
    unchecked: list[str] = Field(default_factory=list)
    readings: list[GuardrailReading] = Field(default_factory=list)


class RuleChange(BaseModel):
    rule_id: str
    change: Literal["added", "changed"]
    before: dict[str, Any] | None
    after: dict[str, Any]
    fields: list[str] = Field(default_factory=list)  # dotted paths that differ


class PolicyCheck(BaseModel):
    application_id: str
    model: str
    allowed: bool
    blocking: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class ApprovalAnswer(BaseModel):
    decision: Literal["approve", "reject", "timeout"]
    approver: str | None = None
    comment: str = ""
    answered_at: datetime | None = None


class RolloutOutcome(BaseModel):
    rollout_id: str
    status: RolloutStatus
    message: str
    changes: list[ProposedChange] = Field(default_factory=list)
    diff: list[RuleChange] = Field(default_factory=list)
    policy: list[PolicyCheck] = Field(default_factory=list)
    approval: ApprovalAnswer | None = None
    previous_version: str | None = None
    canary_version: str | None = None
    applied_version: str | None = None
    restored_version: str | None = None
    guardrails: GuardrailVerdict | None = None
    # For a nightly proposal: the optimization it is, and the experiment it went live as.
    optimization_id: str | None = None
    experiment_id: str | None = None
    experiment_version: str | None = None
    experiment_percent: float | None = None

    @property
    def title(self) -> str:
        return OUTCOME_TITLES[self.status]

    @property
    def applications(self) -> list[str]:
        return sorted({c.application_id for c in self.changes})


class ResponseOutcome(BaseModel):
    """What an event-triggered flow did about an alert."""

    trigger: str  # the CloudEvent type
    event_id: str
    alert_id: str | None = None
    strategy: str
    applications: list[str] = Field(default_factory=list)
    changes: list[ProposedChange] = Field(default_factory=list)
    rollout: RolloutOutcome | None = None
    reported_anomaly_id: str | None = None
    message: str = ""


class Proposal(BaseModel):
    """A routing change ready for review: the configuration in force, the one the changes
    lead to, the rule-level diff, and what makes it invalid (if anything)."""

    changes: list[ProposedChange]
    current: RoutingConfigState
    proposed: RoutingConfig
    diff: list[RuleChange] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)


class ApprovalRequest(BaseModel):
    """What an approver is shown: the evidence (a Markdown artifact), the form's description,
    and who may answer."""

    evidence: str
    description: str
    approvers: list[str]


RecheckVerdict = Literal["still_valid", "savings_changed", "invalidated"]


class Revalidation(BaseModel):
    """One adopted recommendation or live optimization, checked again after its model changed."""

    subject: str  # recommendation/<id> or optimization/<id>
    application_id: str
    kind: ChangeKind
    verdict: RecheckVerdict
    reasons: list[str] = Field(default_factory=list)
    monthly_savings_usd: float | None = None
    revised_monthly_savings_usd: float | None = None  # where the new price allows recomputing it


class ModelRecheck(BaseModel):
    """What a `registry.model-updated` event changed for the optimizer's recommendations."""

    model_id: str
    status: str | None  # the model's status in the Registry now; None when it is gone
    checked: list[Revalidation] = Field(default_factory=list)
    message: str = ""


class ViolationResponse(BaseModel):
    """What a `governance.policy-violation` event did to the live changes it concerns."""

    violation_id: str
    policy_id: str
    applications: list[str] = Field(default_factory=list)
    stopped: list[str] = Field(default_factory=list)  # "<optimization id> <what became of it>"
    kept: list[str] = Field(default_factory=list)  # live optimizations Governance still allows
    message: str = ""
