"""A deadline for a request's headers, where the ASGI app cannot see them: uvicorn closes a
connection left idle (keep-alive), but a client that sends its headers a byte at a time
holds its connection for as long as it likes, and with it a place among the server's
connections. The app bounds the body's read itself (`receive` in app.py answers 408).

The protocol is uvicorn's h11 one (pure Python, so the same wherever the receiver runs),
watched: from the moment a connection opens, or a response completes, the next request's
headers must be complete within the timeout, or the connection is closed. Bytes a client
still sends after its answer (the rest of a body the app did not read, say) count against
the same deadline.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)


class HeadDeadlineProtocol(H11Protocol):
    head_timeout_s = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Armed while no request is in progress, disarmed once one's headers are in: the app
        then has the request, and its own deadline for the body."""
        in_request = self.cycle is not None and not self.cycle.response_complete
        if in_request:
            self._disarm()
        elif self._deadline is None and not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.head_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            answered = self.cycle is not None and self.conn.their_state is h11.SEND_BODY
            what = "the rest of a request already answered" if answered else "a request's headers"
            logger.info("closed the connection of %s: %s did not arrive within %g s", client, what, self.head_timeout_s)
            self.transport.close()


def head_deadline_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """The protocol class to serve the receiver with (uvicorn's `http`), for `timeout_s`."""

    class Protocol(HeadDeadlineProtocol):
        head_timeout_s = timeout_s

    return Protocol
