"""From telemetry (log records, spans) to request-record fields, by attribute name.

Values are taken as they come; the warehouse decides whether they are valid. What this
module adds is only what the attributes cannot say themselves: the timestamp, the
latency of a span, the status of an errored span or log, and fallbacks for identity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
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


@dataclass(frozen=True)
class AttributePlan:
    """Where each column's value sits among the values of an attributes object with these
    names, in this order: the first alias present wins, even with a null value. Records of
    one producer share a handful of such shapes, so the rule is applied once per shape
    rather than once per record and column; a record's values are then picked by position."""

    present: tuple[bool, ...]  # per MAPPED column: does one of its attributes exist
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # (*values, None) -> MAPPED values
    unknown: str | None

    @classmethod
    def of(cls, names: tuple[str, ...]) -> AttributePlan:
        position = {name: at for at, name in enumerate(names)}
        absent = len(names)  # the None appended after the values
        found = [next((position[alias] for alias in aliases if alias in position), absent)
                 for aliases in MAPPED_ALIASES]
        return cls(present=tuple(at != absent for at in found), pick=itemgetter(*found),
                   unknown=unknown_names(names))


# The attributes a column or a fallback comes from, in the order a plan picks them.
MAPPED_ALIASES: tuple[tuple[str, ...], ...] = (*ATTRIBUTE_ALIASES.values(), REQUEST_ID_FALLBACKS, APPLICATION_FALLBACKS)
MAPPED: tuple[str, ...] = (*ATTRIBUTE_ALIASES, "_request_id_fallback", "_application_fallback")
_PLANS: dict[tuple[str, ...], AttributePlan] = {}
_MAX_PLANS = 4096  # a hostile producer may send every record in a shape of its own


def plan_for(names: tuple[str, ...]) -> AttributePlan:
    plan = _PLANS.get(names)
    if plan is None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        plan = _PLANS[names] = AttributePlan.of(names)
    return plan


def record_from_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Each column whose attribute is present, with the value of the first alias present."""
    attributes = dict(attributes)
    plan = plan_for(tuple(attributes))
    values = plan.pick((*attributes.values(), None))
    return {column: value for column, value, present in zip(ATTRIBUTE_ALIASES, values, plan.present, strict=False)
            if present}


def columns_from_logs(logs: Sequence[Any]) -> dict[str, Sequence[Any]]:
    """Staged columns from a page of Observatory log records (`POST /logs/search`).

    Column by column rather than record by record: a page holds thousands of records and
    this is the extraction's hot path. A record that is not an object, or has no
    attributes object, gets an `_error` for quarantine.
    """
    # JSON objects parse to dicts; the exact type check is several times cheaper than Mapping's.
    objects = [log if type(log) is dict else {} for log in logs]
    attributes = [log.get("attributes") for log in objects]
    usable = [a if type(a) is dict else {} for a in attributes]
    plans = list(map(plan_for, map(tuple, usable)))
    rows = [plan.pick((*a.values(), None)) for plan, a in zip(plans, usable, strict=True)]
    mapped = dict(zip(MAPPED, zip(*rows, strict=True), strict=True)) if rows else dict.fromkeys(MAPPED, ())
    columns: dict[str, Sequence[Any]] = {column: mapped[column] for column in ATTRIBUTE_ALIASES}
    # The documented fallbacks, as spans have them: the span id for the request, the calling
    # service for the application (the specification's example log has only these).
    columns["request_id"] = [
        found if found is not None else span_id or log.get("spanId")
        for found, span_id, log in zip(mapped["request_id"], mapped["_request_id_fallback"], objects, strict=True)
    ]
    columns["application_id"] = [
        found if found is not None else service
        for found, service in zip(mapped["application_id"], mapped["_application_fallback"], strict=True)
    ]
    columns["ts"] = [log.get("timestamp") for log in objects]
    severities = [log.get("severityNumber") for log in objects]
    columns["status"] = [
        status if status is not None
        else ("error" if severity >= ERROR_SEVERITY_NUMBER else "ok") if isinstance(severity, int)
        else None
        for status, severity in zip(mapped["status"], severities, strict=True)
    ]
    columns["_unknown"] = [plan.unknown for plan in plans]
    columns["_digest"] = list(map(digest, logs))
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
