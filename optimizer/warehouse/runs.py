"""Runs and rollouts: what each nightly run did (the summary its report was made from) and
each routing change proposed to the Orchestrator, with what became of it."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from optimizer.redaction import redact
from optimizer.schemas.rollout import RolloutOutcome


class Runs:
    """One row per nightly run: its window and its summary."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def save(self, run_id: str, started_at: datetime, window: tuple[datetime | None, datetime], summary: str) -> None:
        """The run's summary (JSON, no URL's credentials), replacing an earlier save of the same run."""
        self._db.execute(
            "INSERT OR REPLACE INTO optimization_runs VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, started_at, datetime.now(UTC), window[0], window[1], redact(summary)],
        )


class Rollouts:
    """One row per rollout, updated as it moves from proposal to its outcome."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def save(self, outcome: RolloutOutcome, flow_run_id: str | None) -> None:
        now = datetime.now(UTC)
        self._db.execute(
            """
            INSERT INTO rollouts VALUES ($id, $status, $proposed, $previous, $run, $now, $now, $evidence)
            ON CONFLICT (rollout_id) DO UPDATE SET status = EXCLUDED.status,
                proposed_version = EXCLUDED.proposed_version, previous_version = EXCLUDED.previous_version,
                updated_at = EXCLUDED.updated_at, evidence = EXCLUDED.evidence
            """,
            {"id": outcome.rollout_id, "status": outcome.status,
             "proposed": outcome.applied_version or outcome.canary_version, "previous": outcome.previous_version,
             "run": flow_run_id, "now": now, "evidence": outcome.model_dump_json()},
        )
