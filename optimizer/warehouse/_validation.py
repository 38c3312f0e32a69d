"""SQL that turns loosely typed staged rows into request records or quarantine reasons.

Generated from `REQUEST_COLUMNS`, so each rule of the contract is written once: a required
value is present, a value has its column's type (never cast from a nested or binary one),
numbers are finite and in range, text has an id's length, a timestamp is plausible, a status
is known. Every broken rule of a row is reported, joined with "; ", and `count_reasons`
tallies them per rule.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb

from optimizer.schemas.records import (
    DEFAULT_BOUNDS,
    MAX_TEXT_LENGTH,
    MAX_UNKNOWN_NAMES,
    REQUEST_COLUMN_NAMES,
    REQUEST_COLUMNS,
    Column,
    RecordBounds,
)
from optimizer.schemas.telemetry import missing_hint

# cost_usd may be absent when the model's list price can compute it (docs/request-record.md).
DERIVABLE = frozenset({"cost_usd"})
TEXT_COLUMN_NAMES = frozenset(column.name for column in REQUEST_COLUMNS if column.kind == "string")


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
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


TOO_LONG = " is longer than "  # in every reason of overlong text, as in 'model is longer than 256 ...'
# Source types that hold no single value: a load never casts them to text or a number.
_NESTED_PREFIXES = ("STRUCT", "MAP", "UNION")
_BINARY_TYPES = ("BLOB", "BIT", "GEOMETRY")
# Staged columns that are not request-record columns: never listed as unknown input.
STAGING_COLUMNS = frozenset({"_error", "_unknown", "_digest"})


def is_unusable(source_type: str | None) -> bool:
    """A nested or binary source column: its values are refused, not cast."""
    if source_type is None:
        return False
    return (
        source_type.startswith(_NESTED_PREFIXES) or source_type.endswith("]") or source_type in _BINARY_TYPES
    )


def _timestamp(value: datetime) -> str:
    return f"TIMESTAMPTZ '{value.isoformat()}'"


def _typed(column: Column, raw: str, source_type: str | None = None) -> str:
    if is_unusable(source_type):
        return f"CAST(NULL AS {column.sql_type})"
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


def _blank(raw: str, typed: str) -> str:
    """Text that is missing once trimmed. Only text that starts with a space, a control or a
    non-ASCII character can trim to nothing, so a usual id passes on one comparison instead of
    a trimmed copy of it (most of the cost of checking a file of long unique ids)."""
    text = f"CAST({raw} AS VARCHAR)"
    return f"{raw} IS NULL OR (({text} < '!' OR {text} >= chr(128)) AND {typed} IS NULL)"


# A broken rule: the SQL condition that finds it and the reason it gives (an expression).
Check = tuple[str, str]


def _checks(column: Column, raw: str, typed: str, source_type: str | None, bounds: RecordBounds,
            telemetry: bool = False) -> list[Check]:
    name = column.name
    hint = missing_hint(name) if telemetry else None
    is_missing = literal(f"{name} is missing" + (f": {hint}" if hint else ""))
    required = column.required and name not in DERIVABLE
    if is_unusable(source_type):
        # No cast, so no other rule applies: the value is there and is no value, or is missing.
        checks = [(f"{raw} IS NOT NULL", literal(f"{name} has type {source_type}, not a single value"))]
        return checks + ([(f"{raw} IS NULL", is_missing)] if required else [])
    shown = f"left(CAST({raw} AS VARCHAR), 60)"
    checks = []
    if required:
        checks.append((_blank(raw, typed) if column.kind == "string" else f"{raw} IS NULL", is_missing))
    if column.kind != "string" and not is_native(column, source_type):
        checks.append((f"{raw} IS NOT NULL AND {typed} IS NULL",
                       f"{literal(f'{name} is not a valid {column.kind}: ')} || {shown}"))
    if column.kind == "timestamp":
        checks.append((f"{typed} < {_timestamp(bounds.oldest_ts)}",
                       f"{literal(f'{name} is before the accepted range: ')} || CAST({typed} AS VARCHAR)"))
        checks.append((f"{typed} >= {_timestamp(bounds.newest_ts)}",
                       f"{literal(f'{name} is after the accepted range: ')} || CAST({typed} AS VARCHAR)"))
    if column.kind == "number":
        checks.append((f"NOT isfinite({typed})", literal(name + " is not finite")))
    if column.minimum is not None:
        checks.append((f"{typed} < {_number(column.minimum)}",
                       f"{literal(f'{name} is below {_number(column.minimum)}: ')} || CAST({typed} AS VARCHAR)"))
    if column.maximum is not None:
        checks.append((f"{typed} > {_number(column.maximum)}",
                       f"{literal(f'{name} is above {_number(column.maximum)}: ')} || CAST({typed} AS VARCHAR)"))
    if column.allowed:
        allowed = ", ".join(literal(value) for value in column.allowed)
        checks.append((f"{typed} NOT IN ({allowed})",
                       f"{literal(f'{name} is not one of ' + ', '.join(column.allowed) + ': ')} || left({typed}, 60)"))
    return checks


def _too_long(text_columns: list[tuple[str, str, str]], limit: int) -> list[Check]:
    """One check of every text column's length: a row's longest byte length first (kept with
    each string, so the common row costs one comparison), each column's characters only then."""
    if not text_columns:
        return []
    each = [
        f"CASE WHEN length({typed}) > {limit} THEN {literal(f'{name}{TOO_LONG}{limit} characters: ')}"
        f" || length({typed}) END"
        for name, _, typed in text_columns
    ]
    longest = f"greatest({', '.join(f'strlen(CAST({raw} AS VARCHAR))' for _, raw, _ in text_columns)})"
    return [(f"{longest} > {limit}", f"NULLIF(concat_ws('; ', {', '.join(each)}), '')")]


def joined_reasons(checks: list[Check]) -> str:
    """Every broken rule of a row joined with '; ', NULL for a clean row. The clean row, by
    far the common one, costs only the conditions: no reason text is built for it."""
    if not checks:
        return "CAST(NULL AS VARCHAR)"
    each = ", ".join(f"CASE WHEN {condition} THEN {reason} END" for condition, reason in checks)
    anything = " OR ".join(f"({condition})" for condition, _ in checks)
    return f"CASE WHEN {anything} THEN NULLIF(concat_ws('; ', {each}), '') END"


def _shown(raw: str, source_type: str, limit: int) -> str:
    """A source value as quarantine keeps it: text cut to `limit`, nested or binary values by type."""
    if is_unusable(source_type):
        return f"CASE WHEN {raw} IS NOT NULL THEN {literal(f'<{source_type}>')} END"
    if source_type == "VARCHAR":
        return (
            f"CASE WHEN length({raw}) > {limit} THEN left({raw}, {limit}) || '... ('"
            f" || length({raw}) || ' characters)' ELSE {raw} END"
        )
    return raw


def quarantine_record(present: Mapping[str, str], *, source_alias: str = "s", limit: int = MAX_TEXT_LENGTH) -> str:
    """The JSON quarantine keeps of a staged row: the contract's columns as they came (long
    text cut), and the names of any other columns or attributes, never their values, since
    those may be prompt or response text."""
    fields = [
        f"{quote(name)} := {_shown(f'{source_alias}.{quote(name)}', present[name], limit)}"
        for name in REQUEST_COLUMN_NAMES if name in present
    ]
    if "_unknown" in present:
        unknown = f"CAST({source_alias}._unknown AS JSON)"
    else:
        names = [n[:limit] for n in present if n not in REQUEST_COLUMN_NAMES and n not in STAGING_COLUMNS]
        unknown = "[" + ", ".join(literal(n) for n in names[:MAX_UNKNOWN_NAMES]) + "]::VARCHAR[]"
    fields.append(f"unknown_columns := {unknown}")
    return f"CAST(to_json(struct_pack({', '.join(fields)})) AS VARCHAR)"


@dataclass(frozen=True)
class _Rules:
    """The contract's rules over one staged relation: each column's typed value and checks."""

    typed: list[tuple[str, str]]  # (column name, its typed value)
    checks: list[Check]  # every rule, in the order its reasons are listed
    by_column: list[list[str]]  # each present column's conditions, its length rule among them


def _rules(present: Mapping[str, str], bounds: RecordBounds, source_alias: str) -> _Rules:
    typed_columns: list[tuple[str, str]] = []
    problems: list[Check] = []
    by_column: list[list[str]] = []
    text_columns: list[tuple[str, str, str]] = []
    for column in REQUEST_COLUMNS:
        raw = f"{source_alias}.{quote(column.name)}" if column.name in present else "NULL"
        source_type = present.get(column.name)
        typed = _typed(column, raw, source_type)
        # Rows staged from telemetry carry `_unknown`: a missing column there is told which
        # attribute would have given it.
        checks = _checks(column, raw, typed, source_type, bounds, telemetry="_unknown" in present)
        problems += checks
        conditions = [condition for condition, _ in checks]
        if column.kind == "string" and column.name in present and not is_unusable(source_type):
            text_columns.append((column.name, raw, typed))
            if bounds.max_text_length is not None:
                conditions.append(f"strlen(CAST({raw} AS VARCHAR)) > {bounds.max_text_length}")
        by_column.append(conditions)
        if column.default is not None:
            typed = f"coalesce({typed}, {str(column.default).upper()})"
        typed_columns.append((column.name, typed))
    if bounds.max_text_length is not None:
        problems += _too_long(text_columns, bounds.max_text_length)
    if "_error" in present:
        by_column.append([f"NULLIF({source_alias}._error, '') IS NOT NULL"])
    return _Rules(typed_columns, problems, [conditions for conditions in by_column if conditions])


def typed_projection(
    present: Mapping[str, str], *, bounds: RecordBounds = DEFAULT_BOUNDS, source_alias: str = "s",
    with_raw: bool = True, columns: Collection[str] | None = None, as_is: Collection[str] = (),
) -> str:
    """SELECT list: each contract column typed, plus `_problems` (NULL for a clean row).

    `present` maps the columns the staged relation has to their DuckDB types (a column
    that already has its kind's type is cast without a check per value); the others read
    as NULL. A staged `_error` (a problem found before SQL, such as unparseable JSON)
    replaces the column checks, which would only repeat it field by field. With `with_raw`,
    `_raw` is what quarantine would keep of the row and `_row_hash` tells rows apart (the
    staged `_digest` of a JSON record, else every column's value, the unknown ones too); a
    statement that does not use them never computes them. `columns` keeps only those typed
    columns (default all); every column's rules are checked all the same. Text columns in
    `as_is` hold no value that typing changes (`changed_by_typing`) and are read as they are,
    without trimming every value.
    """
    rules = _rules(present, bounds, source_alias)
    plain = {name for name in as_is if name in TEXT_COLUMN_NAMES and present.get(name) == "VARCHAR"}
    items = [f"{f'{source_alias}.{quote(name)}' if name in plain else typed} AS {quote(name)}"
             for name, typed in rules.typed if columns is None or name in columns]
    checked = joined_reasons(rules.checks)
    if "_error" in present:
        checked = f"coalesce(NULLIF({source_alias}._error, ''), {checked})"
    if with_raw:
        shown = bounds.max_text_length or MAX_TEXT_LENGTH
        items.append(f"{quarantine_record(present, source_alias=source_alias, limit=shown)} AS _raw")
        whole_row = f"md5(CAST(to_json({source_alias}) AS VARCHAR))"
        row_hash = f"coalesce({source_alias}._digest, {whole_row})" if "_digest" in present else whole_row
        items.append(f"{row_hash} AS _row_hash")
    items.append(f"{checked} AS _problems")
    return ",\n    ".join(items)


def changed_by_typing(name: str, *, source_alias: str = "s") -> str:
    """A text value that typing changes: trimmed, or blank and so NULL."""
    raw = f"{source_alias}.{quote(name)}"
    return f"{raw} IS NOT NULL AND NULLIF(TRIM({raw}), '') IS DISTINCT FROM {raw}"


def suspect_conditions(
    present: Mapping[str, str], *, bounds: RecordBounds = DEFAULT_BOUNDS, source_alias: str = "s",
) -> list[str]:
    """Conditions, each on one staged column, that hold for every row whose `_problems`
    (`typed_projection`) is not NULL, and for few others (text long in bytes, not in
    characters). Filtering a scan by one of them is evaluated in the scan, on a column
    alone, once per dictionary value: on a clean file much cheaper than `_problems` for
    every row, which needs every column of the row at once."""
    return [" OR ".join(f"({condition})" for condition in conditions)
            for conditions in _rules(present, bounds, source_alias).by_column]


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
