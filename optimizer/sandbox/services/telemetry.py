"""How a generated request looks on the wire: log records and spans with GenAI attributes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd

from optimizer.sandbox.traffic import MALFORMED_KINDS, TrafficGenerator
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


_NS_PER_DAY = 86_400 * 1_000_000_000
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class RenderedLogs:
    """Each request's log record as JSON bytes, rendered once for as long as its day's traffic
    stands (a day generated again, after a routing change say, is rendered again): a page of
    log search is then a join of cached records, not ten thousand dicts built and dumped.
    At most `max_bytes` are kept, the days least recently read dropped first."""

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self._days: OrderedDict[int, tuple[pd.DataFrame, dict[str, bytes]]] = OrderedDict()
        self._sizes: dict[int, int] = {}
        self._lock = threading.Lock()

    def records(self, traffic: TrafficGenerator, page: pd.DataFrame) -> list[bytes]:
        """The log records of `page` (rows of `traffic`'s days), in its order."""
        days = page["ts_ns"].to_numpy() // _NS_PER_DAY
        ids = page["request_id"].tolist()
        found: list[bytes | None] = [None] * len(ids)
        for day in np.unique(days).tolist():
            rows = np.flatnonzero(days == day)
            rendered = self._day(traffic, day)
            missing = [row for row in rows.tolist() if ids[row] not in rendered]
            if missing:
                fresh = [orjson.dumps(log_record(row), option=_JSON_OPTIONS) for row in rows_of(page.iloc[missing])]
                rendered.update(zip((ids[row] for row in missing), fresh, strict=True))
                self._grew(day, sum(map(len, fresh)))
            for row in rows.tolist():
                found[row] = rendered[ids[row]]
        return found  # type: ignore[return-value]

    def _day(self, traffic: TrafficGenerator, day: int) -> dict[str, bytes]:
        frame = traffic.day(datetime.fromtimestamp(day * 86_400, UTC).date())
        with self._lock:
            entry = self._days.get(day)
            if entry is None or entry[0] is not frame:
                entry = self._days[day] = (frame, {})
                self._sizes[day] = 0
            self._days.move_to_end(day)
            return entry[1]

    def _grew(self, day: int, size: int) -> None:
        with self._lock:
            self._sizes[day] = self._sizes.get(day, 0) + size
            while sum(self._sizes.values()) > self.max_bytes and len(self._days) > 1:
                oldest, _ = self._days.popitem(last=False)
                self._sizes.pop(oldest, None)
