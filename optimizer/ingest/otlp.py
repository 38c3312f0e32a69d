"""OTLP/JSON trace files, as the OpenTelemetry Collector's file exporter writes them.

One `{"resourceSpans": [...]}` document per line. Spans without GenAI attributes (HTTP
servers, databases) are not LLM requests and are skipped, not quarantined. A line that
is not valid JSON is staged with its reason so it reaches quarantine.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimizer.errors import BadInputError
from optimizer.ingest.mapping import latency_ms, nanos_to_iso, record_from_attributes
from optimizer.ingest.staging import StagingWriter

SPAN_STATUS_ERROR = {2, "2", "STATUS_CODE_ERROR"}
BATCH_ROWS = 50_000  # spans per staged part file
_GENAI_MARKERS = ("gen_ai.system", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.operation.name")


def any_value(value: Any) -> Any:
    """Decode an OTLP AnyValue (`{"stringValue": ...}`, `{"intValue": "12"}`, ...)."""
    if not isinstance(value, Mapping):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        raw = value["intValue"]
        try:
            return int(raw)
        except (TypeError, ValueError):
            return raw
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        return [any_value(item) for item in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes_of(value["kvlistValue"].get("values", []))
    return None


def attributes_of(attributes: Any) -> dict[str, Any]:
    """OTLP KeyValue lists, or already-flat attribute objects, as a plain dict."""
    if isinstance(attributes, Mapping):
        return dict(attributes)
    if isinstance(attributes, list):
        return {
            item["key"]: any_value(item.get("value"))
            for item in attributes
            if isinstance(item, Mapping) and "key" in item
        }
    return {}


def record_from_span(span: Mapping[str, Any], resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """A staged row for a GenAI span, or None for a span that is not an LLM call."""
    attributes = attributes_of(span.get("attributes"))
    if not any(marker in attributes for marker in _GENAI_MARKERS):
        return None
    record = record_from_attributes(attributes)
    record.setdefault("request_id", span.get("spanId"))
    record.setdefault("application_id", resource.get("service.name"))
    start, end = span.get("startTimeUnixNano"), span.get("endTimeUnixNano")
    record["ts"] = nanos_to_iso(start)
    if "latency_ms" not in record:
        record["latency_ms"] = latency_ms(start, end)
    if "status" not in record:
        code = (span.get("status") or {}).get("code")
        record["status"] = "error" if code in SPAN_STATUS_ERROR else "ok"
    record["_raw"] = json.dumps(span, separators=(",", ":"), sort_keys=True)
    return record


@dataclass
class OtlpStats:
    lines: int = 0
    spans: int = 0
    genai_spans: int = 0
    bad_lines: int = 0


def _records_of_line(line_number: int, line: str, stats: OtlpStats) -> Iterator[dict[str, Any]]:
    try:
        document = json.loads(line)
    except json.JSONDecodeError as exc:
        stats.bad_lines += 1
        yield {"_raw": line[:10_000], "_error": f"line {line_number} is not valid JSON: {exc.msg}"}
        return
    if not isinstance(document, Mapping) or not isinstance(document.get("resourceSpans"), list):
        stats.bad_lines += 1
        yield {"_raw": line[:10_000], "_error": f"line {line_number} has no resourceSpans list"}
        return
    for resource_spans in document["resourceSpans"]:
        resource = attributes_of((resource_spans.get("resource") or {}).get("attributes"))
        scopes = resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or []
        for scope in scopes:
            for span in scope.get("spans") or []:
                stats.spans += 1
                record = record_from_span(span, resource)
                if record is not None:
                    stats.genai_spans += 1
                    yield record


def stage_otlp_file(source: Path, staged: Path) -> OtlpStats:
    """Stage every GenAI span of an OTLP/JSON file; raises BadInputError if there are none."""
    if not source.is_file():
        raise BadInputError(f"{source}: no such file")
    stats = OtlpStats()
    pending: list[dict[str, Any]] = []
    with source.open(encoding="utf-8") as lines, StagingWriter(staged) as writer:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            stats.lines += 1
            pending.extend(_records_of_line(number, line, stats))
            if len(pending) >= BATCH_ROWS:
                writer.write(pending)
                pending = []
        writer.write(pending)
    if stats.genai_spans == 0 and stats.bad_lines == 0:
        shutil.rmtree(staged, ignore_errors=True)
        raise BadInputError(
            f"{source}: no GenAI spans found ({stats.lines} lines, {stats.spans} spans)"
        )
    return stats
