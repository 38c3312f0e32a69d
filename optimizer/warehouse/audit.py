"""The audit log: who approved, applied, restored or stopped what, and when."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import duckdb


class AuditLog:
    """Entries are only ever added."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def record(self, actor: str, action: str, subject: str, details: Mapping[str, object] | None = None) -> None:
        """Who did what to which subject; `details` is stored as JSON (values it cannot encode as text)."""
        self._db.execute(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?)",
            [uuid.uuid4().hex, datetime.now(UTC), actor, action, subject, json.dumps(details or {}, default=str)],
        )

    def entries(self, subject: str) -> list[dict[str, object]]:
        """What happened to one subject, oldest first."""
        rows = self._db.execute(
            "SELECT occurred_at, actor, action, details FROM audit_log WHERE subject = ? ORDER BY occurred_at",
            [subject]).fetchall()
        return [{"occurred_at": at, "actor": actor, "action": action, "details": json.loads(details or "{}")}
                for at, actor, action, details in rows]
