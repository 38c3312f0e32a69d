"""CloudEvents the optimizer emits and receives (docs/events.md), on the cloudevents SDK.

Outgoing events get ids derived from what they announce, so a resend after a failed
delivery is recognisably the same event and a receiver that deduplicates by source and id
acts on it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from optimizer.clients._http import ServiceClient
from optimizer.errors import BadInputError

SOURCE = "/auto-optimizer"
EXPERIMENTS_SOURCE = "/auto-optimizer/experiments"
OPTIMIZATION_APPLIED = "io.llm-platform.optimization.applied"
OPTIMIZATION_FAILED = "io.llm-platform.optimization.failed"
OPTIMIZATION_RECOMMENDED = "io.llm-platform.optimization.recommended"
EXPERIMENT_STARTED = "io.llm-platform.experiment.started"
EXPERIMENT_COMPLETED = "io.llm-platform.experiment.completed"

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


@dataclass(frozen=True)
class OutgoingEvent:
    """An event waiting in the outbox: everything needed to send it again, identically."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: dict[str, Any]

    def to_cloudevent(self) -> CloudEvent:
        return CloudEvent(
            attributes={
                "specversion": "1.0",
                "id": self.id,
                "type": self.type,
                "source": self.source,
                "subject": self.subject,
                "time": self.time,
                "datacontenttype": "application/json",
            },
            data=self.data,
        )


def structured_message(event: OutgoingEvent) -> tuple[dict[str, str], bytes]:
    message = ce_http.to_structured_event(event.to_cloudevent())
    return dict(message.headers), message.body


def event_as_dict(event: BaseCloudEvent) -> dict[str, Any]:
    """A received event as its structured-mode JSON object."""
    document: dict[str, Any] = orjson.loads(JSONFormat().write(event))
    return document


def parse_http_events(headers: Mapping[str, str], body: bytes) -> list[BaseCloudEvent]:
    """CloudEvents from an HTTP request in structured, binary or batch mode.

    Raises BadInputError with a reason when the body is not a valid CloudEvent.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    content_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == BATCH:
            items = orjson.loads(body)
            if not isinstance(items, list) or not items:
                raise BadInputError("a batch must be a non-empty JSON array of CloudEvents")
            return [JSONFormat().read(None, orjson.dumps(item)) for item in items]
        if not any(key.startswith("ce-") for key in lowered) and content_type != STRUCTURED:
            raise BadInputError(
                f"content type {content_type or 'none'} is neither {STRUCTURED}, {BATCH} nor binary mode (ce-* headers)"
            )
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
