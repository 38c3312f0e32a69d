"""Budgets: each team's month so far against its Governance budget policy."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from optimizer.analysis.budgets import TeamBudget, budget_statuses, split_by_share
from optimizer.clients import PlatformClients
from optimizer.schemas.analysis import TeamBudgetStatus
from optimizer.warehouse import Warehouse
from tasks._common import retry_if_transient, settings


@task(name="check-budgets", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def check_budgets(window_end: datetime, savings_by_team: dict[str, float], warehouse: Path) -> list[TeamBudgetStatus]:
    """Each team's month so far against its monthly cost-limit policy.

    Where the cost source has no team breakdown (the Observatory's analytics API), the
    month's total is split by each team's share of the request costs the warehouse holds
    for the month: the total stays the platform's, the split is an estimate.
    """
    last_day = (window_end - timedelta(microseconds=1)).date()
    month_start = last_day.replace(day=1)
    with PlatformClients.from_settings(settings()) as clients:
        budgets = [
            TeamBudget(team_id=team, limit_usd=float(p.conditions.parameters["limit_usd"]),
                       alert_threshold_pct=float(p.conditions.parameters.get("alert_threshold_percentage", 80)),
                       policy_id=p.policy_id)
            for p in clients.governance.list_policies()
            if p.enabled and p.conditions.type == "cost_limit"
            and p.conditions.parameters.get("period", "monthly") == "monthly" and "limit_usd" in p.conditions.parameters
            for team in p.scope.teams
        ]
        month = clients.cost_summary(month_start, last_day, group_by=["team"])
    spend = {t.team_id: t.cost_usd for t in month.breakdown.by_team}
    if not spend and budgets:
        with Warehouse(warehouse) as store:
            held = store.reference.team_spend(month_start, last_day)
        spend = split_by_share(month.total_cost_usd, held)
        get_run_logger().info("no team breakdown from the cost source: the month's %.2f USD split by the "
                              "teams' shares of request costs in the warehouse", month.total_cost_usd)
    statuses = budget_statuses(
        budgets,
        spend,
        days_elapsed=(window_end - datetime(month_start.year, month_start.month, 1, tzinfo=UTC)).total_seconds() / 86400,
        days_in_month=calendar.monthrange(month_start.year, month_start.month)[1],
        monthly_savings_usd=savings_by_team,
        team_names={t.team_id: t.team_name or t.team_id for t in month.breakdown.by_team},
    )
    flagged = [s.team_id for s in statuses if s.flagged]
    get_run_logger().info("budgets: %d teams, over alert threshold: %s", len(statuses), flagged or "none")
    return statuses
