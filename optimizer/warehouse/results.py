"""Analysis results: each night's cascade and compression recommendations and experiment
analyses, stored with the events announcing them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from optimizer.schemas.analysis import (
    CascadeRecommendation,
    CascadeReport,
    CompressionRecommendation,
    CompressionReport,
    ExperimentAnalysis,
)
from optimizer.schemas.events import OutgoingEvent
from optimizer.warehouse._connection import transaction
from optimizer.warehouse.outbox import insert_events


class Results:
    """What each nightly run's analyses found, and what it adopted."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def record(
        self,
        run_id: str,
        *,
        cascades: CascadeReport,
        compression: CompressionReport,
        experiments: Sequence[ExperimentAnalysis],
        events: Sequence[OutgoingEvent],
    ) -> None:
        """Store a run's results and the events announcing them, together or not at all."""
        now = datetime.now(UTC)
        with transaction(self._db) as db:
            for kind, entries in (("cascade", cascades.recommendations), ("compression", compression.recommendations)):
                for entry in entries:
                    db.execute(
                        "INSERT OR REPLACE INTO recommendations VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [f"{run_id}:{kind}:{entry.application_id}", kind, entry.application_id,
                         entry.decision, run_id, now, entry.model_dump_json()],
                    )
            for analysis in experiments:
                db.execute(
                    "INSERT OR REPLACE INTO experiment_results VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [analysis.experiment_id, run_id, now, analysis.recommendation, analysis.winner,
                     analysis.srm_detected, analysis.model_dump_json()],
                )
            insert_events(db, events, now)

    def latest_adopted(self) -> tuple[str | None, list[CascadeRecommendation | CompressionRecommendation]]:
        """The most recent nightly run's adopted recommendations."""
        row = self._db.execute(
            "SELECT run_id FROM optimization_runs ORDER BY finished_at DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None, []
        rows = self._db.execute(
            "SELECT kind, payload FROM recommendations WHERE run_id = ? AND decision = 'adopt'"
            " ORDER BY kind, application_id",
            [row[0]],
        ).fetchall()
        adopted: list[CascadeRecommendation | CompressionRecommendation] = [
            CascadeRecommendation.model_validate_json(payload) if kind == "cascade"
            else CompressionRecommendation.model_validate_json(payload)
            for kind, payload in rows
        ]
        return str(row[0]), adopted
