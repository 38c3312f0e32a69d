"""From telemetry (log records, spans) to request-record fields, by attribute name.

Values are taken as they come; the warehouse decides whether they are valid. What this
module adds is only what the attributes cannot say themselves: the timestamp, the
latency of a span, the status of an errored span or log, and fallbacks for identity.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from optimizer.schemas.telemetry import ATTRIBUTE_ALIASES

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


def _raw_json(item: Any) -> str:
    return json.dumps(item, separators=(",", ":"), sort_keys=True, default=str)


def record_from_log(log: Any) -> dict[str, Any]:
    """A staged row from one Observatory log record (`POST /logs/search`)."""
    if not isinstance(log, Mapping):
        return {"_raw": _raw_json(log), "_error": "log record is not a JSON object"}
    attributes = log.get("attributes")
    if not isinstance(attributes, Mapping):
        return {"_raw": _raw_json(log), "_error": "log record has no attributes object"}
    record = record_from_attributes(attributes)
    record["ts"] = log.get("timestamp")
    severity = log.get("severityNumber")
    if "status" not in record and isinstance(severity, int):
        record["status"] = "error" if severity >= ERROR_SEVERITY_NUMBER else "ok"
    record["_raw"] = _raw_json(log)
    return record


def nanos_to_iso(value: Any) -> Any:
    """OTLP's `...UnixNano` (a string or an integer) as an ISO timestamp; odd values pass through."""
    try:
        nanos = int(value)
    except (TypeError, ValueError):
        return value
    return (_EPOCH + timedelta(microseconds=nanos // 1000)).isoformat()


def latency_ms(start_nanos: Any, end_nanos: Any) -> float | None:
    try:
        return (int(end_nanos) - int(start_nanos)) / 1e6
    except (TypeError, ValueError):
        return None
