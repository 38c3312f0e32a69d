"""Which platform event starts which response flow, with what parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from optimizer.errors import BadInputError
from optimizer.schemas.governance import BudgetAlertData, PolicyViolationData
from optimizer.schemas.observatory import ThresholdExceededData
from optimizer.schemas.registry import ModelUpdatedData
from optimizer.schemas.sentinel import AnomalyResolvedData, SentinelAlertData

ANOMALY_RESPONSE = "anomaly-response/anomaly-response"
BUDGET_RESPONSE = "budget-response/budget-response"
POLICY_VIOLATION_RESPONSE = "policy-violation-response/policy-violation-response"
ANOMALY_RESOLVED = "anomaly-resolved/anomaly-resolved"
MODEL_UPDATE_CHECK = "model-update-check/model-update-check"


@dataclass(frozen=True)
class Route:
    deployment: str
    schema: type[BaseModel]
    parameters: Callable[[BaseModel, dict[str, Any]], dict[str, Any]]


def _alert_parameters(data: BaseModel, event: dict[str, Any]) -> dict[str, Any]:
    return {"alert": data.model_dump(mode="json"), "event_type": event["type"], "event_id": str(event["id"])}


def _event_parameters(data: BaseModel, event: dict[str, Any]) -> dict[str, Any]:
    return {"data": data.model_dump(mode="json", exclude_none=True), "event_id": str(event["id"])}


ROUTES: dict[str, Route] = {
    "io.llm-platform.sentinel.alert": Route(ANOMALY_RESPONSE, SentinelAlertData, _alert_parameters),
    "io.llm-platform.observatory.threshold-exceeded": Route(ANOMALY_RESPONSE, ThresholdExceededData, _alert_parameters),
    "io.llm-platform.governance.budget-alert": Route(BUDGET_RESPONSE, BudgetAlertData, _alert_parameters),
    "io.llm-platform.governance.policy-violation": Route(POLICY_VIOLATION_RESPONSE, PolicyViolationData,
                                                         _event_parameters),
    "io.llm-platform.sentinel.anomaly-resolved": Route(ANOMALY_RESOLVED, AnomalyResolvedData, _event_parameters),
    "io.llm-platform.registry.model-updated": Route(MODEL_UPDATE_CHECK, ModelUpdatedData, _event_parameters),
}

# The rest of the specification's Event Type Registry, answered "ignored", and why.
_PER_REQUEST = ("per-request traffic: the optimizer reads requests in bulk from the Observatory's telemetry, "
                "not one event at a time")
_OWN = "the optimizer's own event: it emits this type and does not act on it"
IGNORED: dict[str, str] = {
    "io.llm-platform.request.received": _PER_REQUEST,
    "io.llm-platform.request.routed": _PER_REQUEST,
    "io.llm-platform.orchestrator.request-routed": _PER_REQUEST,
    "io.llm-platform.response.completed": _PER_REQUEST,
    "io.llm-platform.optimization.applied": _OWN,
    "io.llm-platform.optimization.failed": _OWN,
    "io.llm-platform.optimization.recommended": _OWN,
    "io.llm-platform.experiment.started": _OWN,
    "io.llm-platform.experiment.completed": _OWN,
}


def ignored_because(event_type: str) -> str:
    """Why an event of a type without a route is not acted on."""
    return IGNORED.get(event_type, "not a type the optimizer acts on")


def route_event(event: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(deployment, parameters) for an event the optimizer acts on; None for other types.

    Raises BadInputError when the event's `data` does not match its type's schema.
    """
    route = ROUTES.get(str(event.get("type")))
    if route is None:
        return None
    try:
        data = route.schema.model_validate(event.get("data"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f".{p}" for p in first.get("loc", ()))
        raise BadInputError(f"event {event.get('id')}: data{where}: {first.get('msg')}") from exc
    return route.deployment, route.parameters(data, event)
