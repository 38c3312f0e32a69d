"""`POST /events`: CloudEvents in structured, binary or batch mode (docs/events.md), and
Sentinel's own signed webhook (optimizer/webhook/sentinel.py).

Order of business for every request: credential (401: the bearer token, or for a Sentinel
webhook its HMAC signature), size (413), a valid event whose `data` fits its type (400,
nothing accepted), then per event: duplicate (200), not ours (200, ignored), or accepted:
committed to the inbox first, then its flow run started and its id returned (202). A run that cannot start yet (Prefect unreachable, a deployment not
registered) leaves the event accepted; the dispatcher keeps trying, and the answer says
`flow_run_id: null`.
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

from optimizer.errors import BadInputError
from optimizer.events import event_as_dict, parse_http_events
from optimizer.redaction import redact
from optimizer.webhook import sentinel
from optimizer.webhook.inbox import Inbox, InboxEntry
from optimizer.webhook.routes import route_event
from optimizer.webhook.starter import FlowStarter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceiverConfig:
    token: str | None  # None only when authentication is explicitly disabled
    max_body_bytes: int = 1024 * 1024
    sentinel_secret: str | None = None  # HMAC secret of Sentinel's webhooks; None refuses them
    retry_seconds: float = 5.0  # how soon a run that could not start is tried again
    answer_wait_s: float = 5.0  # how long a request waits for its run before answering without its id


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


class Dispatcher:
    """Starts flow runs for accepted events one at a time, in the order they were accepted.

    One at a time because the Prefect API's database serialises writes anyway, and a burst
    of concurrent run creations is slower than a queue. A request waits a moment for its
    run; under load it is answered before, with the run still to come.
    """

    def __init__(self, inbox: Inbox, starter: FlowStarter, retry_seconds: float) -> None:
        self._inbox = inbox
        self._starter = starter
        self._retry_seconds = retry_seconds
        self._queue: asyncio.Queue[tuple[InboxEntry, asyncio.Future[str | None]]] = asyncio.Queue()

    def submit(self, entry: InboxEntry) -> asyncio.Future[str | None]:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((entry, future))
        return future

    async def _start(self, entry: InboxEntry) -> str | None:
        if entry.deployment is None or entry.parameters is None:
            return None
        try:
            flow_run_id = await self._starter.start(entry.deployment, entry.parameters, f"{entry.source}:{entry.id}")
        except Exception as exc:  # Prefect down or refusing: the event stays accepted and is retried
            problem = redact(str(exc))  # Prefect's API address may carry a credential
            logger.warning("could not start %s for event %s: %s", entry.deployment, entry.id, problem)
            await run_in_threadpool(self._inbox.failed, entry.source, entry.id, problem)
            return None
        await run_in_threadpool(self._inbox.started, entry.source, entry.id, flow_run_id)
        return flow_run_id

    async def run(self) -> None:
        for entry in await run_in_threadpool(self._inbox.unstarted):  # accepted before a restart
            self.submit(entry)
        while True:
            try:
                entry, future = await asyncio.wait_for(self._queue.get(), timeout=self._retry_seconds)
            except TimeoutError:
                if self._queue.empty():
                    for entry in await run_in_threadpool(self._inbox.unstarted):
                        self.submit(entry)
                continue
            flow_run_id = await self._start(entry)
            if not future.done():
                future.set_result(flow_run_id)


def create_receiver(config: ReceiverConfig, inbox: Inbox, starter: FlowStarter) -> FastAPI:
    dispatcher = Dispatcher(inbox, starter, config.retry_seconds)

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
        body = await _read_limited(request, config.max_body_bytes)
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
        starting: list[tuple[InboxEntry, asyncio.Future[str | None]]] = []
        for event, route in routed:
            deployment, parameters = route if route else (None, None)
            created, entry = await run_in_threadpool(inbox.accept, event, deployment, parameters)
            if not created:
                duplicates.append({"id": entry.id, "source": entry.source, "flow_run_id": entry.flow_run_id})
            elif route is None:
                ignored.append({"id": entry.id, "type": entry.type})
            else:
                starting.append((entry, dispatcher.submit(entry)))
        for entry, future in starting:  # give the runs a moment to start, then answer either way
            try:
                flow_run_id = await asyncio.wait_for(asyncio.shield(future), timeout=config.answer_wait_s)
            except TimeoutError:
                flow_run_id = None
            accepted.append({"id": entry.id, "source": entry.source, "flow_run_id": flow_run_id})
        if accepted:
            return _json({"accepted": accepted, "duplicates": duplicates, "ignored": ignored}, 202)
        if duplicates:
            return _json({"duplicate": True, "duplicates": duplicates, "ignored": ignored}, 200)
        return _json({"ignored": True, "events": ignored}, 200)

    return app
