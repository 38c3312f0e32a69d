"""SQL that turns loosely typed staged rows into request records or quarantine reasons.

Generated from `REQUEST_COLUMNS`, so each rule of the contract is written once: a required
value is present, a value has its column's type, numbers are finite and in range, a status
is known. Every broken rule of a row is reported, joined with "; ", and `count_reasons`
tallies them per rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from optimizer.schemas.records import REQUEST_COLUMNS, Column

# cost_usd may be absent when the model's list price can compute it (docs/request-record.md).
DERIVABLE = frozenset({"cost_usd"})


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(value)


_NATIVE: dict[str, tuple[str, ...]] = {
    "integer": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"),
    "number": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
               "HUGEINT", "FLOAT", "DOUBLE"),
    "boolean": ("BOOLEAN",),
    "timestamp": ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "TIMESTAMP_US", "TIMESTAMP_MS", "TIMESTAMP_NS"),
    "string": ("VARCHAR",),
}


def is_native(column: Column, source_type: str | None) -> bool:
    """The source column already holds this kind: cast without checking each value."""
    return source_type is not None and (
        source_type in _NATIVE[column.kind] or (column.kind == "number" and source_type.startswith("DECIMAL"))
    )


def _typed(column: Column, raw: str, source_type: str | None = None) -> str:
    if column.kind == "string":
        return f"NULLIF(TRIM(CAST({raw} AS VARCHAR)), '')"
    if is_native(column, source_type):
        return f"CAST({raw} AS {column.sql_type})"
    if column.kind == "integer":
        # TRY_CAST('12.5' AS BIGINT) rounds; a token count of 12.5 is not an integer.
        as_double = f"TRY_CAST({raw} AS DOUBLE)"
        return f"CASE WHEN {as_double} = trunc({as_double}) THEN TRY_CAST({raw} AS BIGINT) END"
    if column.kind == "number":
        return f"TRY_CAST({raw} AS DOUBLE)"
    return f"TRY_CAST({raw} AS {column.sql_type})"


def _checks(column: Column, raw: str, typed: str, native: bool = False) -> list[str]:
    name = column.name
    shown = f"left(CAST({raw} AS VARCHAR), 60)"
    checks = []
    if column.required and name not in DERIVABLE:
        missing = f"{typed} IS NULL" if column.kind == "string" else f"{raw} IS NULL"
        checks.append(f"CASE WHEN {missing} THEN {_literal(name + ' is missing')} END")
    if column.kind != "string" and not native:
        checks.append(
            f"CASE WHEN {raw} IS NOT NULL AND {typed} IS NULL THEN "
            f"{_literal(f'{name} is not a valid {column.kind}: ')} || {shown} END"
        )
    if column.kind == "number":
        checks.append(
            f"CASE WHEN NOT isfinite({typed}) THEN {_literal(name + ' is not finite')} END"
        )
    if column.minimum is not None:
        checks.append(
            f"CASE WHEN {typed} < {_number(column.minimum)} THEN "
            f"{_literal(f'{name} is below {_number(column.minimum)}: ')} || CAST({typed} AS VARCHAR) END"
        )
    if column.maximum is not None:
        checks.append(
            f"CASE WHEN {typed} > {_number(column.maximum)} THEN "
            f"{_literal(f'{name} is above {_number(column.maximum)}: ')} || CAST({typed} AS VARCHAR) END"
        )
    if column.allowed:
        allowed = ", ".join(_literal(value) for value in column.allowed)
        checks.append(
            f"CASE WHEN {typed} NOT IN ({allowed}) THEN "
            f"{_literal(f'{name} is not one of ' + ', '.join(column.allowed) + ': ')} || {typed} END"
        )
    return checks


def typed_projection(present: Mapping[str, str], *, source_alias: str = "s", with_raw: bool = True) -> str:
    """SELECT list: each contract column typed, plus `_problems` (NULL for a clean row).

    `present` maps the columns the staged relation has to their DuckDB types (a column
    that already has its kind's type is cast without a check per value); the others read
    as NULL. A staged `_error` (a problem found before SQL, such as unparseable JSON)
    replaces the column checks, which would only repeat it field by field. `_raw` (the
    source record as text) is carried when present and built from the row otherwise.
    """
    items = []
    problems: list[str] = []
    for column in REQUEST_COLUMNS:
        raw = f"{source_alias}.{quote(column.name)}" if column.name in present else "NULL"
        source_type = present.get(column.name)
        typed = _typed(column, raw, source_type)
        problems += _checks(column, raw, typed, is_native(column, source_type))
        if column.default is not None:
            typed = f"coalesce({typed}, {str(column.default).upper()})"
        items.append(f"{typed} AS {quote(column.name)}")
    checked = f"NULLIF(concat_ws('; ', {', '.join(problems)}), '')"
    if "_error" in present:
        checked = f"coalesce(NULLIF({source_alias}._error, ''), {checked})"
    if with_raw and "_raw" in present:
        items.append(f"{source_alias}._raw AS _raw")
    elif with_raw:
        # The raw record is built only for rows that can end in quarantine: those breaking a
        # rule, and those whose missing cost the catalog may not be able to price.
        cost = f"{source_alias}.cost_usd" if "cost_usd" in present else "NULL"
        items.append(
            f"CASE WHEN {checked} IS NOT NULL OR {cost} IS NULL "
            f"THEN CAST(to_json({source_alias}) AS VARCHAR) END AS _raw"
        )
    items.append(f"{checked} AS _problems")
    return ",\n    ".join(items)


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
