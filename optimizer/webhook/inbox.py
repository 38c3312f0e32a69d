"""The receiver's durable inbox: an event counts as accepted once its row is committed.

SQLite (WAL, synchronous=FULL) rather than the warehouse: the receiver runs all the time
beside flows that hold the DuckDB file, and an acceptance must never wait on their lock.
The primary key (source, id) is what makes a redelivered event a duplicate.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    received_at TEXT NOT NULL,
    event TEXT NOT NULL,
    deployment TEXT,
    parameters TEXT,
    flow_run_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (source, id)
);
"""


@dataclass(frozen=True)
class InboxEntry:
    source: str
    id: str
    type: str
    deployment: str | None
    parameters: dict[str, Any] | None
    flow_run_id: str | None


class Inbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def accept(
        self, event: dict[str, Any], deployment: str | None, parameters: dict[str, Any] | None
    ) -> tuple[bool, InboxEntry]:
        """Record an event; (False, the earlier entry) when this source and id were seen before."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO inbox (source, id, type, received_at, event, deployment, parameters)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (str(event["source"]), str(event["id"]), str(event["type"]), datetime.now(UTC).isoformat(),
                 json.dumps(event, default=str), deployment, json.dumps(parameters, default=str) if parameters else None),
            )
            created = cursor.rowcount == 1
        entry = self.get(str(event["source"]), str(event["id"]))
        assert entry is not None
        return created, entry

    def get(self, source: str, event_id: str) -> InboxEntry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT source, id, type, deployment, parameters, flow_run_id FROM inbox WHERE source = ? AND id = ?",
                (source, event_id),
            ).fetchone()
        return _entry(row) if row else None

    def started(self, source: str, event_id: str, flow_run_id: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE inbox SET flow_run_id = ?, attempts = attempts + 1, last_error = NULL WHERE source = ? AND id = ?",
                (flow_run_id, source, event_id),
            )

    def failed(self, source: str, event_id: str, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE inbox SET attempts = attempts + 1, last_error = ? WHERE source = ? AND id = ?",
                (error[:500], source, event_id),
            )

    def unstarted(self) -> list[InboxEntry]:
        """Accepted events that should start a flow run and have not yet."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source, id, type, deployment, parameters, flow_run_id FROM inbox"
                " WHERE deployment IS NOT NULL AND flow_run_id IS NULL ORDER BY received_at"
            ).fetchall()
        return [_entry(row) for row in rows]

    def count(self) -> int:
        with self._lock:
            (total,) = self._db.execute("SELECT count(*) FROM inbox").fetchone()
        return int(total)


def _entry(row: tuple[Any, ...]) -> InboxEntry:
    source, event_id, kind, deployment, parameters, flow_run_id = row
    return InboxEntry(source, event_id, kind, deployment, json.loads(parameters) if parameters else None, flow_run_id)
