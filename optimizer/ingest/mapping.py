"""From telemetry (log records, spans) to request-record fields, by attribute name.

Values are taken as they come; the warehouse decides whether they are valid. What this
module adds is only what the attributes cannot say themselves: the timestamp, the
latency of a span, the status of an errored span or log, and fallbacks for identity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from optimizer.schemas.records import MAX_TEXT_LENGTH, MAX_UNKNOWN_NAMES
from optimizer.schemas.telemetry import (
    APPLICATION_FALLBACKS,
    ATTRIBUTE_ALIASES,
    COLUMN_OF_ATTRIBUTE,
    REQUEST_ID_FALLBACKS,
)

_KNOWN_ATTRIBUTES = frozenset([*COLUMN_OF_ATTRIBUTE, *REQUEST_ID_FALLBACKS, *APPLICATION_FALLBACKS])

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ERROR_SEVERITY_NUMBER = 17  # OpenTelemetry log data model: 17-20 are ERROR


def record_from_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Each column's value from the first of its attribute aliases that is present."""
    record: dict[str, Any] = {}
    for column, aliases in ATTRIBUTE_ALIASES.items():
        for alias in aliases:
            if alias in attributes:
                record[column] = attributes[alias]
                break
    return record


def digest(item: Any) -> str:
    """What tells a source record from any other, kept for quarantine so a record seen again
    is not quarantined again: a hash of the record as it came (a page boundary or a staged
    type never changes it)."""
    data = item if isinstance(item, bytes) else orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def unknown_names(names: Iterable[Any]) -> str | None:
    """The attribute names that carry no request column, as a JSON list for quarantine:
    names only, since their values may be prompt or response text."""
    if _KNOWN_ATTRIBUTES.issuperset(names):
        return None
    extra = set(names) - _KNOWN_ATTRIBUTES
    shown = sorted(str(name)[:MAX_TEXT_LENGTH] for name in extra)
    return orjson.dumps(shown[:MAX_UNKNOWN_NAMES]).decode()


def _first_present(attributes: Mapping[str, Any], aliases: tuple[str, ...]) -> Any:
    for alias in aliases:
        if alias in attributes:
            return attributes[alias]
    return None


def columns_from_logs(logs: Sequence[Any]) -> dict[str, list[Any]]:
    """Staged columns from a page of Observatory log records (`POST /logs/search`).

    Column by column rather than record by record: a page holds thousands of records and
    this is the extraction's hot path. A record that is not an object, or has no
    attributes object, gets an `_error` for quarantine.
    """
    # JSON objects parse to dicts; the exact type check is several times cheaper than Mapping's.
    objects = [log if type(log) is dict else {} for log in logs]
    attributes = [log.get("attributes") for log in objects]
    usable = [a if type(a) is dict else {} for a in attributes]
    columns: dict[str, list[Any]] = {
        column: [_first_present(a, aliases) for a in usable] if len(aliases) > 1 else [a.get(aliases[0]) for a in usable]
        for column, aliases in ATTRIBUTE_ALIASES.items()
    }
    # The documented fallbacks, as spans have them: the span id for the request, the calling
    # service for the application (the specification's example log has only these).
    columns["request_id"] = [
        found if found is not None else _first_present(a, REQUEST_ID_FALLBACKS) or log.get("spanId")
        for found, a, log in zip(columns["request_id"], usable, objects, strict=True)
    ]
    columns["application_id"] = [
        found if found is not None else _first_present(a, APPLICATION_FALLBACKS)
        for found, a in zip(columns["application_id"], usable, strict=True)
    ]
    columns["ts"] = [log.get("timestamp") for log in objects]
    severities = [log.get("severityNumber") for log in objects]
    columns["status"] = [
        status if status is not None
        else ("error" if severity >= ERROR_SEVERITY_NUMBER else "ok") if isinstance(severity, int)
        else None
        for status, severity in zip(columns["status"], severities, strict=True)
    ]
    columns["_unknown"] = [unknown_names(a) for a in usable]
    columns["_digest"] = [digest(log) for log in logs]
    columns["_error"] = [
        "log record is not a JSON object" if type(log) is not dict
        else "log record has no attributes object" if type(found) is not dict
        else None
        for log, found in zip(logs, attributes, strict=True)
    ]
    return columns


def nanos_to_iso(value: Any) -> Any:
    """OTLP's `...UnixNano` (a string or an integer) as an ISO timestamp; odd values pass through."""
    try:
        return (_EPOCH + timedelta(microseconds=int(value) // 1000)).isoformat()
    except (TypeError, ValueError, OverflowError):
        return value


def latency_ms(start_nanos: Any, end_nanos: Any) -> float | None:
    try:
        return (int(end_nanos) - int(start_nanos)) / 1e6
    except (TypeError, ValueError):
        return None
