"""CloudEvents the optimizer emits and receives (docs/events.md), on the cloudevents SDK.

What is emitted (types, sources, the outbox's events) is plain data in
`optimizer.schemas.events`; this module puts it on the wire, reads what arrives, and
delivers to an HTTP sink.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from optimizer.clients import ServiceClient
from optimizer.errors import BadInputError
from optimizer.schemas.events import OutgoingEvent

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


def as_cloudevent(event: OutgoingEvent) -> CloudEvent:
    return CloudEvent(
        attributes={
            "specversion": "1.0",
            "id": event.id,
            "type": event.type,
            "source": event.source,
            "subject": event.subject,
            "time": event.time,
            "datacontenttype": "application/json",
        },
        data=event.data,
    )


def structured_message(event: OutgoingEvent) -> tuple[dict[str, str], bytes]:
    message = ce_http.to_structured_event(as_cloudevent(event))
    return dict(message.headers), message.body


def event_as_dict(event: BaseCloudEvent) -> dict[str, Any]:
    """A received event as its structured-mode JSON object."""
    document: dict[str, Any] = orjson.loads(JSONFormat().write(event))
    return document


REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")


def _require_attributes(attributes: Mapping[str, Any], where: str) -> None:
    """CloudEvents 1.0's required context attributes, present and not made up: the SDK would
    invent an id (so a resend would count as a new event) and assume a version."""
    missing = [name for name in REQUIRED_ATTRIBUTES if not isinstance(attributes.get(name), str)
               or not attributes[name]]
    if missing:
        raise BadInputError(f"{where} lacks the required attribute(s) {', '.join(missing)}")
    if attributes["specversion"] != "1.0":
        raise BadInputError(f"{where} has specversion {attributes['specversion']!r}; only 1.0 is accepted")


def parse_http_events(headers: Mapping[str, str], body: bytes) -> list[BaseCloudEvent]:
    """CloudEvents from an HTTP request in structured, binary or batch mode.

    Raises BadInputError with a reason when the body is not a valid CloudEvent 1.0 with its
    required attributes (`id`, `source`, `type`, `specversion`).
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    content_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == BATCH:
            items = orjson.loads(body)
            if not isinstance(items, list) or not items:
                raise BadInputError("a batch must be a non-empty JSON array of CloudEvents")
            for number, item in enumerate(items):
                if not isinstance(item, dict):
                    raise BadInputError(f"batch item {number} is not a JSON object")
                _require_attributes(item, f"batch item {number}")
            return [JSONFormat().read(None, orjson.dumps(item)) for item in items]
        if any(key.startswith("ce-") for key in lowered):
            _require_attributes({name: lowered.get(f"ce-{name}") for name in REQUIRED_ATTRIBUTES}, "the event")
        elif content_type != STRUCTURED:
            raise BadInputError(
                f"content type {content_type or 'none'} is neither {STRUCTURED}, {BATCH} nor binary mode (ce-* headers)"
            )
        else:
            document = orjson.loads(body)
            if not isinstance(document, dict):
                raise BadInputError("a structured CloudEvent must be a JSON object")
            _require_attributes(document, "the event")
        return [ce_http.from_http_event(ce_http.HTTPMessage(headers=dict(lowered), body=body))]
    except BadInputError:
        raise
    except Exception as exc:  # the SDK raises several types for malformed input
        raise BadInputError(f"not a valid CloudEvent: {exc}".splitlines()[0]) from exc


class EventSinkClient(ServiceClient):
    """Delivers events to an HTTP endpoint in structured content mode."""

    service = "event sink"

    def __init__(self, url: str, token: str | None, **options: Any) -> None:
        super().__init__(url, token, **options)
        self.url = url

    def deliver(self, event: OutgoingEvent) -> None:
        headers, body = structured_message(event)
        self.request("POST", self.url, content=body, headers=headers | {"Idempotency-Key": event.id})
