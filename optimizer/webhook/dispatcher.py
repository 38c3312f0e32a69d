"""Starting the flow runs of accepted events, apart from the requests that brought them.

A request is answered once its events are committed to the inbox, so a sender never waits on
Prefect; the dispatcher starts their runs afterwards, a bounded number at once (the starter
sends those in progress together to Prefect as one request, starter.py). A run that cannot start (Prefect unreachable,
a deployment not registered yet) is tried again after a backoff that doubles, with jitter, up
to a ceiling: the event was acknowledged, so the dispatcher never gives up on it, and a
Prefect outage is not met with a retry storm. What the inbox holds unstarted at startup
(accepted by a process that was stopped or killed) is started first. Each start carries the
event's source and id as Prefect's idempotency key, so a start repeated after a crash
returns the run the first one created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from starlette.concurrency import run_in_threadpool

from optimizer.clients import RetryPolicy
from optimizer.redaction import redact
from optimizer.webhook.inbox import Inbox, InboxEntry
from optimizer.webhook.starter import FlowStarter

logger = logging.getLogger(__name__)

Key = tuple[str, str]
MAX_EXPONENT = 64


class Dispatcher:
    def __init__(self, inbox: Inbox, starter: FlowStarter, *, concurrency: int, retry: RetryPolicy,
                 rng: random.Random | None = None) -> None:
        """`retry`: its backoff only; the dispatcher keeps trying however many attempts fail."""
        self._inbox = inbox
        self._starter = starter
        self._concurrency = concurrency
        self._retry = retry
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[InboxEntry] = asyncio.Queue()
        self._pending: set[Key] = set()  # queued, starting, or waiting to be tried again
        self._failures: dict[Key, int] = {}
        self._retries: set[asyncio.TimerHandle] = set()

    def submit(self, entry: InboxEntry) -> None:
        """Start `entry`'s run soon (once, however often it is submitted before it starts)."""
        key = (entry.source, entry.id)
        if entry.deployment is None or entry.parameters is None or key in self._pending:
            return
        self._pending.add(key)
        self._queue.put_nowait(entry)

    async def run(self) -> None:
        """Start what the inbox holds unstarted, then every submitted entry, until cancelled."""
        try:
            for entry in await run_in_threadpool(self._inbox.unstarted):
                self.submit(entry)
            async with asyncio.TaskGroup() as workers:
                for _ in range(self._concurrency):
                    workers.create_task(self._work())
        finally:
            for handle in self._retries:
                handle.cancel()

    async def _work(self) -> None:
        while True:
            entry = await self._queue.get()
            key = (entry.source, entry.id)
            try:
                await self._start(entry)
            except Exception as exc:  # Prefect down or refusing: the event stays accepted and is retried
                await self._again_later(entry, exc)
            else:
                self._pending.discard(key)
                self._failures.pop(key, None)

    async def _start(self, entry: InboxEntry) -> None:
        assert entry.deployment is not None and entry.parameters is not None
        flow_run_id = await self._starter.start(entry.deployment, entry.parameters, f"{entry.source}:{entry.id}")
        await run_in_threadpool(self._inbox.started, entry.source, entry.id, flow_run_id)

    async def _again_later(self, entry: InboxEntry, exc: Exception) -> None:
        key = (entry.source, entry.id)
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        # The ceiling is reached long before the exponent could overflow a float.
        delay = self._retry.delay(min(failures, MAX_EXPONENT), None, self._rng)
        reason = _reason(exc)
        logger.warning("could not start %s for event %s (attempt %d; next in %.1f s): %s",
                       entry.deployment, entry.id, failures, delay, reason)
        with contextlib.suppress(Exception):  # the attempt is recorded when the inbox can take it
            await run_in_threadpool(self._inbox.failed, entry.source, entry.id, reason)

        def requeue() -> None:
            self._retries.discard(handle)
            self._queue.put_nowait(entry)

        handle = asyncio.get_running_loop().call_later(delay, requeue)
        self._retries.add(handle)


def _reason(exc: Exception) -> str:
    """What went wrong, in a line: some of Prefect's errors say nothing but their name, and
    Prefect's API address may carry a credential."""
    lines = str(exc).strip().splitlines()
    first = redact(lines[0]) if lines else ""
    return f"{type(exc).__name__}: {first}" if first and first != "None" else type(exc).__name__
