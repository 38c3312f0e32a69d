"""Which findings become approval requests tonight: one per application, never the same
change twice, never while the application has a change live or under experiment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from optimizer.schemas.optimizations import Optimization, fingerprint
from optimizer.schemas.rollout import ProposedChange


@dataclass
class ProposalPlan:
    new: list[Optimization] = field(default_factory=list)
    superseded: list[Optimization] = field(default_factory=list)  # in their new status
    skipped: dict[str, str] = field(default_factory=dict)  # application -> why not


def plan_proposals(
    changes: Sequence[ProposedChange], known: Sequence[Optimization], *, run_id: str, now: datetime,
) -> ProposalPlan:
    """`changes` are tonight's adopted changes; `known` every optimization so far."""
    plan = ProposalPlan()
    by_app: dict[str, list[ProposedChange]] = {}
    for change in changes:
        by_app.setdefault(change.application_id, []).append(change)
    seen = {o.fingerprint for o in known}
    for application, mine in sorted(by_app.items()):
        print_ = fingerprint(mine)
        current = [o for o in known if o.application_id == application]
        busy = next((o for o in current if o.status in {"experimenting"}), None)
        waiting = [o for o in current if o.status == "waiting_approval"]
        if busy is not None:
            plan.skipped[application] = f"{busy.optimization_id} is under experiment"
        elif print_ in seen:
            plan.skipped[application] = "this change was proposed before"
        else:
            plan.superseded += [o.moved("superseded", f"replaced by a newer finding of {run_id}", now)
                                for o in waiting]
            plan.new.append(Optimization(
                optimization_id=f"opt-{run_id}-{application}", application_id=application, changes=mine,
                fingerprint=print_, status="waiting_approval", reason="asked for approval",
                proposed_by=run_id, proposed_at=now, updated_at=now,
                forecast_monthly_savings_usd=sum(c.monthly_savings_usd or 0.0 for c in mine),
                history=[f"{now.isoformat()} waiting_approval: found by {run_id}"],
            ))
    return plan
