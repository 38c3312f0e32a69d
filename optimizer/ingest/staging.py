"""Parquet staging for records that arrive as JSON.

A staging unit is a directory of Parquet part files, one per batch (a page of log records,
a trace file), which appears under its final name only when complete: a crashed extraction
never leaves half a window behind for the load to pick up.

Each column keeps its proper type when every value in the batch has it (token counts as
int64, costs as float64) and falls back to text when one does not: a token count of "n/a"
must survive staging so the warehouse can quarantine it with its reason, and text is the
one type every JSON value has. The warehouse casts and checks each column on load either way.

An object or a list where a request column wants one value is not turned into text (it
would be stored as an application id): the value is dropped and the row carries the
reason in `_error`. What a record had besides its request columns is staged by name only,
in `_unknown`, never by value: it may be prompt or response text. `_digest` identifies the
source record, so quarantine keeps it once however often it is extracted.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from optimizer.schemas.records import REQUEST_COLUMNS

STAGED_COLUMNS: tuple[str, ...] = (*(c.name for c in REQUEST_COLUMNS), "_unknown", "_digest", "_error")
_NOT_A_VALUE: dict[type, str] = {dict: "an object", list: "a list"}
_KIND = {c.name: c.kind for c in REQUEST_COLUMNS}
_TYPED: dict[str, tuple[pa.DataType, frozenset[type]]] = {
    "string": (pa.string(), frozenset({str})),
    "timestamp": (pa.string(), frozenset({str})),
    "integer": (pa.int64(), frozenset({int})),
    "number": (pa.float64(), frozenset({int, float})),
    "boolean": (pa.bool_(), frozenset({bool})),
}


def as_text(value: Any) -> str | None:
    """A JSON value as text that DuckDB casts back to the same value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def as_texts(values: Iterable[Any]) -> list[str | None]:
    """`as_text` of each value, with text, null and numbers (the usual mix) spelled inline."""
    return [value if (kind := type(value)) is str or value is None
            else repr(value) if kind is float or kind is int
            else as_text(value) for value in values]


def staged_array(name: str, values: Sequence[Any], kinds: set[type] | None = None) -> pa.Array:
    """The column in its kind's type if every value has it and fits, else as text (where
    validation quarantines what does not fit, rather than the whole page failing)."""
    arrow_type, accepted = _TYPED[_KIND.get(name, "string")]
    if (set(map(type, values)) if kinds is None else kinds) - {type(None)} <= accepted:
        try:
            return pa.array(values, arrow_type)
        except (OverflowError, pa.ArrowInvalid):
            pass
    return pa.array(as_texts(values), pa.string())


def _refuse_nested(name: str, values: list[Any], errors: list[Any]) -> None:
    """Drop objects and lists from a request column, saying so in each row's `_error`."""
    for row, value in enumerate(values):
        what = _NOT_A_VALUE.get(type(value))
        if what is not None:
            values[row] = None
            problem = f"{name} is {what}, not a single value"
            errors[row] = f"{errors[row]}; {problem}" if errors[row] else problem


class StagingWriter:
    """Writes staged batches as part files under `path` (a directory), renamed into place on success."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows_written = 0
        self._parts = 0
        self._partial = path.with_name(path.name + ".partial")
        shutil.rmtree(self._partial, ignore_errors=True)
        self._partial.mkdir(parents=True)

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Rows as dicts keyed by column name."""
        batch = list(rows)
        self.write_columns({name: [row.get(name) for row in batch] for name in STAGED_COLUMNS})

    def write_columns(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Rows given column by column (every list the same length; missing columns are empty)."""
        count = len(next(iter(columns.values()), []))
        if count == 0:
            return
        errors: list[Any] | None = None  # `_error`, copied once a column refuses a nested value
        arrays = {}
        for name in STAGED_COLUMNS:
            values: Sequence[Any] = columns[name] if name in columns else [None] * count
            kinds = set(map(type, values))
            if name in _KIND and kinds & _NOT_A_VALUE.keys():
                values = list(values)
                if errors is None:
                    errors = list(columns.get("_error") or [None] * count)
                _refuse_nested(name, values, errors)
                kinds -= _NOT_A_VALUE.keys()
            if name == "_error" and errors is not None:
                values, kinds = errors, set(map(type, errors))
            arrays[name] = staged_array(name, values, kinds)
        table = pa.table(arrays)
        # snappy, not zstd: a staging file lives for one run, and this is the hot path
        pq.write_table(table, self._partial / f"part-{self._parts:05d}.parquet", compression="snappy")
        self._parts += 1
        self.rows_written += count

    def close(self) -> Path:
        shutil.rmtree(self.path, ignore_errors=True)
        os.replace(self._partial, self.path)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self._partial, ignore_errors=True)

    def __enter__(self) -> StagingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

