"""One mapping from attributes to request columns, applied once per shape of attributes, the
same for OTLP spans and for pages of log records; and staged text that casts back."""

from __future__ import annotations

from typing import Any

from optimizer.ingest.mapping import (
    AttributePlan,
    columns_from_logs,
    plan_for,
    record_from_attributes,
)
from optimizer.ingest.staging import as_text, as_texts

SHAPES: list[dict[str, Any]] = [
    {"llm.application_name": None, "llm.application_id": "billing", "service.name": "svc"},
    {"llm.application_id": "billing", "llm.application_name": "support", "span_id": "s-1"},
    {"gen_ai.response.model": "m-2", "llm.request.model": "m-3", "gen_ai.usage.input_tokens": 7},
    {"llm.request_id": None, "span_id": "", "llm.status": None},
    {"gen_ai.usage.prompt_tokens": 5, "gen_ai.usage.input_tokens": 6, "prompt.text": "private"},
    {},
]


def test_spans_and_log_records_map_attributes_alike_record_by_record() -> None:
    logs = [{"attributes": attributes, "severityNumber": 18, "spanId": "log-span"} for attributes in SHAPES]
    columns = columns_from_logs(logs)
    for row, attributes in enumerate(SHAPES):
        record = record_from_attributes(attributes)
        for column in ("application_id", "model", "prompt_tokens", "team_id"):
            if column in record and record[column] is not None:
                assert columns[column][row] == record[column], (row, column)
    # The first alias present wins, even with a null value; then the documented fallbacks.
    assert record_from_attributes(SHAPES[0]) == {"application_id": None}
    assert columns["application_id"][:2] == ["svc", "support"]
    assert columns["model"][2] == "m-2"
    assert columns["prompt_tokens"][2] == 7 and columns["prompt_tokens"][4] == 5
    assert columns["request_id"][3] == "log-span" and columns["status"][3] == "error"
    assert columns["_unknown"][4] == '["prompt.text"]' and columns["_unknown"][0] is None
    assert columns["_error"] == [None] * len(SHAPES)


def test_a_shape_of_attributes_is_planned_once_and_key_order_does_not_change_the_values() -> None:
    names = tuple(SHAPES[1])
    assert plan_for(names) is plan_for(names)
    assert isinstance(plan_for(names), AttributePlan)
    reordered = dict(reversed(list(SHAPES[1].items())))
    assert record_from_attributes(reordered) == record_from_attributes(SHAPES[1])
    assert columns_from_logs([{"attributes": reordered}])["application_id"] == ["support"]


def test_text_of_a_mixed_column_is_each_value_as_text() -> None:
    values = [None, "n/a", 3, 0.1, 1e-05, 2.0, True, False, {"b": 1, "a": [1]}, 2**64 - 1]
    assert as_texts(values) == [as_text(value) for value in values]
