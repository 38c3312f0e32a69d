"""OTLP/JSON trace files, as the OpenTelemetry Collector's file exporter writes them.

One `{"resourceSpans": [...]}` document per line. Spans without GenAI attributes (HTTP
servers, databases) are not LLM requests and are skipped, not quarantined. Whatever is
broken (a line that is not UTF-8 or not JSON, an item or span of the wrong shape) is staged
as a row with its reason so it reaches quarantine, and the rest of the file loads.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from optimizer.errors import BadInputError
from optimizer.ingest.mapping import (
    digest,
    latency_ms,
    nanos_to_iso,
    record_from_attributes,
    unknown_names,
)
from optimizer.ingest.staging import StagingWriter

SPAN_STATUS_ERROR = {2, "2", "STATUS_CODE_ERROR"}
BATCH_ROWS = 50_000  # spans per staged part file
_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark some editors put before the first line
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
        return [any_value(item) for item in _items(value["arrayValue"], "values")]
    if "kvlistValue" in value:
        return attributes_of(_items(value["kvlistValue"], "values"))
    return None


def _items(container: Any, key: str) -> list[Any]:
    """`container[key]` when the container is an object and that is a list; else nothing."""
    found = container.get(key) if isinstance(container, Mapping) else None
    return found if isinstance(found, list) else []


class MalformedSpanError(ValueError):
    """A span, or what it sits in, breaks OTLP's shape in a way that says which."""


def attributes_of(attributes: Any) -> dict[str, Any]:
    """OTLP KeyValue lists, or already-flat attribute objects, as a plain dict."""
    if isinstance(attributes, Mapping):
        return dict(attributes)
    if isinstance(attributes, list):
        found = {}
        for item in attributes:
            if not isinstance(item, Mapping):
                continue
            key = item.get("key")
            if not isinstance(key, str):
                raise MalformedSpanError(f"an attribute key is {type(key).__name__}, not text")
            found[key] = any_value(item.get("value"))
        return found
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
        status = span.get("status") or {}
        if not isinstance(status, Mapping):
            raise MalformedSpanError("status is not an object")
        record["status"] = "error" if status.get("code") in SPAN_STATUS_ERROR else "ok"
    record["_unknown"] = unknown_names(attributes)
    record["_digest"] = digest(span)
    return record


@dataclass
class OtlpStats:
    lines: int = 0
    spans: int = 0
    genai_spans: int = 0
    bad_lines: int = 0
    bad_spans: int = 0


def _problem(stats: OtlpStats, reason: str, item: Any) -> dict[str, Any]:
    """A staged row that carries only its reason, so the problem reaches quarantine."""
    stats.bad_spans += 1
    return {"_error": reason, "_digest": digest(item)}


def _why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, MalformedSpanError) else f"cannot be read ({type(exc).__name__})"


def _records_of_line(line_number: int, data: bytes, stats: OtlpStats) -> Iterator[dict[str, Any]]:
    """Every GenAI span of one line; each broken line, item or span a row with its reason."""
    where = f"line {line_number}"
    try:
        document = orjson.loads(data.removeprefix(_BOM))
    except orjson.JSONDecodeError as exc:
        stats.bad_lines += 1
        problem = "is not valid UTF-8" if "UTF-8" in exc.msg else f"is not valid JSON: {exc.msg}"
        yield {"_error": f"{where} {problem}", "_digest": digest(data)}
        return
    if not isinstance(document, Mapping) or not isinstance(document.get("resourceSpans"), list):
        stats.bad_lines += 1
        yield {"_error": f"{where} has no resourceSpans list", "_digest": digest(data)}
        return
    for r, resource_spans in enumerate(document["resourceSpans"]):
        if not isinstance(resource_spans, Mapping):
            yield _problem(stats, f"{where}: resourceSpans[{r}] is not an object", resource_spans)
            continue
        resource_object = resource_spans.get("resource")
        try:
            resource = attributes_of(resource_object.get("attributes") if isinstance(resource_object, Mapping) else None)
        except (MalformedSpanError, RecursionError) as exc:
            yield _problem(stats, f"{where}: resourceSpans[{r}].resource: {_why(exc)}", data)
            continue
        scopes = resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or []
        for s, scope in enumerate(scopes if isinstance(scopes, list) else [scopes]):
            spans = scope.get("spans") if isinstance(scope, Mapping) else None
            if not isinstance(spans, list):
                if spans is not None or not isinstance(scope, Mapping):
                    yield _problem(stats, f"{where}: resourceSpans[{r}].scopeSpans[{s}] has no spans list", scope)
                continue
            for n, span in enumerate(spans):
                stats.spans += 1
                label = f"{where}: resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                if not isinstance(span, Mapping):
                    yield _problem(stats, f"{label} is not an object", span)
                    continue
                try:
                    record = record_from_span(span, resource)
                except (TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
                    # A shape no check foresaw costs this span (to quarantine), not the file.
                    yield _problem(stats, f"{label}: {_why(exc)}", data + label.encode())
                    continue
                if record is not None:
                    stats.genai_spans += 1
                    yield record


def _readable_file(source: Path) -> None:
    """Refuse, in one line, a path that names no readable file."""
    if source.is_dir():
        raise BadInputError(f"{source}: is a directory, not an OTLP/JSON file")
    if not source.exists():
        raise BadInputError(f"{source}: no such file")
    if not source.is_file():
        raise BadInputError(f"{source}: not a regular file")


def stage_otlp_file(source: Path, staged: Path) -> OtlpStats:
    """Stage every GenAI span of an OTLP/JSON file; raises BadInputError if there are none."""
    _readable_file(source)
    stats = OtlpStats()
    pending: list[dict[str, Any]] = []
    try:
        with source.open("rb") as lines, StagingWriter(staged) as writer:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                stats.lines += 1
                pending.extend(_records_of_line(number, line, stats))
                if len(pending) >= BATCH_ROWS:
                    writer.write(pending)
                    pending = []
            writer.write(pending)
    except OSError as exc:
        raise BadInputError(f"{source}: cannot be read ({exc.strerror or exc})") from exc
    if stats.genai_spans == 0 and stats.bad_lines == 0 and stats.bad_spans == 0:
        shutil.rmtree(staged, ignore_errors=True)
        raise BadInputError(
            f"{source}: no GenAI spans found ({stats.lines} lines, {stats.spans} spans)"
        )
    return stats
