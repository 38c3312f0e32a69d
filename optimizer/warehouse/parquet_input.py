"""Parquet input: the files a batch names, and whether their columns can be request records.

One column check serves both readers of Parquet: a load, which casts and checks every value
(so a column of any type will do, and a bad value is quarantined), and the analyses, which
read columns as they are (so a column of the wrong type is refused).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb

from optimizer.errors import BadInputError
from optimizer.schemas.records import REQUEST_COLUMNS

# DuckDB type names each kind of column accepts as it is.
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_ACCEPTED_TYPES: dict[str, tuple[str, ...]] = {
    "integer": _INTEGER_TYPES,
    "number": (*_INTEGER_TYPES, "FLOAT", "DOUBLE", "DECIMAL"),
    "boolean": ("BOOLEAN",),
    "string": ("VARCHAR",),
    "timestamp": ("TIMESTAMP", "DATE"),
}
_KIND_NAMES = {"integer": "an integer", "number": "a number", "boolean": "a boolean",
               "string": "text", "timestamp": "a timestamp"}


def parquet_parts(paths: Iterable[Path]) -> list[str]:
    """Files and staging directories as the Parquet files to read (empty directories drop out)."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(str(part) for part in path.glob("*.parquet"))
        else:
            files.append(str(path))
    return files


def parquet_columns(
    db: duckdb.DuckDBPyConnection,
    files: Sequence[str],
    *,
    label: str,
    required: Iterable[str],
    check_types: bool,
    missing: str = "missing required column(s)",
) -> dict[str, str]:
    """The input's columns and their DuckDB types.

    Raises BadInputError, starting with `label`, when the files cannot be read as Parquet,
    lack a `required` column (the message says `missing` and names them), or, with
    `check_types`, hold a request-record column whose type is not its kind's.
    """
    try:
        described = db.execute(
            "DESCRIBE SELECT * FROM read_parquet($files, union_by_name = true)", {"files": list(files)}
        ).fetchall()
    except duckdb.Error as exc:
        raise BadInputError(f"{label}: cannot read Parquet input ({exc})".splitlines()[0]) from exc
    present = {str(name): str(kind) for name, kind, *_ in described}
    absent = [column for column in dict.fromkeys(required) if column not in present]
    if absent:
        raise BadInputError(f"{label}: {missing} {', '.join(absent)}")
    if check_types:
        for column in REQUEST_COLUMNS:
            found = present.get(column.name)
            if found and found != '"NULL"' and not found.startswith(_ACCEPTED_TYPES[column.kind]):
                raise BadInputError(
                    f"{label}: column {column.name} has type {found}, expected {_KIND_NAMES[column.kind]}"
                )
    return present
