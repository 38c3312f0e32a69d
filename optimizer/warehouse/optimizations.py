"""Optimizations on their way from finding to deployment (see `optimizer.schemas.optimizations`)."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from optimizer.schemas.optimizations import Optimization, OptimizationStatus


class Optimizations:
    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def save(self, optimizations: Sequence[Optimization]) -> None:
        """Insert each, or replace it as it now stands."""
        for o in optimizations:
            self._db.execute(
                "INSERT OR REPLACE INTO optimizations VALUES (?, ?, ?, ?, ?, ?, ?)",
                [o.optimization_id, o.application_id, o.fingerprint, o.status, o.experiment_id, o.updated_at,
                 o.model_dump_json()],
            )

    def get(self, optimization_id: str) -> Optimization | None:
        row = self._db.execute("SELECT record FROM optimizations WHERE optimization_id = ?",
                               [optimization_id]).fetchone()
        return Optimization.model_validate_json(row[0]) if row else None

    def all(self, *statuses: OptimizationStatus) -> list[Optimization]:
        """Every optimization (only those in `statuses`, if given), oldest first."""
        where = f"WHERE status IN ({', '.join('?' for _ in statuses)})" if statuses else ""
        rows = self._db.execute(f"SELECT record FROM optimizations {where} ORDER BY updated_at, optimization_id",
                                list(statuses)).fetchall()
        return [Optimization.model_validate_json(row[0]) for row in rows]
