"""An event sink: accepts CloudEvents in any HTTP mode and keeps them, once per source and id."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from optimizer.errors import BadInputError
from optimizer.events import event_as_dict, parse_http_events
from optimizer.sandbox.services._common import problem, reply, state_of

router = APIRouter(tags=["events"])


@router.post("/events")
async def receive(request: Request) -> Response:
    state = state_of(request)
    try:
        events = parse_http_events(dict(request.headers), await request.body())
    except BadInputError as exc:
        return problem(400, str(exc))
    accepted = duplicates = 0
    with state.lock:
        for event in events:
            document = event_as_dict(event)
            key = (str(document["source"]), str(document["id"]))
            if key in state.events:
                duplicates += 1
                continue
            state.events[key] = document
            accepted += 1
    return reply({"accepted": accepted, "duplicates": duplicates}, 202)


@router.get("/events")
def list_events(request: Request, type: str | None = None) -> Response:
    events = [e for e in state_of(request).events.values() if type is None or e["type"] == type]
    return reply({"total": len(events), "events": events})
