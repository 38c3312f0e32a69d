"""The event outbox: events are written in the same transaction as what they announce and
sent afterwards, so nothing is announced that was not recorded and nothing recorded goes
unannounced. An event stays pending until a sink has accepted it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from optimizer.redaction import redact
from optimizer.schemas.events import OutgoingEvent
from optimizer.warehouse._connection import transaction


def insert_events(db: duckdb.DuckDBPyConnection, events: Sequence[OutgoingEvent], now: datetime) -> None:
    """Into the outbox, inside the caller's transaction; an event already queued stays as it was."""
    for event in events:
        db.execute(
            "INSERT OR IGNORE INTO events_outbox (event_id, type, source, subject, event_time, data,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [event.id, event.type, event.source, event.subject, event.time, json.dumps(event.data), now],
        )


_SENDERS: dict[Path, threading.Lock] = {}
_SENDERS_GUARD = threading.Lock()


class Outbox:
    """Events waiting for a sink, and what became of each delivery attempt."""

    def __init__(self, db: duckdb.DuckDBPyConnection, path: Path) -> None:
        self._db = db
        with _SENDERS_GUARD:
            self._sender = _SENDERS.setdefault(path.resolve(), threading.Lock())

    @contextmanager
    def sending(self) -> Iterator[None]:
        """One sender per warehouse file at a time. Flows of one process that finish together
        (rollouts, say) would otherwise both send the same pending event and collide marking it;
        other processes cannot open the file meanwhile."""
        with self._sender:
            yield

    def queue(self, events: Sequence[OutgoingEvent]) -> None:
        """Put events in the outbox on their own; `pending` hands them to the sender."""
        with transaction(self._db) as db:
            insert_events(db, events, datetime.now(UTC))

    def pending(self) -> list[OutgoingEvent]:
        """Events not yet accepted by a sink, oldest first."""
        rows = self._db.execute(
            "SELECT event_id, type, source, subject, event_time, data FROM events_outbox"
            " WHERE delivered_at IS NULL ORDER BY created_at, event_id"
        ).fetchall()
        return [
            OutgoingEvent(id=i, type=t, source=s, subject=subject, time=at, data=json.loads(data))
            for i, t, s, subject, at, data in rows
        ]

    def mark_delivered(self, event_id: str) -> None:
        self._db.execute(
            "UPDATE events_outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL"
            " WHERE event_id = ?",
            [datetime.now(UTC), event_id],
        )

    def mark_failed(self, event_id: str, error: str) -> None:
        """Count the attempt and keep its error (the first 500 characters, no URL's credentials);
        the event stays pending."""
        self._db.execute(
            "UPDATE events_outbox SET attempts = attempts + 1, last_error = ? WHERE event_id = ?",
            [redact(error)[:500], event_id],
        )
