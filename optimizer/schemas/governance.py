"""Governance payloads: cost summaries and records, policies, evaluations, budget alerts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from optimizer.schemas._base import WireModel


class DateRange(WireModel):
    start: date
    end: date


class TeamCost(WireModel):
    team_id: str
    team_name: str | None = None
    cost_usd: float
    percentage: float | None = None


class _Spend(WireModel):
    cost_usd: float
    requests: int | None = None
    tokens: int | None = None


class ModelCost(_Spend):
    model: str


class ApplicationCost(_Spend):
    application_id: str


class EnvironmentCost(_Spend):
    environment: str


class CostBreakdown(WireModel):
    by_team: list[TeamCost] = Field(default_factory=list)
    by_model: list[ModelCost] = Field(default_factory=list)
    by_application: list[ApplicationCost] = Field(default_factory=list)
    by_environment: list[EnvironmentCost] = Field(default_factory=list)


class CostTrends(WireModel):
    cost_change_percentage: float | None = None
    request_volume_change_percentage: float | None = None


class CostSummary(WireModel):
    """Answer to `GET /costs/summary`."""

    period: str
    date_range: DateRange
    total_cost_usd: float
    breakdown: CostBreakdown = Field(default_factory=CostBreakdown)
    trends: CostTrends | None = None


class TokenCounts(WireModel):
    input: int = Field(ge=0)
    output: int = Field(ge=0)
    total: int = Field(ge=0)


class CostSplit(WireModel):
    input_cost_usd: float
    output_cost_usd: float


class RequestContext(WireModel):
    user_id: str | None = None
    team_id: str | None = None
    application_id: str | None = None
    environment: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class CostRecord(WireModel):
    """Body of `POST /costs/record`."""

    request_id: str
    timestamp: datetime
    model: str
    provider: str | None = None
    tokens: TokenCounts
    cost_usd: float = Field(ge=0)
    cost_breakdown: CostSplit | None = None
    context: RequestContext = Field(default_factory=RequestContext)
    optimization_applied: dict[str, Any] | None = None


class BudgetAlertTriggered(WireModel):
    alert_type: str
    threshold_percentage: float
    message: str


class BudgetStatus(WireModel):
    team_budget_remaining_usd: float | None = None
    team_budget_utilization_percentage: float | None = None
    alerts_triggered: list[BudgetAlertTriggered] = Field(default_factory=list)


class CostRecorded(WireModel):
    record_id: str
    recorded_at: datetime
    budget_status: BudgetStatus


class PolicyScope(WireModel):
    teams: list[str] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=list)
    applications: list[str] = Field(default_factory=list)


class PolicyConditions(WireModel):
    type: str  # cost_limit | model_allowlist | model_denylist | data_residency | ...
    parameters: dict[str, Any] = Field(default_factory=dict)


class PolicyEnforcement(WireModel):
    mode: Literal["blocking", "warning", "audit"] = "blocking"
    grace_period_hours: float = 0


class EffectiveDates(WireModel):
    start: datetime | None = None
    end: datetime | None = None


class Policy(WireModel):
    """A policy as created with `POST /policies` and listed by `GET /policies`."""

    policy_id: str
    name: str
    description: str | None = None
    enabled: bool = True
    priority: int = 100
    scope: PolicyScope = Field(default_factory=PolicyScope)
    conditions: PolicyConditions
    enforcement: PolicyEnforcement = Field(default_factory=PolicyEnforcement)
    effective_dates: EffectiveDates = Field(default_factory=EffectiveDates)


class PolicyCreated(WireModel):
    policy_id: str
    status: str
    created_at: datetime
    version: int


class PolicyList(WireModel):
    total: int
    policies: list[Policy]


class LLMRequestSpec(WireModel):
    model: str
    prompt: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    data_categories: list[str] = Field(default_factory=list)
    estimated_cost_usd: float | None = None


class PolicyEvaluationRequest(WireModel):
    """Body of `POST /policies/evaluate`."""

    request_id: str
    context: RequestContext = Field(default_factory=RequestContext)
    llm_request: LLMRequestSpec
    policy_ids: list[str] = Field(default_factory=list)


class EvaluatedPolicy(WireModel):
    policy_id: str
    policy_name: str
    result: Literal["pass", "fail", "warn", "not_applicable"]
    details: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None


class PolicyViolation(WireModel):
    policy_id: str
    policy_name: str
    violation_type: str
    description: str
    severity: Literal["blocking", "warning", "info"]
    remediation: str | None = None


class PolicyAdvice(WireModel):
    type: str
    message: str
    estimated_savings_usd: float | None = None


class PolicyEvaluation(WireModel):
    """Answer to `POST /policies/evaluate`.

    `violations` follows the specification's PolicyEvaluationResponse message: it says
    which failures block (`severity == "blocking"`) and which only warn.
    """

    request_id: str
    allowed: bool
    evaluated_policies: list[EvaluatedPolicy] = Field(default_factory=list)
    violations: list[PolicyViolation] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    recommendations: list[PolicyAdvice] = Field(default_factory=list)

    def blocking_violations(self) -> list[PolicyViolation]:
        return [v for v in self.violations if v.severity == "blocking"]

    def denials(self) -> list[str]:
        """Why the answer forbids the request, read in both of the specification's styles: the
        REST answer's `allowed: false` with `evaluated_policies[].result == "fail"` (and no
        `violations`), and the gRPC message's `violations` of severity `blocking`. A denial
        that names no reason is still a denial."""
        reasons = [f"{v.policy_name}: {v.description}" for v in self.blocking_violations()]
        if self.allowed:
            return reasons
        named = {v.policy_id for v in self.blocking_violations()}
        reasons += [f"{p.policy_name}: {p.reason or 'failed' + _details(p.details)}"
                    for p in self.evaluated_policies if p.result == "fail" and p.policy_id not in named]
        return reasons or ["Governance denied the request (allowed: false) without naming a policy"]

    def cautions(self) -> list[str]:
        """What only warns: non-blocking violations, policies that warn (or fail while the request
        stays allowed), and the answer's own warnings."""
        named = {v.policy_id for v in self.violations}
        found = [f"{v.policy_name}: {v.description}" for v in self.violations if v.severity != "blocking"]
        found += [w for w in self.warnings if w not in found]
        if self.allowed:
            found += [f"{p.policy_name}: {p.reason or p.result + _details(p.details)}" for p in self.evaluated_policies
                      if p.result in {"fail", "warn"} and p.policy_id not in named
                      and not any(w.startswith(f"{p.policy_name}:") for w in found)]
        return found


def _details(details: dict[str, Any]) -> str:
    return f" ({', '.join(f'{k}={v}' for k, v in details.items())})" if details else ""


class BudgetRecommendation(WireModel):
    type: str
    description: str
    estimated_savings_usd: float | None = None


class BudgetAlertData(WireModel):
    """`data` of the `io.llm-platform.governance.budget-alert` event."""

    alert_id: str
    alert_type: str
    severity: str
    team_id: str
    period: str
    budget_limit_usd: float
    current_spend_usd: float
    utilization_percentage: float
    threshold_percentage: float
    projected_end_of_period_spend_usd: float | None = None
    days_remaining_in_period: int | None = None
    recommendations: list[BudgetRecommendation] = Field(default_factory=list)


class ViolationContext(WireModel):
    user_id: str | None = None
    team_id: str | None = None
    application_id: str | None = None


class PolicyViolationData(WireModel):
    """`data` of the `io.llm-platform.governance.policy-violation` event."""

    violation_id: str
    request_id: str | None = None
    policy_id: str
    policy_name: str | None = None
    violation_type: str
    severity: str
    context: ViolationContext = Field(default_factory=ViolationContext)
    details: dict[str, Any] = Field(default_factory=dict)
    action_taken: str | None = None
    notification_sent_to: list[str] = Field(default_factory=list)


# ---- the upstream policy engine ---------------------------------------------------------


class PolicyEngineContext(WireModel):
    llm: dict[str, Any]
    user: dict[str, Any] | None = None
    team: dict[str, Any] | None = None
    project: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class PolicyEngineRequest(WireModel):
    """Body of the policy engine's `POST /api/evaluate`."""

    context: PolicyEngineContext
    dry_run: bool = Field(default=True, alias="dryRun")

    def to_wire(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)

    @classmethod
    def for_request(cls, request: PolicyEvaluationRequest, provider: str | None = None) -> PolicyEngineRequest:
        """The specification's evaluation request in the policy engine's terms (a dry run:
        asking about a routing change must not count as traffic)."""
        model = request.llm_request.model
        context = request.context
        llm = {"model": model, **request.llm_request.parameters} | ({"provider": provider} if provider else {})
        return cls(
            context=PolicyEngineContext(
                llm=llm,
                user={"id": context.user_id} if context.user_id else None,
                team={"id": context.team_id} if context.team_id else None,
                project={"id": context.application_id} if context.application_id else None,
                request={"id": request.request_id, "environment": context.environment},
                metadata={"source": "llm-auto-optimizer"},
            ),
            dryRun=True,
        )


class PolicyDecision(WireModel):
    """The policy engine's answer. It comes flat (`{decision, allowed, reason, ...}`) or, as
    the service sends it, nested under `decision` with camelCase names; both are read."""

    decision: str
    allowed: bool
    reason: str | None = None
    matched_policies: list[str] = Field(default_factory=list, alias="matchedPolicies")
    matched_rules: list[str] = Field(default_factory=list, alias="matchedRules")
    modifications: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _unnest(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("decision"), dict):
            return {**data["decision"], "request_id": data.get("requestId", data.get("request_id"))}
        return data

    def as_evaluation(self, request_id: str) -> PolicyEvaluation:
        """In the specification's terms: a denial blocks, a warning warns."""
        policies = ", ".join(self.matched_policies) or "policy engine"
        reason = self.reason or f"decision: {self.decision}"
        violations = []
        if not self.allowed:
            violations.append(PolicyViolation(policy_id=self.matched_policies[0] if self.matched_policies else "policy-engine",
                                              policy_name=policies, violation_type=self.decision,
                                              description=reason, severity="blocking"))
        elif self.decision.lower() == "warn":
            violations.append(PolicyViolation(policy_id=self.matched_policies[0] if self.matched_policies else "policy-engine",
                                              policy_name=policies, violation_type="warn",
                                              description=reason, severity="warning"))
        return PolicyEvaluation(request_id=request_id, allowed=self.allowed, violations=violations,
                                warnings=[v.description for v in violations if v.severity == "warning"])
