"""The analyses' per-day partial results, kept so a night reads one new day, not fourteen.

Every window query of `RequestSource` is two steps: a *partial* groups the window's rows by UTC
day (and by whatever the query groups by) into counts, sums, minima and maxima, and a *merge*
adds the days up and decides (`optimizer.warehouse.analytics`). A whole day's partial does not
depend on the window around it, so the warehouse keeps it, in a table of its own per partial,
and a night computes only the days whose rows changed since.

Whether a kept day is still right is checked, not assumed: each day's *fingerprint* is its row
count and a hash of every row's key, load and previous answer (the only stored value a later
load rewrites), read in one scan of four narrow columns. A kept day carries the fingerprints of
the days it read and the version (text) of its query: a new version keeps a table of its own.
Some partials read neighbouring days (`neighbours`: a shadow pair's partner may be just past
midnight) and say which day each of their rows came from, so a merge counts only what lies in
its window. A window not on day boundaries has its part-days computed afresh.

The kept tables are derived: dropping them loses nothing. A warehouse that cannot be written
(opened read-only, or another writer in the way) is read as if nothing were kept.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb

from optimizer.warehouse._connection import transaction

logger = logging.getLogger(__name__)



def day_of(column: str) -> str:
    """The UTC day of a timestamp column, as days since 1970-01-01 (`epoch(ts) // 86400` would
    round: DuckDB's `//` on a DOUBLE divides, and the cast rounds)."""
    return f"CAST(epoch_ms({column}) // 86400000 AS INTEGER)"


DAY = day_of("ts")  # a row's UTC day
# The rows a partial reads: its days ($lo to $hi), inside the window ($start to $end; a kept
# day's window is all time).
ROWS = "ts >= $lo AND ts < $hi AND ts >= $start AND ts < $end"
# The rows a partial may join them with: its neighbouring days too.
NEIGHBOUR_ROWS = "ts >= $reach_lo AND ts < $reach_hi AND ts >= $start AND ts < $end"
PREVIOUS_ANSWER = "__previous_answer_ts__"  # stands for the source's expression of a row's previous answer
_SECONDS_PER_DAY = 86400
MAX_NEIGHBOURS = 1  # the day fingerprints a window reads reach this far past its days
FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)  # the bounds of a window that is all time
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
_ALL_TIME = {"start": FAR_PAST, "end": FAR_FUTURE}


@dataclass(frozen=True)
class DayPartial:
    """A query over `requests` giving `day` and mergeable columns for the rows of `ROWS`."""

    name: str
    sql: str
    neighbours: int = 0  # the days either side a day's partial reads (see NEIGHBOUR_ROWS)

    def __post_init__(self) -> None:
        if not 0 <= self.neighbours <= MAX_NEIGHBOURS:
            raise ValueError(f"partial {self.name}: neighbours must be 0 to {MAX_NEIGHBOURS}")

    @property
    def version(self) -> str:
        return hashlib.sha256(f"{self.neighbours}:{self.sql}".encode()).hexdigest()[:12]

    def query(self, previous_prompt: str) -> str:
        return self.sql.replace(PREVIOUS_ANSWER, previous_prompt)


def used_parameters(sql: str, parameters: Mapping[str, object]) -> dict[str, object]:
    """Those of `parameters` that `sql` names (DuckDB refuses any other)."""
    return {name: value for name, value in parameters.items() if f"${name}" in sql}


def _run(db: duckdb.DuckDBPyConnection, sql: str, parameters: Mapping[str, object]) -> None:
    db.execute(sql, used_parameters(sql, parameters))


def _day_start(day: int) -> datetime:
    return datetime.fromtimestamp(day * _SECONDS_PER_DAY, UTC)


def _runs(days: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive days as [first, past-last) ranges."""
    start = None
    for i, day in enumerate(days):
        start = day if start is None else start
        if i + 1 == len(days) or days[i + 1] != day + 1:
            yield start, day + 1
            start = None


def window_days(window: Mapping[str, datetime]) -> dict[str, int]:
    """The days a window touches, first and past-last: what a merge keeps of rows that say
    which day they came from."""
    return {"first_day": int(window["start"].timestamp()) // _SECONDS_PER_DAY,
            "past_day": -(-int(window["end"].timestamp()) // _SECONDS_PER_DAY)}


def _bounds(first: datetime, past: datetime, neighbours: int, window: Mapping[str, datetime]) -> dict[str, datetime]:
    reach = timedelta(days=neighbours)
    return {"lo": first, "hi": past, "reach_lo": first - reach, "reach_hi": past + reach, **window}


def fresh_partial(db: duckdb.DuckDBPyConnection, partial: DayPartial, target: str, window: Mapping[str, datetime],
                  previous_prompt: str) -> None:
    """`partial` over the whole window into the temporary table `target`, nothing stored."""
    _run(db, f"CREATE OR REPLACE TEMP TABLE {target} AS {partial.query(previous_prompt)}",
         _bounds(window["start"], window["end"], partial.neighbours, window))


@dataclass
class StoredDayPartials:
    """The warehouse's kept partials (migration 0010's `day_partials` and a table per partial
    and version). `computed` counts, per partial, the days a window had to compute."""

    db: duckdb.DuckDBPyConnection
    previous_prompt: str
    computed: dict[str, int] = field(default_factory=dict)
    _fingerprints: dict[tuple[int, int], dict[int, str]] = field(default_factory=dict)
    _state: tuple[dict[str, dict[int, str]], set[str]] | None = None

    def assemble(self, partial: DayPartial, target: str, window: Mapping[str, datetime]) -> None:
        """`partial` over `window` as the temporary view `target`: its whole days from the kept
        table (computed and kept first where missing or stale), part-days at its ends afresh."""
        start, end = window["start"], window["end"]
        first, past = -(-int(start.timestamp()) // _SECONDS_PER_DAY), int(end.timestamp()) // _SECONDS_PER_DAY
        days = list(range(first, past))
        table = f"day_partial_{partial.name}_{partial.version}"
        stale = self._refresh(partial, table, self._expected(partial, days)) if days else None
        if stale is None:  # nothing kept: all of it afresh
            fresh_partial(self.db, partial, target, window, self.previous_prompt)
            touched = window_days(window)
            self.computed[partial.name] = touched["past_day"] - touched["first_day"]
            return
        ends = [(lo, hi) for lo, hi in ((start, _day_start(first)), (_day_start(past), end)) if lo < hi]
        self.db.execute(f"CREATE OR REPLACE TEMP TABLE {target}_fresh AS FROM {table} LIMIT 0")
        for lo, hi in ends:
            _run(self.db, f"INSERT INTO {target}_fresh BY NAME {partial.query(self.previous_prompt)}",
                 _bounds(lo, hi, partial.neighbours, window))
        self.db.execute(f"CREATE OR REPLACE TEMP VIEW {target} AS FROM {table} WHERE day >= {first} AND day < {past} "
                        f"UNION ALL BY NAME FROM {target}_fresh")
        self.computed[partial.name] = stale + len(ends)

    def _expected(self, partial: DayPartial, days: list[int]) -> dict[int, str]:
        """Each day's key: the partial's version and the fingerprints of the days it reads."""
        reach = partial.neighbours
        prints = self._day_fingerprints(days[0] - MAX_NEIGHBOURS, days[-1] + 1 + MAX_NEIGHBOURS)
        return {day: hashlib.sha256(":".join([partial.version, *(prints.get(d, "-") for d in range(
            day - reach, day + reach + 1))]).encode()).hexdigest()[:24] for day in days}

    def _day_fingerprints(self, first: int, past: int) -> dict[int, str]:
        """One aggregate per day over that day's `ts` range: DuckDB skips the row groups outside
        each (rows arrive in time order), which costs a third of grouping every row by its day."""
        key = (first, past)
        if key not in self._fingerprints:
            rows = self.db.execute(" UNION ALL ".join(
                f"""SELECT {day} AS day, count(*), bit_xor(hash(request_key, load_id, previous_prompt_ts))
                    FROM requests WHERE ts >= '{_day_start(day).isoformat()}' AND ts < '{_day_start(day + 1).isoformat()}'"""
                for day in range(first, past))).fetchall()
            self._fingerprints[key] = {int(day): f"{n}/{digest}" for day, n, digest in rows if n}
        return self._fingerprints[key]

    def _kept(self) -> tuple[dict[str, dict[int, str]], set[str]] | None:
        """What is kept: each table's days and their keys, read once; and the tables. None when
        the warehouse cannot be written (opened read-only)."""
        if self._state is None:
            if self.db.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()"
                               ).fetchone() != (False,):
                return None
            kept: dict[str, dict[int, str]] = {}
            for table, day, key in self.db.execute("SELECT partial, day, fingerprint FROM day_partials").fetchall():
                kept.setdefault(table, {})[int(day)] = key
            tables = {name for (name,) in self.db.execute(
                "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND starts_with(table_name, 'day_partial_')"
            ).fetchall()}
            self._state = (kept, tables)
        return self._state

    def _refresh(self, partial: DayPartial, table: str, expected: dict[int, str]) -> int | None:
        """Compute and keep the days whose kept key differs; how many, or None when the
        warehouse cannot be written."""
        state = self._kept()
        if state is None:
            return None
        kept, tables = state
        stale = sorted(day for day, key in expected.items() if kept.get(table, {}).get(day) != key)
        if not stale:
            return 0
        query = partial.query(self.previous_prompt)
        old = sorted(name for name in tables if name.startswith(f"day_partial_{partial.name}_") and name != table)
        try:
            with transaction(self.db):
                for name in old:  # an earlier version of the query
                    self.db.execute(f"DROP TABLE {name}")
                    self.db.execute("DELETE FROM day_partials WHERE partial = $t", {"t": name})
                if table not in tables:  # (another connection may have made it since)
                    _run(self.db, f"CREATE TABLE IF NOT EXISTS {table} AS {query} LIMIT 0",
                         _bounds(FAR_PAST, FAR_PAST, partial.neighbours, _ALL_TIME))
                self.db.execute(f"DELETE FROM {table} WHERE list_contains($days, day)", {"days": stale})
                for lo, hi in _runs(stale):
                    _run(self.db, f"INSERT INTO {table} BY NAME {query}",
                         _bounds(_day_start(lo), _day_start(hi), partial.neighbours, _ALL_TIME))
                self.db.execute("INSERT OR REPLACE INTO day_partials SELECT $t, unnest($days), unnest($keys)",
                                {"t": table, "days": stale, "keys": [expected[day] for day in stale]})
        except (duckdb.TransactionException, duckdb.ConstraintException, duckdb.CatalogException) as exc:
            # Another connection kept the same days at the same time: read them afresh this once.
            logger.info("day partial %s not kept: %s", partial.name, str(exc).splitlines()[0])
            self._state = None
            return None
        tables.difference_update(old)
        tables.add(table)
        kept.setdefault(table, {}).update((day, expected[day]) for day in stale)
        return len(stale)
