"""`POST /events`: CloudEvents in structured, binary or batch mode (docs/events.md), and
Sentinel's own signed webhook (optimizer/webhook/sentinel.py).

Order of business for every request: credential (401: the bearer token, or for a Sentinel
webhook its HMAC signature), size (413) and a body in time (408), a valid event whose `data`
fits its type (400, nothing accepted), then per event: duplicate (200), not ours (200,
ignored), or accepted (202): committed to the inbox, and answered at once. The dispatcher
(dispatcher.py) starts its flow run afterwards; until then the event's `flow_run_id` is null
(a resend, answered as a duplicate, names the run once it exists).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from optimizer.clients import RetryPolicy
from optimizer.errors import BadInputError
from optimizer.events import event_as_dict, parse_http_events
from optimizer.settings import (
    WEBHOOK_DEFAULT_MAX_BYTES,
    WEBHOOK_DEFAULT_READ_TIMEOUT_S,
    WEBHOOK_DEFAULT_START_CONCURRENCY,
)
from optimizer.webhook import sentinel
from optimizer.webhook.dispatcher import Dispatcher
from optimizer.webhook.inbox import Inbox
from optimizer.webhook.routes import ignored_because, route_event
from optimizer.webhook.starter import FlowStarter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceiverConfig:
    token: str | None  # None only when authentication is explicitly disabled
    max_body_bytes: int = WEBHOOK_DEFAULT_MAX_BYTES
    sentinel_secret: str | None = None  # HMAC secret of Sentinel's webhooks; None refuses them
    # How long a client may take to send a request's headers (deadlines.py), then its body.
    read_timeout_s: float = WEBHOOK_DEFAULT_READ_TIMEOUT_S
    start_concurrency: int = WEBHOOK_DEFAULT_START_CONCURRENCY  # flow runs started at once
    # A run that could not start is tried again after `first_retry_s`, doubling up to `max_retry_s`.
    first_retry_s: float = 1.0
    max_retry_s: float = 60.0


def _json(payload: Any, status: int) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _error(status: int, reason: str) -> Response:
    return _json({"error": reason}, status)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_receiver(config: ReceiverConfig, inbox: Inbox, starter: FlowStarter) -> FastAPI:
    retry = RetryPolicy(backoff_s=config.first_retry_s, max_backoff_s=config.max_retry_s)
    dispatcher = Dispatcher(inbox, starter, concurrency=config.start_concurrency, retry=retry)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(dispatcher.run())
        yield
        task.cancel()
        await starter.close()

    app = FastAPI(title="LLM Auto-Optimizer webhook receiver", lifespan=lifespan)

    @app.get("/health")
    async def health() -> Response:
        return _json({"status": "ok", "events": await run_in_threadpool(inbox.count)}, 200)

    def unauthorized(reason: str) -> Response:
        response = _error(401, reason)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def bearer_ok(request: Request) -> bool:
        if config.token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {config.token}".encode())

    @app.post("/events")
    async def receive(request: Request) -> Response:
        # Sentinel's webhooks authenticate by their signature alone (checked once the body is
        # read), whatever else they carry; CloudEvents by the bearer token.
        from_sentinel = sentinel.is_sentinel_webhook(request.headers)
        if not from_sentinel and not bearer_ok(request):
            return unauthorized("missing or invalid bearer token")
        try:
            async with asyncio.timeout(config.read_timeout_s):
                body = await _read_limited(request, config.max_body_bytes)
        except TimeoutError:
            response = _error(408, f"the body did not arrive within {config.read_timeout_s:g} s")
            response.headers["Connection"] = "close"  # what is still on its way is not read
            return response
        except ClientDisconnect:  # the client is gone: nobody reads an answer, so no error either
            client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
            logger.info("%s disconnected before sending the whole body of %s %s", client, request.method,
                        request.url.path)
            return Response(status_code=400)
        if body is None:
            return _error(413, f"body larger than {config.max_body_bytes} bytes")
        if from_sentinel:
            signature = request.headers.get(sentinel.SIGNATURE_HEADER)
            if config.sentinel_secret is None:
                return unauthorized("Sentinel webhooks are not accepted here: no signing secret is configured")
            if signature is None:
                return unauthorized(f"a Sentinel webhook needs its {sentinel.SIGNATURE_HEADER} header")
            if not sentinel.signature_valid(body, signature, config.sentinel_secret):
                return unauthorized("X-Sentinel-Signature does not match the body")
        try:
            if from_sentinel:
                events = [sentinel.event_from_webhook(body)]
            else:
                events = [event_as_dict(e) for e in parse_http_events(dict(request.headers), body)]
            routed = [(event, route_event(event)) for event in events]
        except BadInputError as exc:
            return _error(400, str(exc))
        accepted: list[dict[str, str | None]] = []
        duplicates: list[dict[str, str | None]] = []
        ignored: list[dict[str, str]] = []
        for event, route in routed:
            deployment, parameters = route if route else (None, None)
            created, entry = await run_in_threadpool(inbox.accept, event, deployment, parameters)
            if not created:
                duplicates.append({"id": entry.id, "source": entry.source, "flow_run_id": entry.flow_run_id})
            elif route is None:
                ignored.append({"id": entry.id, "type": entry.type, "reason": ignored_because(entry.type)})
            else:  # durable now: answered without waiting for the run, which the dispatcher starts
                dispatcher.submit(entry)
                accepted.append({"id": entry.id, "source": entry.source, "flow_run_id": None})
        if accepted:
            return _json({"accepted": accepted, "duplicates": duplicates, "ignored": ignored}, 202)
        if duplicates:
            return _json({"duplicate": True, "duplicates": duplicates, "ignored": ignored}, 200)
        return _json({"ignored": True, "events": ignored}, 200)

    return app
