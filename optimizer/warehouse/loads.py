"""Loading and quarantine: request records in, each checked against the request record,
stored once or quarantined with every reason.

A load is one transaction: models, cost summaries, experiments, request rows, quarantined
rows and the watermark are committed together or not at all, so a failure anywhere leaves
the warehouse exactly as it was and the next run simply repeats the window.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import duckdb

from optimizer.schemas.loads import LoadBatch, LoadResult
from optimizer.schemas.records import REQUEST_COLUMN_NAMES, REQUIRED_COLUMN_NAMES, RecordBounds
from optimizer.warehouse._connection import transaction
from optimizer.warehouse._prompt_repeats import update_previous_prompts
from optimizer.warehouse._validation import (
    DERIVABLE,
    TOO_LONG,
    count_reasons,
    literal,
    quote,
    typed_projection,
)
from optimizer.warehouse.parquet_input import parquet_columns, parquet_parts
from optimizer.warehouse.reference import write_cost_summaries, write_experiments, write_models

StepHook = Callable[[str], None]
REPEAT_REASON = "request_id is already stored with other values"
_COLUMNS = ", ".join(f"b.{quote(name)}" for name in REQUEST_COLUMN_NAMES)
_KEY_CANARY = "request-key-canary"
# Of a request seen twice among the rows `b`, the first copy: the earliest, then the fastest, the cheapest.
_FIRST_COPY = "QUALIFY row_number() OVER (PARTITION BY b.request_id ORDER BY b.ts, b.latency_ms, b.cost_usd) = 1"


def _check_request_keys(db: duckdb.DuckDBPyConnection) -> None:
    """Recompute the stored request keys if this DuckDB's hash() is not the one that made them."""
    changed = db.execute(
        "SELECT count(*) FROM request_key_check WHERE canary <> hash($canary)", {"canary": _KEY_CANARY}
    ).fetchone()
    if changed and changed[0]:
        db.execute("UPDATE requests SET request_key = hash(request_id)")
        db.execute("UPDATE request_key_check SET canary = hash($canary)", {"canary": _KEY_CANARY})


def _quarantine(db: duckdb.DuckDBPyConnection, rows: str, reason: str, params: Mapping[str, object]) -> None:
    """Quarantine `rows` (checked rows) with `reason` (an SQL expression over them); a source
    record already in quarantine, or twice among them, is kept once."""
    db.execute(
        f"""
        INSERT INTO quarantine BY NAME
        SELECT $load_id AS load_id, $source AS source, b.request_id, {reason} AS reason,
               b._raw AS raw_record, b._row_hash AS row_hash, $now AS quarantined_at
        FROM ({rows}) AS b
        WHERE NOT EXISTS (SELECT 1 FROM quarantine AS q WHERE q.row_hash = b._row_hash)
        QUALIFY row_number() OVER (PARTITION BY b._row_hash) = 1
        """,
        params,
    )


def _quarantined_by(db: duckdb.DuckDBPyConnection, load_id: str) -> tuple[int, dict[str, int]]:
    """(rows a load quarantined, how many broke each rule)."""
    counted = db.execute("SELECT count(*) FROM quarantine WHERE load_id = $load_id", {"load_id": load_id}).fetchone()
    reasons = count_reasons(db, "SELECT reason FROM quarantine WHERE load_id = $load_id", {"load_id": load_id})
    return (int(counted[0]) if counted else 0), reasons


class Loads:
    """Loads, and what they leave behind: stored requests, quarantine, watermarks."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def load(self, batch: LoadBatch, *, on_step: StepHook | None = None) -> LoadResult:
        """Commit a batch atomically. A request_id already stored, whenever its ts, is not
        stored again: an identical repeat counts as a duplicate, a repeat with other values
        is quarantined (the first arrival wins).

        Raises BadInputError when the request files cannot be read as Parquet or lack a
        column the request record requires (other than one a load can derive).
        """
        step = on_step or (lambda _message: None)
        load_id = uuid.uuid4().hex
        started = datetime.now(UTC)
        files = parquet_parts(batch.request_files)
        present = self._staged_columns(files) if files else {}
        with transaction(self._db) as db:
            _check_request_keys(db)
            write_models(db, batch.models)
            write_cost_summaries(db, batch.cost_summaries)
            write_experiments(db, batch.experiments)
            step(
                f"reference data: {len(batch.models)} models, {len(batch.cost_summaries)} "
                f"cost days, {len(batch.experiments)} experiments"
            )
            rows_in = loaded = duplicates = quarantined = 0
            reasons: dict[str, int] = {}
            if files:
                checked = self._checked_rows(present, batch.bounds)
                rows_in = self._row_count(db, files)
                # One pass stores every row that keeps every rule and is not stored yet; only
                # when some row is left over (or an id came twice) do further passes find out why.
                loaded = self._insert_requests(db, checked, files, load_id, started)
                loaded += self._keep_first_copies(db, checked, files, load_id, started)
                valid, conflicts = rows_in, 0
                if loaded < rows_in:
                    valid, too_long = self._count(db, checked, files)
                    if not too_long:
                        # Every later pass reads the same rows: none need their text measured again.
                        checked = self._checked_rows(present, replace(batch.bounds, max_text_length=None))
                    if loaded < valid:
                        rescued, conflicts = self._settle_repeats(db, checked, files, load_id, batch.source, started)
                        loaded += rescued
                duplicates = valid - loaded - conflicts
                step(f"stored {loaded} new requests of {rows_in} rows ({duplicates} already present)")
                if loaded:
                    update_previous_prompts(db, load_id)
                if valid < rows_in:
                    self._insert_quarantine(db, checked, files, load_id, batch.source, started)
                if valid < rows_in or conflicts:
                    quarantined, reasons = _quarantined_by(db, load_id)
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
                    "finished": datetime.now(UTC),
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
        """The input's columns and their types; any type will do, since a load casts each value."""
        return parquet_columns(
            self._db, files, label=", ".join(files),
            required=[c for c in REQUIRED_COLUMN_NAMES if c not in DERIVABLE], check_types=False,
        )

    @staticmethod
    def _checked_rows(present: Mapping[str, str], bounds: RecordBounds) -> str:
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
                CASE WHEN typed._problems IS NOT NULL OR (typed._cost_missing AND m.model_id IS NULL) THEN
                    NULLIF(concat_ws('; ', typed._problems,
                        CASE WHEN typed._cost_missing AND m.model_id IS NULL THEN
                            'cost_usd is missing and model ' || typed.model
                            || ' has no price in the catalog' END), '') END AS reason
            FROM (
                SELECT {typed_projection(present, bounds=bounds)}, {cost_missing} AS _cost_missing
                FROM read_parquet($files, union_by_name = true) AS s
            ) AS typed
            LEFT JOIN models AS m ON m.model_id = typed.model
        """

    @staticmethod
    def _row_count(db: duckdb.DuckDBPyConnection, files: list[str]) -> int:
        """Rows in the files, from their metadata."""
        counted = db.execute("SELECT count(*) FROM read_parquet($files, union_by_name = true)", {"files": files}).fetchone()
        return int(counted[0]) if counted else 0

    @staticmethod
    def _keep_first_copies(
        db: duckdb.DuckDBPyConnection, checked: str, files: list[str], load_id: str, now: datetime
    ) -> int:
        """Of requests this load stored more than once (an id twice in the batch), keep only the
        first copy: the change in rows stored (zero or less). Found from the stored keys alone,
        which costs far less than keeping the batch's ids apart while storing it."""
        db.execute(
            "CREATE OR REPLACE TEMP TABLE repeated_keys AS SELECT request_key FROM requests"
            " WHERE load_id = $load_id GROUP BY request_key HAVING count(*) > 1",
            {"load_id": load_id},
        )
        repeated = db.execute("SELECT count(*) FROM repeated_keys").fetchone()
        removed_rows = stored = 0
        if repeated and repeated[0]:
            removed = db.execute(
                "DELETE FROM requests WHERE load_id = $load_id"
                " AND request_key IN (SELECT request_key FROM repeated_keys)",
                {"load_id": load_id},
            ).fetchone()
            removed_rows = int(removed[0]) if removed else 0
            stored = Loads._insert_requests(db, checked, files, load_id, now, only="repeated_keys")
        db.execute("DROP TABLE repeated_keys")
        return stored - removed_rows

    @staticmethod
    def _count(db: duckdb.DuckDBPyConnection, checked: str, files: list[str]) -> tuple[int, int]:
        """(rows that keep every rule, rows with overlong text)."""
        counts = db.execute(
            f"""
            SELECT count(*) FILTER (WHERE reason IS NULL),
                   count(*) FILTER (WHERE contains(reason, {literal(TOO_LONG)}))
            FROM ({checked})
            """,
            {"files": files},
        ).fetchone()
        assert counts is not None
        return int(counts[0]), int(counts[1])

    @staticmethod
    def _insert_requests(
        db: duckdb.DuckDBPyConnection, checked: str, files: list[str], load_id: str, now: datetime,
        *, only: str | None = None,
    ) -> int:
        """Rows stored: those that keep every rule, whose request_id is not stored yet. With
        `only` (a table of keys), just the rows with those keys, and of a request seen twice
        among them its earliest copy (the window only paid for then)."""
        # Looked up among every stored request by key alone: one narrow column. A key stored
        # under another id (a 64-bit coincidence) is settled by _settle_repeats. The key is
        # computed once, in the CTE: joined on an expression, DuckDB built the batch's side.
        inserted = db.execute(
            f"""
            INSERT INTO requests BY NAME
            WITH b AS (
                SELECT {_COLUMNS}, hash(b.request_id) AS request_key FROM ({checked}) AS b WHERE b.reason IS NULL
            )
            SELECT b.*, $load_id AS load_id, $now AS loaded_at
            FROM b ANTI JOIN requests AS r ON r.request_key = b.request_key
            {f"SEMI JOIN {only} AS k ON k.request_key = b.request_key {_FIRST_COPY}" if only else ""}
            """,
            {"files": files, "load_id": load_id, "now": now},
        ).fetchone()
        return int(inserted[0]) if inserted else 0

    @staticmethod
    def _settle_repeats(
        db: duckdb.DuckDBPyConnection, checked: str, files: list[str], load_id: str, source: str, now: datetime,
    ) -> tuple[int, int]:
        """(rows stored after all, conflicting repeats quarantined) for a batch some of whose
        valid rows were not stored: each is an identical repeat (nothing to do), a repeat
        with other values (quarantined), or a row whose key only coincided with another
        id's (stored now)."""
        same = " AND ".join(f"r.{quote(n)} IS NOT DISTINCT FROM b.{quote(n)}" for n in REQUEST_COLUMN_NAMES)
        # The stored rows the batch repeats, in two passes: the time span of those its keys
        # find, from two narrow columns; then whole rows from that span alone, the rest of
        # the table skipped by each row group's ts range. A look-back repeats the last hours:
        # comparing every column of every stored row cost most of a night's load.
        db.execute(
            f"CREATE OR REPLACE TEMP TABLE batch_keys AS SELECT DISTINCT hash(b.request_id) AS request_key"
            f" FROM ({checked}) AS b WHERE b.reason IS NULL",
            {"files": files},
        )
        span = db.execute(
            "SELECT CAST(min(r.ts) AS VARCHAR), CAST(max(r.ts) AS VARCHAR) FROM requests AS r"
            " SEMI JOIN batch_keys AS k ON k.request_key = r.request_key"
        ).fetchone()
        low, high = span if span and span[0] is not None else ("infinity", "-infinity")
        db.execute(
            "CREATE OR REPLACE TEMP TABLE repeated AS SELECT r.* FROM requests AS r"
            " SEMI JOIN batch_keys AS k ON k.request_key = r.request_key"
            f" WHERE r.ts BETWEEN {literal(low)}::TIMESTAMPTZ AND {literal(high)}::TIMESTAMPTZ"
        )
        db.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE unsettled AS
            SELECT b.*, EXISTS (SELECT 1 FROM repeated AS r
                                WHERE r.request_key = hash(b.request_id) AND r.request_id = b.request_id) AS known
            FROM ({checked}) AS b
            WHERE b.reason IS NULL
              AND NOT EXISTS (SELECT 1 FROM repeated AS r
                              WHERE r.request_key = hash(b.request_id) AND r.request_id = b.request_id AND {same})
            """,
            {"files": files},
        )
        db.execute("DROP TABLE batch_keys; DROP TABLE repeated")
        rescued = db.execute(
            f"""
            INSERT INTO requests BY NAME
            SELECT {_COLUMNS}, hash(b.request_id) AS request_key, $load_id AS load_id, $now AS loaded_at
            FROM unsettled AS b WHERE NOT b.known
            {_FIRST_COPY}
            """,
            {"load_id": load_id, "now": now},
        ).fetchone()
        conflicts = db.execute("SELECT count(*) FROM unsettled WHERE known").fetchone()
        _quarantine(db, "SELECT * FROM unsettled WHERE known", literal(REPEAT_REASON),
                    {"load_id": load_id, "source": source, "now": now})
        db.execute("DROP TABLE unsettled")
        return (int(rescued[0]) if rescued else 0), (int(conflicts[0]) if conflicts else 0)

    @staticmethod
    def _insert_quarantine(
        db: duckdb.DuckDBPyConnection, checked: str, files: list[str], load_id: str, source: str,
        now: datetime,
    ) -> None:
        """Rows that break a rule, each with every reason."""
        _quarantine(db, f"SELECT * FROM ({checked}) WHERE reason IS NOT NULL", "b.reason",
                    {"files": files, "load_id": load_id, "source": source, "now": now})

    def watermark(self, source: str) -> datetime | None:
        """The end of the last window loaded from `source`; None before its first load."""
        row = self._db.execute(
            "SELECT high_water FROM watermarks WHERE source = ?", [source]
        ).fetchone()
        return row[0] if row else None

    def latest_window_end(self) -> datetime | None:
        """End of the last loaded extraction window (analyses of alerts look back from there)."""
        row = self._db.execute("SELECT max(window_end) FROM loads").fetchone()
        return row[0] if row and row[0] else None

    def request_count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM requests").fetchone()
        return int(row[0]) if row else 0

    def quarantine_count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM quarantine").fetchone()
        return int(row[0]) if row else 0

    def quarantine_reasons(self) -> dict[str, int]:
        """How many quarantined rows broke each rule (a row may break several)."""
        return count_reasons(self._db, "SELECT reason FROM quarantine")
