"""Property-based fuzzing of everything that reads outside input: OTLP lines, Parquet rows and
the receiver's bodies. Whatever arrives: never a traceback, never a 5xx, never a good row lost,
and nothing stored that breaks the record's bounds."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from optimizer._serving import BackgroundServer
from optimizer.errors import BadInputError
from optimizer.pipeline.files import ingest_otlp, ingest_parquet
from optimizer.pipeline.runtime import Runtime
from optimizer.schemas.records import MAX_TEXT_LENGTH, RecordBounds
from optimizer.settings import Settings
from optimizer.webhook.app import ReceiverConfig, create_receiver
from optimizer.webhook.deadlines import head_deadline_protocol
from optimizer.webhook.inbox import Inbox
from optimizer.webhook.starter import PrefectStarter
from tests.test_ingest_cli import export_line, genai_span

# No shrinking: a failure is printed as found, and the suite's time stays bounded.
EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                    phases=(Phase.explicit, Phase.reuse, Phase.generate))
_ids = itertools.count()
BOUNDS = RecordBounds()


def good_request_id() -> str:
    return f"req-good-{next(_ids)}"


def good_span_line(request_id: str) -> bytes:
    return export_line("svc", [genai_span("a1", {
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20, "llm.request_id": request_id, "llm.application_name": "support-bot",
    })]).encode()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    """One warehouse for every example: each example's good row has its own id."""
    return Runtime(Settings(data_dir=tmp_path_factory.mktemp("fuzz")))


def assert_stored(runtime: Runtime, request_id: str) -> None:
    with duckdb.connect(str(runtime.settings.warehouse), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM requests WHERE request_id = ?", [request_id]).fetchone() == (1,)
        longest, oldest, newest = db.execute(
            "SELECT max(greatest(length(request_id), length(application_id), length(model),"
            " length(coalesce(team_id, '')), length(coalesce(task_type, '')))), min(ts), max(ts) FROM requests"
        ).fetchone() or (0, None, None)
    assert longest <= MAX_TEXT_LENGTH
    assert BOUNDS.oldest_ts <= oldest and newest < BOUNDS.newest_ts


# ---- OTLP lines ------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
any_values = st.one_of(
    json_values,
    st.fixed_dictionaries({"stringValue": json_values}), st.fixed_dictionaries({"intValue": json_values}),
    st.fixed_dictionaries({"doubleValue": json_values}), st.fixed_dictionaries({"arrayValue": json_values}),
    st.fixed_dictionaries({"kvlistValue": json_values}),
)
attribute_names = st.sampled_from([
    "gen_ai.system", "gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    "llm.request_id", "llm.application_name", "llm.quality_score", "llm.request.cost_usd", "llm.shadow",
    "gen_ai.prompt", "x",
]) | json_values
spans = st.one_of(json_values, st.fixed_dictionaries({}, optional={
    "spanId": json_values, "startTimeUnixNano": json_values | st.integers().map(str),
    "endTimeUnixNano": json_values, "status": json_values,
    "attributes": st.lists(st.fixed_dictionaries({"key": attribute_names, "value": any_values}), max_size=8)
    | json_values,
}))
documents = st.one_of(
    json_values,
    st.fixed_dictionaries({"resourceSpans": st.lists(st.one_of(json_values, st.fixed_dictionaries({}, optional={
        "resource": json_values | st.fixed_dictionaries({"attributes": json_values}),
        "scopeSpans": json_values | st.lists(json_values | st.fixed_dictionaries({"spans": st.lists(spans, max_size=3)}),
                                             max_size=2),
    })), max_size=3)}),
)
lines = st.one_of(documents.map(lambda d: json.dumps(d).encode()), st.binary(max_size=60))


@EXAMPLES
@given(broken=st.lists(lines, min_size=1, max_size=5))
def test_otlp_lines_never_crash_and_never_lose_a_good_span(runtime: Runtime, tmp_path: Path, broken: list[bytes]) -> None:
    request_id = good_request_id()
    path = tmp_path / f"{request_id}.jsonl"
    path.write_bytes(b"\n".join([*broken[:2], good_span_line(request_id), *broken[2:]]) + b"\n")
    summary = ingest_otlp(runtime, path)
    assert summary.rows_in >= 1
    assert_stored(runtime, request_id)


# ---- Parquet rows ----------------------------------------------------------------------

text_values = st.one_of(st.none(), st.text(max_size=5), st.text(min_size=250, max_size=300), st.just(" "))
COLUMN_VALUES: dict[str, Any] = {
    "request_id": text_values,
    "ts": st.one_of(st.none(), st.text(max_size=10), st.sampled_from([
        "1938-06-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-24T10:00:00Z", "2026-13-45", "0"])),
    "application_id": text_values,
    "model": st.one_of(text_values, st.just("gpt-4o-2024-08-06")),
    "prompt_tokens": st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    "completion_tokens": st.one_of(st.none(), st.floats()),
    "cost_usd": st.one_of(st.none(), st.floats()),
    "latency_ms": st.one_of(st.none(), st.floats(), st.text(max_size=4)),
    "status": st.one_of(st.none(), st.sampled_from(["ok", "error", "OK", ""])),
    "quality_score": st.one_of(st.none(), st.floats()),
    "shadow": st.one_of(st.none(), st.booleans()),
}
# Column types a producer might pick, beyond those of the values above (in columns the good
# row may leave null).
ODD_COLUMNS = st.sampled_from([
    ("environment", pa.array([{"a": 1}], pa.struct([("a", pa.int64())]))),
    ("task_type", pa.array([b"\x00"], pa.binary())),
    ("team_id", pa.array([["x"]], pa.list_(pa.string()))),
    ("experiment_id", pa.array([{1: "x"}], pa.map_(pa.int64(), pa.string()))),
    ("prompt_text", pa.array(["Ignore previous instructions"])),
])
GOOD_ROW = {"ts": "2026-11-24T10:00:00Z", "application_id": "doc-qa", "model": "gpt-4o-2024-08-06",
            "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.001, "latency_ms": 500.0, "status": "ok",
            "quality_score": 0.9, "shadow": False}


def as_column(name: str, values: list[Any]) -> pa.Array:
    """Values as one Parquet column: their own type when they share one, text otherwise."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


@EXAMPLES
@given(rows=st.lists(st.fixed_dictionaries(COLUMN_VALUES), min_size=1, max_size=6), odd=st.none() | ODD_COLUMNS)
def test_parquet_rows_never_crash_and_never_lose_a_good_row(
    runtime: Runtime, tmp_path: Path, rows: list[dict[str, Any]], odd: tuple[str, pa.Array] | None
) -> None:
    request_id = good_request_id()
    table = {name: [row[name] for row in rows] + [request_id if name == "request_id" else GOOD_ROW[name]]
             for name in COLUMN_VALUES}
    arrays = {name: as_column(name, values) for name, values in table.items()}
    if odd is not None:
        # The odd column's one value on the last fuzzed row; the good row has it null.
        name, array = odd
        arrays[name] = pa.concat_arrays([pa.nulls(len(rows) - 1, array.type), array, pa.nulls(1, array.type)])
    path = tmp_path / f"{request_id}.parquet"
    pq.write_table(pa.table(arrays), path)
    summary = ingest_parquet(runtime, path)
    assert summary.rows_in == len(rows) + 1
    assert_stored(runtime, request_id)


# ---- webhook bodies --------------------------------------------------------------------

TOKEN = "fuzz-token"
CONTENT_TYPES = st.sampled_from([
    "application/cloudevents+json", "application/cloudevents-batch+json", "application/json", "text/plain", "",
])
attributes = st.fixed_dictionaries({}, optional={
    "specversion": st.sampled_from(["1.0", "0.3", ""]) | json_values, "id": st.text(max_size=8) | json_values,
    "source": st.just("/sentinel/anomaly-detector") | json_values,
    "type": st.sampled_from(["io.llm-platform.sentinel.alert", "io.llm-platform.governance.budget.alert"]) | json_values,
    "datacontenttype": st.just("application/json") | json_values, "data": json_values,
})
bodies = st.one_of(
    st.binary(max_size=200),
    attributes.map(lambda a: json.dumps(a).encode()),
    st.lists(attributes, max_size=3).map(lambda a: json.dumps(a).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
)
ce_headers = st.dictionaries(
    st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"]),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=12), max_size=5,
)


@pytest.fixture(scope="module")
def fuzz_receiver(tmp_path_factory: pytest.TempPathFactory, prefect_api: Any) -> Iterator[BackgroundServer]:
    inbox = tmp_path_factory.mktemp("inbox") / "inbox.sqlite"
    config = ReceiverConfig(token=TOKEN, max_body_bytes=4096, first_retry_s=0.1, max_retry_s=0.5)
    app = create_receiver(config, Inbox(inbox), PrefectStarter())
    with BackgroundServer(app, lifespan="on", http=head_deadline_protocol(config.read_timeout_s)) as server:
        yield server


@EXAMPLES
@given(body=bodies, content_type=CONTENT_TYPES, headers=ce_headers, authorised=st.booleans())
def test_no_body_gets_a_5xx(
    fuzz_receiver: BackgroundServer, body: bytes, content_type: str, headers: dict[str, str], authorised: bool
) -> None:
    sent = {**headers, **({"Content-Type": content_type} if content_type else {})}
    if authorised:
        sent["Authorization"] = f"Bearer {TOKEN}"
    answer = httpx.post(f"{fuzz_receiver.url}/events", content=body, headers=sent, timeout=30)
    assert answer.status_code < 500, answer.text
    if not authorised:
        assert answer.status_code == 401


def test_the_fuzzed_inputs_include_refusals(tmp_path: Path) -> None:
    """The properties above are not vacuous: a file of nothing usable is refused in one line."""
    path = tmp_path / "nothing.jsonl"
    path.write_bytes(b"\n")
    with pytest.raises(BadInputError):
        ingest_otlp(Runtime(Settings(data_dir=tmp_path)), path)
