"""Governance: costs, budgets and policies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from optimizer.clients._http import ServiceClient
from optimizer.schemas.governance import (
    CostRecord,
    CostRecorded,
    CostSummary,
    Policy,
    PolicyCreated,
    PolicyEvaluation,
    PolicyEvaluationRequest,
    PolicyList,
)


class GovernanceClient(ServiceClient):
    service = "governance"

    def cost_summary(
        self,
        start_date: date,
        end_date: date,
        *,
        period: str = "daily",
        group_by: Sequence[str] = ("team", "application", "model", "environment"),
        team_id: str | None = None,
    ) -> CostSummary:
        """Spend between two dates, both inclusive, broken down by `group_by`."""
        params: list[tuple[str, str]] = [
            ("period", period),
            ("start_date", start_date.isoformat()),
            ("end_date", end_date.isoformat()),
        ]
        params += [("group_by", name) for name in group_by]
        if team_id:
            params.append(("team_id", team_id))
        return self.call("GET", "costs/summary", CostSummary, params=params)

    def record_cost(self, record: CostRecord) -> CostRecorded:
        return self.call("POST", "costs/record", CostRecorded, json=record.to_wire())

    def create_policy(self, policy: Policy) -> PolicyCreated:
        return self.call("POST", "policies", PolicyCreated, json=policy.to_wire())

    def list_policies(self) -> list[Policy]:
        return self.call("GET", "policies", PolicyList).policies

    def evaluate(self, request: PolicyEvaluationRequest) -> PolicyEvaluation:
        return self.call("POST", "policies/evaluate", PolicyEvaluation, json=request.to_wire())
