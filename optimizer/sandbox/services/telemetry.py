"""How a generated request looks on the wire: log records and spans with GenAI attributes."""

from __future__ import annotations

import math
from typing import Any

from optimizer.sandbox.services._common import iso_from_ns
from optimizer.sandbox.traffic import MALFORMED_KINDS
from optimizer.schemas.records import REQUEST_COLUMN_NAMES
from optimizer.schemas.telemetry import canonical_attribute

_RENDERED = [name for name in REQUEST_COLUMN_NAMES if name != "ts"]


def _present(value: Any) -> bool:
    if value is None:
        return False
    return not (isinstance(value, float) and math.isnan(value))


def attributes_of_row(row: dict[str, Any]) -> dict[str, Any]:
    """The attributes the orchestrator attaches to one request's span and log record."""
    attributes: dict[str, Any] = {
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
        "service.name": "llm-orchestrator",
        "gen_ai.operation.name": "chat",
    }
    for column in _RENDERED:
        value = row[column]
        if column == "original_prompt_tokens" and value == -1:
            continue
        if _present(value):
            attributes[canonical_attribute(column)] = value.item() if hasattr(value, "item") else value
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
    elif kind == "missing_request_id":
        attributes.pop(canonical_attribute("request_id"), None)
    elif kind == "non_numeric_latency":
        attributes[canonical_attribute("latency_ms")] = "slow"


def log_record(row: dict[str, Any]) -> dict[str, Any]:
    failed = row["status"] == "error"
    record = {
        "timestamp": iso_from_ns(int(row["ts_ns"])),
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
