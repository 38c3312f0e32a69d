"""An A/B experiment asked for through the optimizer's API (`POST /experiments`), as the
rollout it becomes.

Nothing reaches the routing without a person's approval, whoever asks: the request starts a
run of the `rollout` flow, which checks the change against Governance, waits for an approver,
then sends the treatment's share of the application's traffic to the change for the
experiment's duration and keeps or restores it by its guardrails. The treatment variant's
`configuration` is the routing change (a `ProposedChange`: application, kind and its fields);
the control is the routing as it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from optimizer.errors import BadInputError
from optimizer.schemas.registry import ExperimentRequest
from optimizer.schemas.rollout import ProposedChange

CONTROL = "control"
DEFAULT_TREATMENT_PERCENT = 10.0
DEFAULT_DURATION_HOURS = 0.5


@dataclass(frozen=True)
class ExperimentRollout:
    experiment_id: str  # stable for the same request: asking twice starts one run
    change: ProposedChange
    treatment_percent: float
    watch_minutes: float

    def parameters(self, requested_by: str) -> dict[str, Any]:
        """The `rollout` flow's parameters."""
        return {
            "changes": [self.change.model_dump(mode="json")], "requested_by": requested_by,
            "canary_percent": self.treatment_percent, "watch_minutes": self.watch_minutes,
        }


def _treatment_percent(request: ExperimentRequest, treatment: str) -> float:
    allocation = request.traffic_allocation
    if not allocation:
        return DEFAULT_TREATMENT_PERCENT
    if set(allocation) - {CONTROL, treatment}:
        raise BadInputError(f"traffic_allocation names variants not in the request: "
                            f"{', '.join(sorted(set(allocation) - {CONTROL, treatment}))}")
    total = sum(allocation.values())
    share = allocation.get(treatment, 0.0) / total if total > 0 else 0.0
    if not 0 < share < 1:
        raise BadInputError("traffic_allocation must give the treatment a share between 0 and 1, the control the rest")
    return round(100 * share, 4)


def experiment_rollout(request: ExperimentRequest) -> ExperimentRollout:
    """Raises BadInputError unless the request has one `control` variant and one treatment
    whose configuration is a valid routing change."""
    ids = [v.variant_id for v in request.variants]
    treatments = [v for v in request.variants if v.variant_id != CONTROL]
    if ids.count(CONTROL) != 1 or len(treatments) != 1:
        raise BadInputError("an experiment needs exactly two variants: `control` (the routing as it is) and one "
                            "treatment whose configuration is the routing change")
    treatment = treatments[0]
    criteria = request.success_criteria
    reason = " ".join(part for part in (
        f"requested as experiment {request.name!r}", request.description,
        f"success: {criteria.primary_metric}" + (f" improved by {criteria.min_improvement_percentage:g}%"
                                                 if criteria.min_improvement_percentage is not None else "")
        if criteria else None,
    ) if part)
    try:
        change = ProposedChange.model_validate({"reason": reason, **treatment.configuration})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadInputError(f"variant {treatment.variant_id}: configuration is not a routing change ({problems})") \
            from None
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True)
    return ExperimentRollout(
        experiment_id=f"exp-api-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}", change=change,
        treatment_percent=_treatment_percent(request, treatment.variant_id),
        watch_minutes=60 * (request.duration_hours if request.duration_hours is not None else DEFAULT_DURATION_HOURS),
    )
