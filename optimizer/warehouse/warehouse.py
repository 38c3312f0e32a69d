"""The DuckDB warehouse: the only place that holds SQL.

A load is one transaction: models, cost summaries, experiments, request rows, quarantined
rows and the watermark are committed together or not at all, so a failure anywhere leaves
the warehouse exactly as it was and the next run simply repeats the window.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import unquote

import duckdb

from optimizer.errors import BadInputError, WarehouseError
from optimizer.events import OutgoingEvent
from optimizer.ingest.staging import parquet_parts
from optimizer.schemas.analysis import (
    CascadeRecommendation,
    CascadeReport,
    CompressionRecommendation,
    CompressionReport,
    ExperimentAnalysis,
)
from optimizer.schemas.governance import CostSummary
from optimizer.schemas.records import REQUEST_COLUMN_NAMES, REQUIRED_COLUMN_NAMES
from optimizer.schemas.registry import ModelProfile, StoredExperiment
from optimizer.schemas.rollout import RolloutOutcome
from optimizer.warehouse._migrate import migrate
from optimizer.warehouse._validation import DERIVABLE, quote, typed_projection

logger = logging.getLogger(__name__)

StepHook = Callable[[str], None]


@dataclass(frozen=True)
class LoadBatch:
    """Everything one load commits together.

    `request_files` are Parquet files whose columns carry request-record names (any
    types: values are cast and checked here). `window` is the time span the files cover;
    its end becomes the source's watermark when the load commits.
    """

    source: str
    request_files: Sequence[Path] = ()
    models: Sequence[ModelProfile] = ()
    cost_summaries: Mapping[date, CostSummary] = field(default_factory=dict)
    experiments: Sequence[StoredExperiment] = ()
    window: tuple[datetime, datetime] | None = None


@dataclass(frozen=True)
class LoadResult:
    load_id: str
    source: str
    rows_in: int
    loaded: int
    duplicates: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    models: int
    cost_days: int
    experiments: int
    requests_total: int
    quarantined_total: int


def _now() -> datetime:
    return datetime.now(UTC)


def _insert_events(db: duckdb.DuckDBPyConnection, events: Sequence[OutgoingEvent], now: datetime) -> None:
    """Into the outbox, inside the caller's transaction; an event already queued stays as it was."""
    for event in events:
        db.execute(
            "INSERT OR IGNORE INTO events_outbox (event_id, type, source, subject, event_time, data,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [event.id, event.type, event.source, event.subject, event.time, json.dumps(event.data), now],
        )


def _memory_setting(value: str) -> str:
    """A DuckDB memory size such as 3GB or 512MB; anything else is refused."""
    number, unit = value[:-2], value[-2:].upper()
    if not number.replace(".", "", 1).isdigit() or unit not in {"KB", "MB", "GB", "TB"}:
        raise WarehouseError(f"memory limit {value!r} is not a size like 3GB or 512MB")
    return f"{number}{unit}"


def count_reasons(
    db: duckdb.DuckDBPyConnection, reasons_query: str, params: Mapping[str, object] | None = None
) -> dict[str, int]:
    """How many rows broke each rule, from a query of one `reason` column ('prompt_tokens is
    below 0: -12; model is missing' counts once for each rule, without the values)."""
    rows = db.execute(
        "SELECT trim(split_part(part, ':', 1)) AS rule, count(*) FROM ("
        f" SELECT unnest(string_split(reason, '; ')) AS part FROM ({reasons_query}) WHERE reason IS NOT NULL)"
        " GROUP BY rule ORDER BY rule",
        params,
    ).fetchall()
    return {str(rule): int(n) for rule, n in rows}


class Warehouse:
    """A DuckDB file with the optimizer's schema, migrated on open."""

    def __init__(
        self,
        path: Path | str,
        *,
        read_only: bool = False,
        lock_timeout_s: float = 120.0,
        memory_limit: str | None = None,
    ) -> None:
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect(read_only, lock_timeout_s)
        self._db.execute("SET TimeZone = 'UTC'")
        # Loads stream in insertion order no query relies on; not keeping it saves memory.
        self._db.execute("SET preserve_insertion_order = false")
        if memory_limit:  # DuckDB's default is 80% of the machine's memory
            self._db.execute(f"SET memory_limit = '{_memory_setting(memory_limit)}'")
        if not read_only:
            migrate(self._db)

    def _connect(self, read_only: bool, lock_timeout_s: float) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting while another process (a nightly run, say) holds its lock."""
        deadline = time.monotonic() + lock_timeout_s
        delay = 0.1
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise WarehouseError(f"cannot open warehouse {self.path}: {exc}") from exc
                logger.info("warehouse %s is locked by another process; waiting", self.path)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self._db.execute("BEGIN TRANSACTION")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ---- loading -------------------------------------------------------------------

    def load(self, batch: LoadBatch, *, on_step: StepHook | None = None) -> LoadResult:
        """Commit a batch atomically; rows already stored (same request_id) are skipped."""
        step = on_step or (lambda _message: None)
        load_id = uuid.uuid4().hex
        started = _now()
        files = parquet_parts(batch.request_files)
        present = self._staged_columns(files) if files else {}
        with self._transaction() as db:
            self._upsert_models(db, batch.models)
            self._replace_cost_summaries(db, batch.cost_summaries)
            self._upsert_experiments(db, batch.experiments)
            step(
                f"reference data: {len(batch.models)} models, {len(batch.cost_summaries)} "
                f"cost days, {len(batch.experiments)} experiments"
            )
            rows_in = loaded = duplicates = quarantined = 0
            reasons: dict[str, int] = {}
            if files:
                checked = self._checked_rows(present)
                rows_in, valid, loaded = self._insert_requests(db, checked, files, load_id, started)
                duplicates = valid - loaded
                step(f"stored {loaded} new requests of {rows_in} rows ({duplicates} already present)")
                if valid < rows_in:
                    quarantined, reasons = self._insert_quarantine(db, checked, files, load_id, batch.source, started)
                    step(f"quarantined {quarantined} rows")
            if batch.window is not None:
                db.execute(
                    "INSERT INTO watermarks VALUES ($source, $hw, $now) ON CONFLICT (source) "
                    "DO UPDATE SET high_water = greatest(watermarks.high_water, EXCLUDED.high_water),"
                    " updated_at = EXCLUDED.updated_at",
                    {"source": batch.source, "hw": batch.window[1], "now": started},
                )
            db.execute(
                "INSERT INTO loads VALUES ($id, $source, $started, $finished, $rows_in, $loaded,"
                " $duplicates, $quarantined, $window_start, $window_end)",
                {
                    "id": load_id,
                    "source": batch.source,
                    "started": started,
                    "finished": _now(),
                    "rows_in": rows_in,
                    "loaded": loaded,
                    "duplicates": duplicates,
                    "quarantined": quarantined,
                    "window_start": batch.window[0] if batch.window else None,
                    "window_end": batch.window[1] if batch.window else None,
                },
            )
            step("committing")
        return LoadResult(
            requests_total=self.request_count(),
            quarantined_total=self.quarantine_count(),
            load_id=load_id,
            source=batch.source,
            rows_in=rows_in,
            loaded=loaded,
            duplicates=duplicates,
            quarantined=quarantined,
            quarantine_reasons=reasons,
            models=len(batch.models),
            cost_days=len(batch.cost_summaries),
            experiments=len(batch.experiments),
        )

    def _staged_columns(self, files: list[str]) -> dict[str, str]:
        """The input's columns and their types; refuses input without a required column."""
        try:
            described = self._db.execute(
                "DESCRIBE SELECT * FROM read_parquet($files, union_by_name = true)",
                {"files": files},
            ).fetchall()
        except duckdb.Error as exc:
            raise BadInputError(f"cannot read Parquet input {', '.join(files)}: {exc}".splitlines()[0]) from exc
        present = {str(row[0]): str(row[1]) for row in described}
        missing = [c for c in REQUIRED_COLUMN_NAMES if c not in present and c not in DERIVABLE]
        if missing:
            raise BadInputError(
                f"{', '.join(files)}: missing required column(s) {', '.join(missing)}"
            )
        return present

    @staticmethod
    def _checked_rows(present: Mapping[str, str]) -> str:
        """A query over `$files`: every row typed, with `reason` NULL when it keeps every rule.

        It is a query, not a table: each statement of a load streams the files through it,
        so memory stays flat however large the batch. Columns a statement does not use
        (the raw record, for stored rows) are never computed.
        """
        cost_missing = "s.cost_usd IS NULL" if "cost_usd" in present else "TRUE"
        return f"""
            SELECT typed.* EXCLUDE (cost_usd, _problems, _cost_missing),
                coalesce(typed.cost_usd,
                    (typed.prompt_tokens * m.input_cost_per_1k
                     + typed.completion_tokens * m.output_cost_per_1k) / 1000.0) AS cost_usd,
                NULLIF(concat_ws('; ', typed._problems,
                    CASE WHEN typed._cost_missing AND m.model_id IS NULL THEN
                        'cost_usd is missing and model ' || typed.model
                        || ' has no price in the catalog' END), '') AS reason
            FROM (
                SELECT {typed_projection(present)}, {cost_missing} AS _cost_missing
                FROM read_parquet($files, union_by_name = true) AS s
            ) AS typed
            LEFT JOIN models AS m ON m.model_id = typed.model
        """

    def _insert_requests(
        self, db: duckdb.DuckDBPyConnection, checked: str, files: list[str], load_id: str, now: datetime
    ) -> tuple[int, int, int]:
        """(rows read, rows that keep every rule, rows stored)."""
        counts = db.execute(
            f"""
            SELECT count(*), count(*) FILTER (WHERE reason IS NULL),
                   min(ts) FILTER (WHERE reason IS NULL), max(ts) FILTER (WHERE reason IS NULL),
                   count(DISTINCT request_id) FILTER (WHERE reason IS NULL)
            FROM ({checked})
            """,
            {"files": files},
        ).fetchone()
        assert counts is not None
        rows_in, valid, low, high, distinct = (int(counts[0]), int(counts[1]), counts[2], counts[3], int(counts[4]))
        if not valid:
            return rows_in, 0, 0
        columns = ", ".join(quote(name) for name in REQUEST_COLUMN_NAMES)
        # A request seen twice in one batch keeps its earliest copy; the window is only
        # paid for when the batch does repeat itself.
        once = (
            "QUALIFY row_number() OVER (PARTITION BY b.request_id ORDER BY b.ts, b.latency_ms, b.cost_usd) = 1"
            if distinct < valid else ""
        )
        # The anti-join only looks at stored rows in the batch's time span: a request's ts
        # never changes, so a copy of it can only be there.
        inserted = db.execute(
            f"""
            INSERT INTO requests BY NAME
            SELECT {columns}, $load_id AS load_id, $now AS loaded_at
            FROM ({checked}) AS b
            WHERE b.reason IS NULL
              AND NOT EXISTS (
                  SELECT 1 FROM requests AS r
                  WHERE r.request_id = b.request_id AND r.ts BETWEEN $low AND $high)
            {once}
            """,
            {"files": files, "load_id": load_id, "now": now, "low": low, "high": high},
        ).fetchone()
        loaded = int(inserted[0]) if inserted else 0
        return rows_in, valid, loaded

    def _insert_quarantine(
        self, db: duckdb.DuckDBPyConnection, checked: str, files: list[str], load_id: str, source: str,
        now: datetime,
    ) -> tuple[int, dict[str, int]]:
        inserted = db.execute(
            f"""
            INSERT INTO quarantine BY NAME
            SELECT $load_id AS load_id, $source AS source, b.request_id, b.reason,
                   b._raw AS raw_record, md5(b._raw) AS row_hash, $now AS quarantined_at
            FROM ({checked}) AS b
            WHERE b.reason IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM quarantine AS q WHERE q.row_hash = md5(b._raw))
            QUALIFY row_number() OVER (PARTITION BY md5(b._raw)) = 1
            """,
            {"files": files, "load_id": load_id, "source": source, "now": now},
        ).fetchone()
        reasons = count_reasons(db, "SELECT reason FROM quarantine WHERE load_id = $load_id", {"load_id": load_id})
        return (int(inserted[0]) if inserted else 0), reasons

    def _upsert_models(self, db: duckdb.DuckDBPyConnection, models: Sequence[ModelProfile]) -> None:
        for profile in models:
            db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    profile.model_id,
                    profile.model_name,
                    profile.provider,
                    profile.status,
                    profile.cost_structure.input_cost_per_1k_tokens,
                    profile.cost_structure.output_cost_per_1k_tokens,
                    profile.model_dump_json(),
                    _now(),
                ],
            )

    def _replace_cost_summaries(
        self, db: duckdb.DuckDBPyConnection, summaries: Mapping[date, CostSummary]
    ) -> None:
        now = _now()
        for day, summary in summaries.items():
            rows: list[tuple[str, str, str | None, float, int | None, int | None, float | None]]
            rows = [("total", "all", None, summary.total_cost_usd, None, None, 100.0)]
            b = summary.breakdown
            rows += [("team", t.team_id, t.team_name, t.cost_usd, None, None, t.percentage) for t in b.by_team]
            rows += [("model", m.model, None, m.cost_usd, m.requests, m.tokens, None) for m in b.by_model]
            rows += [
                ("application", a.application_id, None, a.cost_usd, a.requests, a.tokens, None)
                for a in b.by_application
            ]
            rows += [
                ("environment", e.environment, None, e.cost_usd, e.requests, e.tokens, None)
                for e in b.by_environment
            ]
            db.execute("DELETE FROM cost_summaries WHERE day = ?", [day])
            db.executemany(
                "INSERT INTO cost_summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[day, *row, now] for row in rows],
            )

    def _upsert_experiments(
        self, db: duckdb.DuckDBPyConnection, experiments: Sequence[StoredExperiment]
    ) -> None:
        for experiment in experiments:
            db.execute(
                "INSERT OR REPLACE INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    experiment.experiment_id,
                    experiment.experiment_type,
                    experiment.status,
                    experiment.metadata.get("application_id"),
                    experiment.test_period.start,
                    experiment.test_period.end,
                    json.dumps(experiment.traffic_allocation()),
                    experiment.model_dump_json(),
                    _now(),
                ],
            )

    # ---- reading -------------------------------------------------------------------

    def watermark(self, source: str) -> datetime | None:
        row = self._db.execute(
            "SELECT high_water FROM watermarks WHERE source = ?", [source]
        ).fetchone()
        return row[0] if row else None

    def request_count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM requests").fetchone()
        return int(row[0]) if row else 0

    def quarantine_count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM quarantine").fetchone()
        return int(row[0]) if row else 0

    def quarantine_reasons(self) -> dict[str, int]:
        """How many quarantined rows broke each rule (a row may break several)."""
        return count_reasons(self._db, "SELECT reason FROM quarantine")

    def model_ids(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT model_id FROM models ORDER BY 1").fetchall()]

    def ensure_models(self, models: Sequence[ModelProfile]) -> None:
        """Give an empty catalog the shipped list prices, so costs can be computed offline."""
        row = self._db.execute("SELECT count(*) FROM models").fetchone()
        if row and row[0] == 0 and models:
            with self._transaction() as db:
                self._upsert_models(db, models)

    # ---- analysis results and the event outbox ---------------------------------------

    def record_results(
        self,
        run_id: str,
        *,
        cascades: CascadeReport,
        compression: CompressionReport,
        experiments: Sequence[ExperimentAnalysis],
        events: Sequence[OutgoingEvent],
    ) -> None:
        """Store a run's results and the events announcing them, together or not at all."""
        now = _now()
        with self._transaction() as db:
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
            _insert_events(db, events, now)

    def pending_events(self) -> list[OutgoingEvent]:
        """Events not yet accepted by a sink, oldest first."""
        rows = self._db.execute(
            "SELECT event_id, type, source, subject, event_time, data FROM events_outbox"
            " WHERE delivered_at IS NULL ORDER BY created_at, event_id"
        ).fetchall()
        return [
            OutgoingEvent(id=i, type=t, source=s, subject=subject, time=at, data=json.loads(data))
            for i, t, s, subject, at, data in rows
        ]

    def mark_event_delivered(self, event_id: str) -> None:
        self._db.execute(
            "UPDATE events_outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL"
            " WHERE event_id = ?",
            [_now(), event_id],
        )

    def mark_event_failed(self, event_id: str, error: str) -> None:
        self._db.execute(
            "UPDATE events_outbox SET attempts = attempts + 1, last_error = ? WHERE event_id = ?",
            [error[:500], event_id],
        )

    def save_run(self, run_id: str, started_at: datetime, window: tuple[datetime | None, datetime], summary: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO optimization_runs VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, started_at, _now(), window[0], window[1], summary],
        )

    # ---- what the report and the Registry are told -----------------------------------

    def latest_window_end(self) -> datetime | None:
        """End of the last loaded extraction window (analyses of alerts look back from there)."""
        row = self._db.execute("SELECT max(window_end) FROM loads").fetchone()
        return row[0] if row and row[0] else None

    def model_profiles(self) -> list[ModelProfile]:
        rows = self._db.execute("SELECT profile FROM models ORDER BY model_id").fetchall()
        return [ModelProfile.model_validate_json(profile) for (profile,) in rows]

    def input_prices(self) -> dict[str, float]:
        """List price per 1k input tokens of every model in the catalog."""
        rows = self._db.execute("SELECT model_id, input_cost_per_1k FROM models").fetchall()
        return {str(model): float(price) for model, price in rows}

    def export_by_application(self, window: tuple[datetime, datetime], directory: Path) -> dict[str, Path]:
        """The window's request records as Parquet, one folder per application.

        Analyses then fan out to workers that need no access to this file (one process at a
        time may write it; any number of workers can read Parquet from shared storage).
        """
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        written = directory / "by-application"
        target = str(written).replace("'", "''")
        self._db.execute(
            f"COPY (SELECT * FROM requests WHERE ts >= $start AND ts < $end) TO '{target}' "
            "(FORMAT parquet, PARTITION_BY (application_id), WRITE_PARTITION_COLUMNS true, OVERWRITE_OR_IGNORE)",
            {"start": window[0], "end": window[1]},
        )
        if not written.exists():  # nothing in the window
            return {}
        # Plain folder names: `key=value` folders would be read back as Hive partitions.
        partitions = {}
        for number, folder in enumerate(sorted(p for p in written.iterdir() if p.is_dir())):
            application = unquote(folder.name.partition("=")[2])
            partitions[application] = folder.rename(directory / f"application-{number:05d}")
        written.rmdir()
        return partitions

    def running_experiments(self) -> list[StoredExperiment]:
        rows = self._db.execute(
            "SELECT definition FROM experiments WHERE status = 'running' ORDER BY experiment_id"
        ).fetchall()
        return [StoredExperiment.model_validate_json(definition) for (definition,) in rows]

    def daily_spend(self, dimension: str, first_day: date, last_day: date) -> list[tuple[date, str, float]]:
        """Governance's daily spend per key of a dimension (team, application, model, ...)."""
        rows = self._db.execute(
            "SELECT day, key, cost_usd FROM cost_summaries WHERE dimension = ? AND day BETWEEN ? AND ?"
            " ORDER BY day, key",
            [dimension, first_day, last_day],
        ).fetchall()
        return [(day, str(key), float(cost)) for day, key, cost in rows]

    def team_spend(self, first_day: date, last_day: date) -> dict[str, float]:
        """Each team's spend over whole UTC days, both inclusive, from the request records:
        for budgets where the cost source breaks spend down by model only."""
        rows = self._db.execute(
            "SELECT team_id, fsum(cost_usd) FROM requests WHERE team_id IS NOT NULL "
            "AND ts >= CAST($first AS TIMESTAMPTZ) AND ts < CAST($last AS TIMESTAMPTZ) + INTERVAL 1 DAY GROUP BY 1",
            {"first": first_day.isoformat(), "last": last_day.isoformat()},
        ).fetchall()
        return {str(team): float(cost) for team, cost in rows}

    def spend_labels(self, dimension: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT key, any_value(label) FROM cost_summaries WHERE dimension = ? AND label IS NOT NULL GROUP BY key",
            [dimension],
        ).fetchall()
        return {str(key): str(label) for key, label in rows}

    def queue_events(self, events: Sequence[OutgoingEvent]) -> None:
        """Put events in the outbox; `deliver` them afterwards. An event already queued is kept as it was."""
        now = _now()
        with self._transaction() as db:
            _insert_events(db, events, now)

    # ---- rollouts and the audit log --------------------------------------------------

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

    def run_summary(self, run_id: str) -> str | None:
        row = self._db.execute("SELECT summary FROM optimization_runs WHERE run_id = ?", [run_id]).fetchone()
        return str(row[0]) if row else None

    def application_teams(self) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT application_id, mode(team_id) FROM requests WHERE team_id IS NOT NULL GROUP BY 1"
        ).fetchall()
        return {str(app): str(team) for app, team in rows}

    def audit(self, actor: str, action: str, subject: str, details: Mapping[str, object] | None = None) -> None:
        """Who did what to which subject, and when."""
        self._db.execute(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?)",
            [uuid.uuid4().hex, _now(), actor, action, subject, json.dumps(details or {}, default=str)],
        )

    def save_rollout(self, outcome: RolloutOutcome, flow_run_id: str | None) -> None:
        now = _now()
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
