"""Budgets: each team's month so far against its Governance budget policy."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from optimizer.analysis.budgets import budget_statuses, split_by_share, team_budgets
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.schemas.analysis import TeamBudgetStatus


def check_budgets(
    runtime: Runtime, window_end: datetime, savings_by_team: Mapping[str, float], *, log: Log = LOG
) -> list[TeamBudgetStatus]:
    """Each team's month so far against its monthly cost-limit policy.

    Where the cost source has no team breakdown (the Observatory's analytics API), the
    month's total is split by each team's share of the request costs the warehouse holds
    for the month: the total stays the platform's, the split is an estimate.
    """
    last_day = (window_end - timedelta(microseconds=1)).date()
    month_start = last_day.replace(day=1)
    with runtime.clients() as clients:
        budgets = team_budgets(clients.governance.list_policies())
        month = clients.cost_summary(month_start, last_day, group_by=["team"])
    spend = {t.team_id: t.cost_usd for t in month.breakdown.by_team}
    if not spend and budgets:
        with runtime.warehouse() as store:
            held = store.reference.team_spend(month_start, last_day)
        spend = split_by_share(month.total_cost_usd, held)
        log.info("no team breakdown from the cost source: the month's %.2f USD split by the "
                 "teams' shares of request costs in the warehouse", month.total_cost_usd)
    statuses = budget_statuses(
        budgets, spend,
        days_elapsed=(window_end - datetime(month_start.year, month_start.month, 1, tzinfo=UTC)).total_seconds() / 86400,
        days_in_month=calendar.monthrange(month_start.year, month_start.month)[1],
        monthly_savings_usd=savings_by_team,
        team_names={t.team_id: t.team_name or t.team_id for t in month.breakdown.by_team},
    )
    log.info("budgets: %d teams, over alert threshold: %s", len(statuses),
             [s.team_id for s in statuses if s.flagged] or "none")
    return statuses
