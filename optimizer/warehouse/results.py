"""Analysis results: each night's cascade and compression recommendations and experiment
analyses, stored with the events announcing them.

An adopted recommendation also keeps, in columns of its own, its id in the Registry and what
it saves a month: what a rollout proposes it with.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from optimizer.schemas.analysis import (
    AdoptedRecommendation,
    BatchingRecommendation,
    BatchingReport,
    CachingRecommendation,
    CachingReport,
    CascadeRecommendation,
    CascadeReport,
    CompressionRecommendation,
    CompressionReport,
    ExperimentAnalysis,
    RecordedRecommendation,
)
from optimizer.schemas.events import OutgoingEvent
from optimizer.warehouse._connection import transaction
from optimizer.warehouse.outbox import insert_events

# The `kind` of a stored result, and the Registry's type for its recommendation.
REGISTRY_TYPES = {"cascade": "model_cascade", "compression": "prompt_compression", "caching": "caching",
                  "batching": "batching"}
_ENTRY_TYPES: dict[str, type[CascadeRecommendation | CompressionRecommendation | CachingRecommendation
                             | BatchingRecommendation]] = {
    "cascade": CascadeRecommendation, "compression": CompressionRecommendation, "caching": CachingRecommendation,
    "batching": BatchingRecommendation,
}


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
        adopted: Sequence[AdoptedRecommendation],
        events: Sequence[OutgoingEvent],
        caching: CachingReport | None = None,
        batching: BatchingReport | None = None,
    ) -> None:
        """Store a run's results and the events announcing them, together or not at all.

        `adopted` are the recommendations the Registry was told about; each is stored with
        the result of the same kind and application.
        """
        now = datetime.now(UTC)
        told = {(a.kind, a.application_id): a for a in adopted}
        with transaction(self._db) as db:
            found: tuple[tuple[str, Sequence[CascadeRecommendation | CompressionRecommendation | CachingRecommendation
                                              | BatchingRecommendation]], ...] = (
                ("cascade", cascades.recommendations), ("compression", compression.recommendations),
                ("caching", caching.recommendations if caching else []),
                ("batching", batching.recommendations if batching else []))
            for kind, entries in found:
                for entry in entries:
                    registry = told.get((REGISTRY_TYPES[kind], entry.application_id))
                    db.execute(
                        "INSERT OR REPLACE INTO recommendations (recommendation_id, kind, application_id, decision,"
                        " run_id, created_at, payload, registry_recommendation_id, monthly_savings_usd)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [f"{run_id}:{kind}:{entry.application_id}", kind, entry.application_id,
                         entry.decision, run_id, now, entry.model_dump_json(),
                         registry.recommendation_id if registry else None,
                         registry.monthly_savings_usd if registry else None],
                    )
            for analysis in experiments:
                db.execute(
                    "INSERT OR REPLACE INTO experiment_results VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [analysis.experiment_id, run_id, now, analysis.recommendation, analysis.winner,
                     analysis.srm_detected, analysis.model_dump_json()],
                )
            insert_events(db, events, now)

    def latest_adopted(self, run_id: str | None = None) -> list[RecordedRecommendation]:
        """The adopted recommendations of run `run_id`, by default of the most recent nightly run
        that finished; cascades first, then by application."""
        rows = self._db.execute(
            """
            SELECT kind, payload, registry_recommendation_id, monthly_savings_usd FROM recommendations
            WHERE decision = 'adopt'
              AND run_id = coalesce($run, (SELECT run_id FROM optimization_runs ORDER BY finished_at DESC LIMIT 1))
            ORDER BY kind, application_id
            """, {"run": run_id}
        ).fetchall()
        return [
            RecordedRecommendation(
                entry=_ENTRY_TYPES[kind].model_validate_json(payload),
                recommendation_id=registry_id,
                monthly_savings_usd=monthly_savings,
            )
            for kind, payload, registry_id, monthly_savings in rows
        ]
