"""Parquet staging files for records that arrive as JSON.

Every column is written as text: a value of the wrong type (a token count of "n/a") must
survive staging so the warehouse can quarantine it with its reason, and text is the one
type every JSON value has. The warehouse casts and checks each column on load. A staging
file appears under its final name only when complete, so a crashed extraction never
leaves half a window behind for the load to pick up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from optimizer.schemas.records import REQUEST_COLUMN_NAMES

STAGED_COLUMNS: tuple[str, ...] = (*REQUEST_COLUMN_NAMES, "_raw", "_error")
STAGING_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in STAGED_COLUMNS])


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


class StagingWriter:
    """Writes staged rows to `path` in row groups; renames into place on success."""

    def __init__(self, path: Path, *, row_group_size: int = 50_000) -> None:
        self.path = path
        self.rows_written = 0
        self._partial = path.with_name(path.name + ".partial")
        self._row_group_size = row_group_size
        self._pending: dict[str, list[str | None]] = {name: [] for name in STAGED_COLUMNS}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._partial, STAGING_SCHEMA, compression="zstd")

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        pending = self._pending
        for row in rows:
            for name in STAGED_COLUMNS:
                pending[name].append(as_text(row.get(name)))
            self.rows_written += 1
            if len(pending["_raw"]) >= self._row_group_size:
                self._flush()

    def _flush(self) -> None:
        if self._pending["_raw"]:
            self._writer.write_table(pa.table(self._pending, schema=STAGING_SCHEMA))
            self._pending = {name: [] for name in STAGED_COLUMNS}

    def close(self) -> Path:
        self._flush()
        self._writer.close()
        os.replace(self._partial, self.path)
        return self.path

    def abort(self) -> None:
        self._writer.close()
        self._partial.unlink(missing_ok=True)

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
