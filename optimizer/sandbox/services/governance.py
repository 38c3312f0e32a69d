"""Governance: costs billed by the traffic, budgets, and a small policy engine."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from fastapi import APIRouter, Query, Request, Response

from optimizer.sandbox.services._common import problem, reply, split_list, state_of
from optimizer.sandbox.state import SandboxState
from optimizer.sandbox.world import TEAMS
from optimizer.schemas.governance import (
    BudgetAlertTriggered,
    BudgetStatus,
    CostRecord,
    CostRecorded,
    EvaluatedPolicy,
    Policy,
    PolicyAdvice,
    PolicyCreated,
    PolicyEvaluation,
    PolicyEvaluationRequest,
    PolicyViolation,
)

router = APIRouter(prefix="/governance/api/v1", tags=["governance"])

DIMENSIONS = {"team": "team_id", "application": "application_id", "model": "model", "environment": "environment"}


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _spend(state: SandboxState, start_day: date, end_day: date, team_id: str | None) -> pd.DataFrame:
    """Billed requests and recorded costs of the inclusive day range, as one frame."""
    start, end = _day_start(start_day), _day_start(end_day) + timedelta(days=1)
    frame = state.billed_requests(start, end)[
        ["team_id", "application_id", "model", "environment", "cost_usd", "prompt_tokens", "completion_tokens"]
    ]
    recorded = [
        {
            "team_id": r.context.team_id,
            "application_id": r.context.application_id,
            "model": r.model,
            "environment": r.context.environment,
            "cost_usd": r.cost_usd,
            "prompt_tokens": r.tokens.input,
            "completion_tokens": r.tokens.output,
        }
        for r in state.cost_records
        if start <= r.timestamp < end
    ]
    if recorded:
        frame = pd.concat([frame, pd.DataFrame(recorded)], ignore_index=True)
    if team_id:
        frame = frame[frame["team_id"] == team_id]
    return frame


@router.get("/costs/summary")
def cost_summary(
    request: Request,
    start_date: date,
    end_date: date,
    period: str = "daily",
    group_by: list[str] = Query(default=["team", "model"]),  # noqa: B008
    team_id: str | None = None,
) -> Response:
    state = state_of(request)
    if end_date < start_date:
        return problem(400, "end_date must not be before start_date")
    if (end_date - start_date).days > 92:
        return problem(400, "a summary covers at most 92 days")
    dimensions = split_list(group_by)
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        return problem(400, f"unknown group_by {unknown}", known=sorted(DIMENSIONS))
    frame = _spend(state, start_date, end_date, team_id)
    total = float(frame["cost_usd"].sum())
    breakdown: dict[str, list[dict[str, Any]]] = {}
    for dimension in dimensions:
        column = DIMENSIONS[dimension]
        # Plain sums and a size: a third of the CPU of the same named aggregation.
        groups = frame.groupby(column, dropna=True)
        grouped = groups[["cost_usd", "prompt_tokens", "completion_tokens"]].sum().rename(
            columns={"prompt_tokens": "prompt", "completion_tokens": "completion"})
        grouped["requests"] = groups.size()
        grouped = grouped.sort_values("cost_usd", ascending=False)
        entries = []
        for key, row in grouped.iterrows():
            if dimension == "team":
                entries.append({
                    "team_id": key, "team_name": TEAMS.get(str(key), str(key)),
                    "cost_usd": round(float(row.cost_usd), 6),
                    "percentage": round(100 * float(row.cost_usd) / total, 2) if total else 0.0,
                })
            else:
                entries.append({
                    column: key,
                    "cost_usd": round(float(row.cost_usd), 6),
                    "requests": int(row.requests),
                    "tokens": int(row.prompt + row.completion),
                })
        breakdown[f"by_{dimension}"] = entries
    days = (end_date - start_date).days + 1
    previous = _spend(state, start_date - timedelta(days=days), start_date - timedelta(days=1), team_id)
    previous_total = float(previous["cost_usd"].sum())
    trends = {
        "cost_change_percentage": round(100 * (total - previous_total) / previous_total, 2) if previous_total else None,
        "request_volume_change_percentage": round(100 * (len(frame) - len(previous)) / len(previous), 2) if len(previous) else None,
    }
    return reply({
        "period": period,
        "date_range": {"start": start_date.isoformat(), "end": end_date.isoformat()},
        "total_cost_usd": round(total, 6),
        "breakdown": breakdown,
        "trends": trends,
    })


def _budget_policy(state: SandboxState, team_id: str | None) -> Policy | None:
    for policy, _, _ in state.policies().values():
        if policy.conditions.type == "cost_limit" and team_id in policy.scope.teams and policy.enabled:
            return policy
    return None


@router.post("/costs/record")
def record_cost(body: CostRecord, request: Request) -> Response:
    state = state_of(request)
    with state.lock:
        state.cost_records.append(body)
    status = BudgetStatus()
    policy = _budget_policy(state, body.context.team_id)
    if policy is not None and body.context.team_id:
        limit = float(policy.conditions.parameters["limit_usd"])
        spent = state.month_to_date_spend(body.context.team_id)
        utilisation = 100 * spent / limit
        threshold = float(policy.conditions.parameters.get("alert_threshold_percentage", 80))
        alerts = []
        if utilisation >= threshold:
            alerts.append(BudgetAlertTriggered(
                alert_type="budget_threshold", threshold_percentage=threshold,
                message=f"{TEAMS.get(body.context.team_id, body.context.team_id)} has used "
                        f"{utilisation:.1f}% of its monthly budget",
            ))
        status = BudgetStatus(
            team_budget_remaining_usd=round(limit - spent, 2),
            team_budget_utilization_percentage=round(utilisation, 2),
            alerts_triggered=alerts,
        )
    recorded = CostRecorded(record_id=f"cost-rec-{uuid.uuid4().hex[:10]}", recorded_at=state.now(), budget_status=status)
    return reply(recorded)


@router.post("/policies")
def create_policy(body: Policy, request: Request) -> Response:
    state = state_of(request)
    with state.lock:
        policies = state.policies()
        version = policies[body.policy_id][1] + 1 if body.policy_id in policies else 1
        policies[body.policy_id] = (body, version, state.now())
    created = PolicyCreated(
        policy_id=body.policy_id, status="active" if body.enabled else "disabled",
        created_at=state.now(), version=version,
    )
    return reply(created, 201)


@router.get("/policies")
def list_policies(request: Request) -> Response:
    policies = [policy for policy, _, _ in state_of(request).policies().values()]
    return reply({"total": len(policies), "policies": [p.model_dump(mode="json") for p in policies]})


def _in_scope(policy: Policy, body: PolicyEvaluationRequest) -> bool:
    scope, context = policy.scope, body.context
    return (
        (not scope.teams or context.team_id in scope.teams)
        and (not scope.environments or context.environment in scope.environments)
        and (not scope.applications or context.application_id in scope.applications)
    )


def _judge(state: SandboxState, policy: Policy, body: PolicyEvaluationRequest) -> tuple[EvaluatedPolicy, str | None]:
    """The verdict on one policy, and a violation description when it fails."""
    model_id = body.llm_request.model
    kind, parameters = policy.conditions.type, policy.conditions.parameters
    verdict = EvaluatedPolicy(policy_id=policy.policy_id, policy_name=policy.name, result="pass")
    if kind == "cost_limit":
        spent = state.month_to_date_spend(body.context.team_id or "")
        cost = body.llm_request.estimated_cost_usd or 0.0
        limit = float(parameters["limit_usd"])
        verdict.details = {
            "current_spend_usd": round(spent, 4), "request_cost_usd": cost,
            "projected_spend_usd": round(spent + cost, 4), "limit_usd": limit,
            "remaining_budget_usd": round(limit - spent - cost, 4),
        }
        if spent + cost > limit:
            verdict.result = "fail"
            return verdict, f"projected spend {spent + cost:.2f} USD exceeds the limit of {limit:.2f} USD"
        return verdict, None
    if kind in {"model_allowlist", "model_denylist"}:
        listed = model_id in parameters.get("allowed_models" if kind == "model_allowlist" else "denied_models", [])
        if listed != (kind == "model_allowlist"):
            verdict.result = "fail"
            return verdict, f"model {model_id} is {'not on the allowlist' if kind == 'model_allowlist' else 'denied'}"
        return verdict, None
    if kind == "data_residency":
        region = str(parameters.get("region", ""))
        profile = state.catalog.get(model_id)
        options = profile.compliance.data_residency_options if profile else []
        verdict.details = {"required_region": region, "model_regions": options}
        if region not in options:
            verdict.result = "fail"
            return verdict, f"model {model_id} offers no {region} data residency"
        return verdict, None
    verdict.result = "not_applicable"
    verdict.reason = f"policy type {kind!r} is not evaluated for model requests"
    return verdict, None


@router.post("/policies/evaluate")
def evaluate(body: PolicyEvaluationRequest, request: Request) -> Response:
    state = state_of(request)
    answer = evaluate_policies(state, body).model_dump(mode="json", exclude_none=True)
    if not state.policy_violations_listed:  # the REST example's shape: no `violations` list
        answer.pop("violations", None)
    return reply(answer)


def evaluate_policies(state: SandboxState, body: PolicyEvaluationRequest) -> PolicyEvaluation:
    """Every enabled policy in scope, by priority: what Governance (and the policy engine,
    over the same policies) answers."""
    evaluated, violations, warnings = [], [], []
    for policy, _, _ in sorted(state.policies().values(), key=lambda item: item[0].priority):
        if not policy.enabled or (body.policy_ids and policy.policy_id not in body.policy_ids):
            continue
        if not _in_scope(policy, body):
            evaluated.append(EvaluatedPolicy(
                policy_id=policy.policy_id, policy_name=policy.name, result="not_applicable",
                reason="request is outside the policy's scope",
            ))
            continue
        verdict, failure = _judge(state, policy, body)
        if failure:
            verdict.reason = failure
        evaluated.append(verdict)
        if failure:
            severity = "blocking" if policy.enforcement.mode == "blocking" else "warning"
            violations.append(PolicyViolation(
                policy_id=policy.policy_id, policy_name=policy.name,
                violation_type=policy.conditions.type, description=failure, severity=severity,
            ))
            if severity == "warning":
                warnings.append(f"{policy.name}: {failure}")
    advice = []
    current = state.catalog.get(body.llm_request.model)
    if current is not None:
        cheaper = min(
            (p for p in state.catalog.values() if p.provider == current.provider),
            key=lambda p: p.cost_structure.input_cost_per_1k_tokens,
        )
        if cheaper.model_id != current.model_id:
            saving = 1 - cheaper.cost_structure.input_cost_per_1k_tokens / current.cost_structure.input_cost_per_1k_tokens
            estimated = (body.llm_request.estimated_cost_usd or 0.0) * saving
            advice.append(PolicyAdvice(
                type="cost_optimization",
                message=f"Consider using {cheaper.model_id} for {100 * saving:.0f}% cost savings",
                estimated_savings_usd=round(estimated, 6),
            ))
    return PolicyEvaluation(
        request_id=body.request_id,
        allowed=not any(v.severity == "blocking" for v in violations),
        evaluated_policies=evaluated, violations=violations, warnings=warnings, recommendations=advice,
    )
