"""How a generated request looks on the wire: log records and spans with GenAI attributes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from optimizer.sandbox.traffic import MALFORMED_KINDS
from optimizer.schemas.records import REQUEST_COLUMN_NAMES
from optimizer.schemas.telemetry import canonical_attribute

_RENDERED = [(name, canonical_attribute(name)) for name in REQUEST_COLUMN_NAMES if name != "ts"]
_ROW_COLUMNS = [name for name, _ in _RENDERED] + ["ts_ns", "trace_id", "span_id", "malformed", "latency_ms"]


def _present(value: Any) -> bool:
    return value is not None and value == value  # NaN is the one value unequal to itself


def rows_of(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Generated rows as dicts of plain Python values: column lists zipped, which is several
    times faster than `DataFrame.to_dict` on a page of ten thousand rows. `timestamp` is
    the start time as ISO 8601 text, formatted for the whole page at once."""
    names = list(dict.fromkeys(_ROW_COLUMNS))
    columns = [frame[name].tolist() for name in names]
    millis = frame["ts_ns"].to_numpy().astype("datetime64[ns]").astype("datetime64[ms]")
    columns.append([text + "Z" for text in np.datetime_as_string(millis, unit="ms").tolist()])
    names.append("timestamp")
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


def attributes_of_row(row: dict[str, Any]) -> dict[str, Any]:
    """The attributes the orchestrator attaches to one request's span and log record."""
    attributes: dict[str, Any] = {
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
        "service.name": "llm-orchestrator",
        "gen_ai.operation.name": "chat",
    }
    for column, attribute in _RENDERED:
        value = row[column]
        # present: not None and not NaN (the one value unequal to itself)
        if value is not None and value == value and not (column == "original_prompt_tokens" and value == -1):
            attributes[attribute] = value
    attributes["gen_ai.usage.total_tokens"] = int(row["prompt_tokens"]) + int(row["completion_tokens"])
    if _present(row["compression_technique"]):
        attributes["optimization.enabled"] = True
        attributes["optimization.technique"] = "prompt_compression"
    return attributes


def _corrupt(record: dict[str, Any], kind: str) -> None:
    attributes = record["attributes"]
    if kind == "missing_model":
        attributes.pop(canonical_attribute("model"), None)
    elif kind == "negative_tokens":
        attributes[canonical_attribute("prompt_tokens")] = -1 - int(attributes[canonical_attribute("prompt_tokens")])
    elif kind == "quality_out_of_range":
        attributes[canonical_attribute("quality_score")] = 1.25
    elif kind == "unknown_status":
        attributes[canonical_attribute("status")] = "partial"
    elif kind == "non_numeric_cost":
        attributes[canonical_attribute("cost_usd")] = "n/a"
    elif kind == "bad_timestamp":
        record["timestamp"] = "yesterday afternoon"
    elif kind == "missing_request_id":  # no id at all: not even the span id that stands in for it
        attributes.pop(canonical_attribute("request_id"), None)
        attributes.pop("span_id", None)
    elif kind == "non_numeric_latency":
        attributes[canonical_attribute("latency_ms")] = "slow"


def log_record(row: dict[str, Any]) -> dict[str, Any]:
    failed = row["status"] == "error"
    record = {
        "timestamp": row["timestamp"],
        "severityText": "ERROR" if failed else "INFO",
        "severityNumber": 17 if failed else 9,
        "body": "LLM request failed" if failed else "LLM request completed successfully",
        "attributes": attributes_of_row(row),
    }
    if row["malformed"] >= 0:
        _corrupt(record, MALFORMED_KINDS[int(row["malformed"])])
    return record


def span(row: dict[str, Any], parent_span_id: str | None) -> dict[str, Any]:
    start_ns = int(row["ts_ns"])
    end_ns = start_ns + int(row["latency_ms"] * 1_000_000)
    return {
        "traceId": row["trace_id"],
        "spanId": row["span_id"],
        **({"parentSpanId": parent_span_id} if parent_span_id else {}),
        "name": "llm.completion",
        "kind": "SPAN_KIND_CLIENT",
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(end_ns),
        "attributes": attributes_of_row(row),
        "status": {"code": 2 if row["status"] == "error" else 0},
    }
