"""Budget utilisation per team: month-to-date spend against the Governance budget policy,
projected to the end of the month at the current daily rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from optimizer.schemas.analysis import TeamBudgetStatus
from optimizer.schemas.governance import Policy


@dataclass(frozen=True)
class TeamBudget:
    team_id: str
    limit_usd: float
    alert_threshold_pct: float
    policy_id: str


def team_budgets(policies: Sequence[Policy]) -> list[TeamBudget]:
    """Each team's monthly cost limit, from Governance's enabled `cost_limit` policies."""
    return [
        TeamBudget(team_id=team, limit_usd=float(p.conditions.parameters["limit_usd"]),
                   alert_threshold_pct=float(p.conditions.parameters.get("alert_threshold_percentage", 80)),
                   policy_id=p.policy_id)
        for p in policies
        if p.enabled and p.conditions.type == "cost_limit"
        and p.conditions.parameters.get("period", "monthly") == "monthly" and "limit_usd" in p.conditions.parameters
        for team in p.scope.teams
    ]


def budget_statuses(
    budgets: Sequence[TeamBudget],
    month_to_date_usd: Mapping[str, float],
    *,
    days_elapsed: float,
    days_in_month: int,
    monthly_savings_usd: Mapping[str, float],
    team_names: Mapping[str, str],
) -> list[TeamBudgetStatus]:
    """One status per budgeted team; `flagged` when spend or its projection passes the alert threshold."""
    statuses = []
    for budget in sorted(budgets, key=lambda b: b.team_id):
        spent = month_to_date_usd.get(budget.team_id, 0.0)
        projected = spent / days_elapsed * days_in_month if days_elapsed > 0 else spent
        utilisation = 100 * spent / budget.limit_usd if budget.limit_usd else 0.0
        projected_pct = 100 * projected / budget.limit_usd if budget.limit_usd else 0.0
        savings = monthly_savings_usd.get(budget.team_id, 0.0)
        statuses.append(
            TeamBudgetStatus(
                team_id=budget.team_id,
                team_name=team_names.get(budget.team_id, budget.team_id),
                policy_id=budget.policy_id,
                limit_usd=budget.limit_usd,
                month_to_date_usd=spent,
                utilization_pct=utilisation,
                projected_month_usd=projected,
                projected_utilization_pct=projected_pct,
                alert_threshold_pct=budget.alert_threshold_pct,
                flagged=max(utilisation, projected_pct) >= budget.alert_threshold_pct,
                recommended_monthly_savings_usd=savings,
                projected_with_savings_usd=max(projected - savings * (days_in_month - days_elapsed) / days_in_month, 0.0),
            )
        )
    return statuses


def split_by_share(total: float, parts: Mapping[str, float]) -> dict[str, float]:
    """`total` divided in proportion to `parts` (nothing to divide by: nothing)."""
    whole = sum(parts.values())
    return {key: total * value / whole for key, value in parts.items()} if whole > 0 else {}
