"""Which platform event starts which response flow, with what parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from optimizer.errors import BadInputError
from optimizer.schemas.governance import BudgetAlertData
from optimizer.schemas.observatory import ThresholdExceededData
from optimizer.schemas.sentinel import SentinelAlertData

ANOMALY_RESPONSE = "anomaly-response/anomaly-response"
BUDGET_RESPONSE = "budget-response/budget-response"


@dataclass(frozen=True)
class Route:
    deployment: str
    schema: type[BaseModel]
    parameters: Callable[[BaseModel, dict[str, Any]], dict[str, Any]]


def _alert_parameters(data: BaseModel, event: dict[str, Any]) -> dict[str, Any]:
    return {"alert": data.model_dump(mode="json"), "event_type": event["type"], "event_id": str(event["id"])}


ROUTES: dict[str, Route] = {
    "io.llm-platform.sentinel.alert": Route(ANOMALY_RESPONSE, SentinelAlertData, _alert_parameters),
    "io.llm-platform.observatory.threshold-exceeded": Route(ANOMALY_RESPONSE, ThresholdExceededData, _alert_parameters),
    "io.llm-platform.governance.budget-alert": Route(BUDGET_RESPONSE, BudgetAlertData, _alert_parameters),
}


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
