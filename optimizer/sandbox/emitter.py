"""The platform's own events, sent by the sandbox to a subscriber (the optimizer's webhook
receiver): any type of the specification's Event Type Registry on request, and the Registry's
`model-updated` when a model's profile is changed here. Admin routes, under `/_sandbox`."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from optimizer.events import structured_message
from optimizer.sandbox.services._common import reply, state_of
from optimizer.schemas.events import OutgoingEvent

router = APIRouter(prefix="/_sandbox", tags=["sandbox"])

# Each type's source, as the specification's Event Type Registry lists it.
SOURCES: dict[str, str] = {
    "io.llm-platform.request.received": "/orchestrator",
    "io.llm-platform.request.routed": "/orchestrator/router",
    "io.llm-platform.response.completed": "/orchestrator",
    "io.llm-platform.observatory.threshold-exceeded": "/observatory/alerting",
    "io.llm-platform.sentinel.alert": "/sentinel/anomaly-detector",
    "io.llm-platform.sentinel.anomaly-resolved": "/sentinel/anomaly-detector",
    "io.llm-platform.governance.policy-violation": "/governance/policy-enforcer",
    "io.llm-platform.governance.budget-alert": "/governance/cost-tracker",
    "io.llm-platform.registry.model-updated": "/registry",
}


class Subscriber(BaseModel):
    url: str  # where events go, e.g. the receiver's POST /events
    token: str | None = None  # sent as a bearer token


class Emission(BaseModel):
    type: str
    data: dict[str, Any]
    id: str | None = None  # a fresh one when omitted
    subject: str = ""


class ModelChange(BaseModel):
    """What changes in a model's Registry profile."""

    status: str | None = None
    deprecation_date: date | None = None
    input_cost_per_1k_tokens: float | None = Field(default=None, ge=0)
    output_cost_per_1k_tokens: float | None = Field(default=None, ge=0)
    quality_scores: dict[str, float] | None = None


class PolicyAnswers(BaseModel):
    list_violations: bool = True  # false: `POST /policies/evaluate` answers exactly as the REST example


def send(request: Request, emission: Emission) -> dict[str, Any]:
    """The event sent to the subscriber (structured mode), and how it answered."""
    state = state_of(request)
    if state.subscriber is None:
        raise HTTPException(409, "no subscriber: PUT /_sandbox/subscriber first")
    if emission.type not in SOURCES:
        raise HTTPException(422, f"{emission.type} is not a platform event type the sandbox emits")
    event = OutgoingEvent(id=emission.id or f"sandbox-{uuid.uuid4().hex[:12]}", type=emission.type,
                          source=SOURCES[emission.type], subject=emission.subject or emission.type.rsplit(".", 1)[1],
                          time=state.now(), data=emission.data)
    headers, body = structured_message(event)
    if state.subscriber.token:
        headers["Authorization"] = f"Bearer {state.subscriber.token}"
    answer = httpx.post(state.subscriber.url, content=body, headers=headers, timeout=30)
    try:
        answered: Any = answer.json()
    except ValueError:
        answered = answer.text
    return {"id": event.id, "type": event.type, "source": event.source, "status": answer.status_code,
            "answer": answered}


@router.put("/subscriber")
def set_subscriber(body: Subscriber, request: Request) -> Response:
    state_of(request).subscriber = body
    return reply({"url": body.url})


@router.post("/emit")
def emit(body: Emission, request: Request) -> Response:
    return reply(send(request, body))


@router.patch("/models/{model_id}")
def change_model(model_id: str, body: ModelChange, request: Request) -> Response:
    """Change a model's profile in the Registry, and tell the subscriber (`registry.model-updated`)."""
    state = state_of(request)
    with state.lock:
        before = state.catalog.get(model_id)
        if before is None:
            raise HTTPException(404, f"no model {model_id}")
        changes = body.model_dump(exclude_none=True)
        prices: dict[str, Any] = {k: changes.pop(k) for k in ("input_cost_per_1k_tokens", "output_cost_per_1k_tokens")
                                  if k in changes}
        quality = changes.pop("quality_scores", None)
        performance = before.performance_characteristics.model_copy(
            update={"quality_scores": quality} if quality is not None else {})
        after = before.model_copy(update={**changes, "cost_structure": before.cost_structure.model_copy(update=prices),
                                          "performance_characteristics": performance})
        state.catalog[model_id] = after
    changed = [*changes, *(f"cost_structure.{k}" for k in prices),
               *(["performance_characteristics.quality_scores"] if quality is not None else [])]
    data = {"model_id": model_id, "changed_fields": changed,
            "previous": before.model_dump(mode="json", include={"status", "deprecation_date", "cost_structure"}),
            "profile": after.model_dump(mode="json", exclude_none=True)}
    delivered = send(request, Emission(type="io.llm-platform.registry.model-updated", data=data,
                                       subject=f"model/{model_id}")) if state.subscriber else None
    return reply({"profile": data["profile"], "delivered": delivered})


@router.put("/governance")
def set_policy_answers(body: PolicyAnswers, request: Request) -> Response:
    state_of(request).policy_violations_listed = body.list_violations
    return reply(body)
