"""Reference data: the model catalog with its list prices, what teams, applications and
models spent, the Registry's experiments, and which team each application belongs to.

The catalog, spend and experiments are written by a load, inside its transaction (the
`write_*` functions); everything else here reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

import duckdb

from optimizer.schemas.governance import CostSummary
from optimizer.schemas.registry import ModelProfile, StoredExperiment, TokenPrices
from optimizer.warehouse._connection import transaction

_ROWS_PER_INSERT = 500


def _insert_rows(db: duckdb.DuckDBPyConnection, table: str, rows: Sequence[Sequence[object]], *,
                 replace: bool = False) -> None:
    """Insert `rows` into `table` (a name from this module, never input), a few hundred rows a
    statement: DuckDB's executemany binds and runs one statement per row, about 1 ms each.
    `replace`: rows replace the stored ones with the same key, their first column (of rows
    with the same key, the last one, as if inserted one by one)."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    if replace:
        rows = list({row[0]: row for row in rows}.values())
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start:start + _ROWS_PER_INSERT]
        row = "(" + ", ".join("?" * len(chunk[0])) + ")"
        db.execute(f"{verb} INTO {table} VALUES {', '.join([row] * len(chunk))}",
                   [value for values in chunk for value in values])


def write_models(db: duckdb.DuckDBPyConnection, models: Sequence[ModelProfile]) -> None:
    """Each model's profile and list prices, replacing what was stored for it."""
    now = datetime.now(UTC)
    _insert_rows(db, "models", replace=True, rows=[
        (profile.model_id, profile.model_name, profile.provider, profile.status,
         profile.cost_structure.input_cost_per_1k_tokens, profile.cost_structure.output_cost_per_1k_tokens,
         profile.model_dump_json(), now)
        for profile in models
    ])


def write_cost_summaries(db: duckdb.DuckDBPyConnection, summaries: Mapping[date, CostSummary]) -> None:
    """Governance's spend of each day, replacing whatever that day held."""
    now = datetime.now(UTC)
    rows: list[tuple[date, str, str, str | None, float, int | None, int | None, float | None, datetime]] = []
    for day, summary in summaries.items():
        b = summary.breakdown
        rows.append((day, "total", "all", None, summary.total_cost_usd, None, None, 100.0, now))
        rows += [(day, "team", t.team_id, t.team_name, t.cost_usd, None, None, t.percentage, now) for t in b.by_team]
        rows += [(day, "model", m.model, None, m.cost_usd, m.requests, m.tokens, None, now) for m in b.by_model]
        rows += [(day, "application", a.application_id, None, a.cost_usd, a.requests, a.tokens, None, now)
                 for a in b.by_application]
        rows += [(day, "environment", e.environment, None, e.cost_usd, e.requests, e.tokens, None, now)
                 for e in b.by_environment]
    if summaries:
        db.execute("DELETE FROM cost_summaries WHERE list_contains(?, day)", [list(summaries)])
    _insert_rows(db, "cost_summaries", rows)


def write_experiments(db: duckdb.DuckDBPyConnection, experiments: Sequence[StoredExperiment]) -> None:
    """Each experiment's definition and planned traffic allocation, replacing what was stored."""
    now = datetime.now(UTC)
    _insert_rows(db, "experiments", replace=True, rows=[
        (experiment.experiment_id, experiment.experiment_type, experiment.status,
         experiment.metadata.get("application_id"), experiment.test_period.start, experiment.test_period.end,
         json.dumps(experiment.traffic_allocation()), experiment.model_dump_json(), now)
        for experiment in experiments
    ])


class ReferenceData:
    """What the analyses, the report and the rollouts look up: prices, spend, experiments, owners."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def ensure_models(self, models: Sequence[ModelProfile]) -> None:
        """Give an empty catalog the shipped list prices, so costs can be computed offline."""
        row = self._db.execute("SELECT count(*) FROM models").fetchone()
        if row and row[0] == 0 and models:
            with transaction(self._db) as db:
                write_models(db, models)

    def update_model(self, profile: ModelProfile) -> None:
        """One model's profile as the Registry now has it (after a `model-updated` event)."""
        with transaction(self._db) as db:
            write_models(db, [profile])

    def model_ids(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT model_id FROM models ORDER BY 1").fetchall()]

    def model_profiles(self) -> list[ModelProfile]:
        rows = self._db.execute("SELECT profile FROM models ORDER BY model_id").fetchall()
        return [ModelProfile.model_validate_json(profile) for (profile,) in rows]

    def input_prices(self) -> dict[str, float]:
        """List price per 1k input tokens of every model in the catalog."""
        rows = self._db.execute("SELECT model_id, input_cost_per_1k FROM models").fetchall()
        return {str(model): float(price) for model, price in rows}

    def batch_prices(self) -> dict[str, TokenPrices]:
        """Batch API prices of every catalog model that has them."""
        return {m.model_id: m.cost_structure.batch_pricing for m in self.model_profiles()
                if m.cost_structure.batch_pricing is not None}

    def running_experiments(self) -> list[StoredExperiment]:
        rows = self._db.execute(
            "SELECT definition FROM experiments WHERE status = 'running' ORDER BY experiment_id"
        ).fetchall()
        return [StoredExperiment.model_validate_json(definition) for (definition,) in rows]

    def cost_days(self, first_day: date, last_day: date) -> set[date]:
        """The days between the two (both inclusive) whose spend Governance has given."""
        rows = self._db.execute("SELECT DISTINCT day FROM cost_summaries WHERE day BETWEEN ? AND ?",
                                [first_day, last_day]).fetchall()
        return {day for (day,) in rows}

    def daily_spend(self, dimension: str, first_day: date, last_day: date) -> list[tuple[date, str, float]]:
        """Governance's daily spend per key of a dimension (team, application, model, ...)."""
        rows = self._db.execute(
            "SELECT day, key, cost_usd FROM cost_summaries WHERE dimension = ? AND day BETWEEN ? AND ?"
            " ORDER BY day, key",
            [dimension, first_day, last_day],
        ).fetchall()
        return [(day, str(key), float(cost)) for day, key, cost in rows]

    def spend_labels(self, dimension: str) -> dict[str, str]:
        """The display name Governance gives each key of a dimension (a team's name, say)."""
        rows = self._db.execute(
            "SELECT key, any_value(label) FROM cost_summaries WHERE dimension = ? AND label IS NOT NULL GROUP BY key",
            [dimension],
        ).fetchall()
        return {str(key): str(label) for key, label in rows}

    def team_spend(self, first_day: date, last_day: date) -> dict[str, float]:
        """Each team's spend over whole UTC days, both inclusive, from the request records:
        for budgets where the cost source breaks spend down by model only."""
        rows = self._db.execute(
            "SELECT team_id, fsum(cost_usd) FROM requests WHERE team_id IS NOT NULL "
            "AND ts >= CAST($first AS TIMESTAMPTZ) AND ts < CAST($last AS TIMESTAMPTZ) + INTERVAL 1 DAY GROUP BY 1",
            {"first": first_day.isoformat(), "last": last_day.isoformat()},
        ).fetchall()
        return {str(team): float(cost) for team, cost in rows}

    def application_teams(self) -> dict[str, str]:
        """The team behind most of each application's requests."""
        rows = self._db.execute(
            "SELECT application_id, mode(team_id) FROM requests WHERE team_id IS NOT NULL GROUP BY 1"
        ).fetchall()
        return {str(app): str(team) for app, team in rows}
