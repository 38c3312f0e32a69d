"""`auto-optimizer ingest otlp|parquet`: OTLP/JSON mapping, guarantees, and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deployments.cli import main

START_NS = 1_795_521_600_000_000_000  # 2026-11-24T12:00:00Z


def kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64 travels as a string
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def genai_span(span_id: str, attributes: dict[str, Any], *, duration_ms: int = 1500, error: bool = False) -> dict[str, Any]:
    return {
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat gpt-4o",
        "kind": 3, "startTimeUnixNano": str(START_NS), "endTimeUnixNano": str(START_NS + duration_ms * 1_000_000),
        "attributes": [kv(k, v) for k, v in attributes.items()],
        "status": {"code": 2, "message": "rate limited"} if error else {},
    }


def export_line(service: str, spans: list[dict[str, Any]]) -> str:
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", service)]},
        "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai"}, "spans": spans}],
    }]})


@pytest.fixture
def otlp_file(tmp_path: Path) -> Path:
    spans = [
        genai_span("a1a1a1a1a1a1a1a1", {
            "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200,
            "llm.request_id": "req-otlp-1", "llm.application_name": "support-bot",
            "llm.quality_score": 0.93, "llm.request.cost_usd": 0.0045, "llm.shadow": False,
            "llm.prompt_hash": "sha256:9f86d081884c7d65",
        }),
        genai_span("b2b2b2b2b2b2b2b2", {  # no cost, no request id, no app name: all derived
            "gen_ai.provider.name": "anthropic", "gen_ai.response.model": "claude-3-5-haiku-20241022",
            "gen_ai.usage.prompt_tokens": 2000, "gen_ai.usage.completion_tokens": 500,
        }, duration_ms=700, error=True),
        {"traceId": "5b8e", "spanId": "c3c3c3c3c3c3c3c3", "name": "GET /health",  # not an LLM call
         "startTimeUnixNano": str(START_NS), "endTimeUnixNano": str(START_NS + 1000),
         "attributes": [kv("http.method", "GET")]},
        genai_span("d4d4d4d4d4d4d4d4", {"gen_ai.system": "openai", "gen_ai.usage.input_tokens": -5,
                                        "llm.request_id": "req-otlp-bad"}),
    ]
    path = tmp_path / "traces.jsonl"
    path.write_text(
        export_line("checkout-assistant", spans[:2]) + "\n"
        + export_line("infra", spans[2:]) + "\n"
        + "{this is not json\n"
    )
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if code == 0 else {}


def test_otlp_spans_become_request_records(otlp_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "w.duckdb"
    code, summary = run_json(capsys, "ingest", "otlp", str(otlp_file), "--warehouse", str(db), "--json")
    assert code == 0
    assert (summary["loaded"], summary["quarantined"], summary["non_llm_spans_skipped"]) == (2, 2, 1)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT request_id, application_id, provider, model, prompt_tokens, completion_tokens, cost_usd,"
            " latency_ms, status, quality_score, ts FROM requests ORDER BY request_id").fetchall()
        reasons = [r for (r,) in con.execute("SELECT reason FROM quarantine ORDER BY reason").fetchall()]
    first, second = rows[1], rows[0]
    assert first[:7] == ("req-otlp-1", "support-bot", "openai", "gpt-4o-2024-08-06", 1000, 200, 0.0045)
    assert first[7] == pytest.approx(1500.0) and first[8] == "ok" and first[9] == pytest.approx(0.93)
    assert first[10].isoformat() == "2026-11-24T12:00:00+00:00"
    # span id, resource service.name and catalog prices fill what the span does not say
    assert second[:6] == ("b2b2b2b2b2b2b2b2", "checkout-assistant", "anthropic", "claude-3-5-haiku-20241022", 2000, 500)
    assert second[6] == pytest.approx(2000 * 0.0008 / 1000 + 500 * 0.004 / 1000)
    assert second[8] == "error"
    assert any("line 3 is not valid JSON" in r for r in reasons)
    assert any("prompt_tokens is below 0" in r and "model is missing" in r for r in reasons)


def test_a_prompt_hash_is_carried_from_spans_and_parquet(
    otlp_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`llm.prompt_hash` (OTLP) and a `prompt_hash` column (Parquet) reach the warehouse; a
    span or row without one stores null."""
    db = tmp_path / "w.duckdb"
    assert run_json(capsys, "ingest", "otlp", str(otlp_file), "--warehouse", str(db), "--json")[0] == 0
    pq.write_table(pa.table({
        "request_id": ["pq-1", "pq-2"], "ts": ["2026-11-24T10:00:00Z"] * 2, "application_id": ["doc-qa"] * 2,
        "model": ["claude-3-5-sonnet-20241022"] * 2, "prompt_tokens": [100, 200], "completion_tokens": [10, 20],
        "cost_usd": [0.01, 0.02], "latency_ms": [900.0, 950.0], "status": ["ok", "ok"],
        "prompt_hash": ["h-abc", None],
    }), tmp_path / "hashed.parquet")
    assert run_json(capsys, "ingest", "parquet", str(tmp_path / "hashed.parquet"), "--warehouse", str(db),
                    "--json")[0] == 0
    with duckdb.connect(str(db), read_only=True) as con:
        hashes = con.execute("SELECT request_id, prompt_hash FROM requests ORDER BY request_id").fetchall()
    assert hashes == [("b2b2b2b2b2b2b2b2", None), ("pq-1", "h-abc"), ("pq-2", None),
                      ("req-otlp-1", "sha256:9f86d081884c7d65")]


def test_otlp_ingest_twice_adds_nothing(otlp_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "w.duckdb")
    run_json(capsys, "ingest", "otlp", str(otlp_file), "--warehouse", db, "--json")
    code, again = run_json(capsys, "ingest", "otlp", str(otlp_file), "--warehouse", db, "--json")
    assert code == 0 and (again["loaded"], again["duplicates_skipped"], again["quarantined"]) == (0, 2, 0)
    assert again["requests_total"] == 2


def test_parquet_folder_ingest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    for part in range(2):
        pq.write_table(pa.table({
            "request_id": [f"p{part}-{i}" for i in range(3)],
            "ts": ["2026-11-24T10:00:00Z"] * 3, "application_id": ["doc-qa"] * 3,
            "model": ["claude-3-5-sonnet-20241022"] * 3, "prompt_tokens": [100, 200, -1],
            "completion_tokens": [10, 20, 30], "cost_usd": [0.01, 0.02, 0.03],
            "latency_ms": [900.0, 950.0, 1000.0], "status": ["ok", "ok", "ok"],
        }), folder / f"part-{part}.parquet")
    code, summary = run_json(capsys, "ingest", "parquet", str(folder), "--warehouse", str(tmp_path / "w.duckdb"), "--json")
    assert code == 0
    assert (summary["files"], summary["loaded"], summary["quarantined"]) == (2, 4, 2)
    assert summary["quarantine_reasons"] == {"prompt_tokens is below 0": 2}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text(""), "no GenAI spans"),
        (lambda p: p.write_text(export_line("svc", [])), "no GenAI spans"),
    ],
    ids=["missing", "empty", "no-spans"],
)
def test_unusable_otlp_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: Any, message: str
) -> None:
    path = tmp_path / "in.jsonl"
    setup(path)
    code = main(["ingest", "otlp", str(path), "--warehouse", str(tmp_path / "w.duckdb"), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert message in captured.err and captured.err.count("\n") == 1


def test_parquet_missing_column_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "thin.parquet"
    pq.write_table(pa.table({"request_id": ["a"]}), path)
    code = main(["ingest", "parquet", str(path), "--warehouse", str(tmp_path / "w.duckdb")])
    assert code == 2
    assert "missing required column" in capsys.readouterr().err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["ingest", "csv", "x"])
    assert caught.value.code == 2


def test_a_killed_load_leaves_nothing_or_everything(tmp_path: Path) -> None:
    """SIGKILL in the middle of a load: the warehouse holds none of the batch or all of it,
    and the next run completes it once."""
    rows = 400_000
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({
        "request_id": [f"k{i}" for i in range(rows)], "ts": ["2026-11-24T10:00:00Z"] * rows,
        "application_id": ["doc-qa"] * rows, "model": ["claude-3-5-sonnet-20241022"] * rows,
        "prompt_tokens": [100] * rows, "completion_tokens": [10] * rows, "cost_usd": [0.01] * rows,
        "latency_ms": [900.0] * rows, "status": ["ok"] * rows,
    }), path)
    warehouse = tmp_path / "w.duckdb"
    command = [sys.executable, "-m", "deployments.cli", "ingest", "parquet", str(path), "--warehouse", str(warehouse),
               "--json"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not warehouse.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # into the load: the file exists once migrations begin
    finally:
        process.kill()
        process.wait()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        held = con.execute("SELECT count(*) FROM requests").fetchone()[0] if "requests" in tables else 0  # type: ignore[index]
    assert held in (0, rows)
    completed = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    assert (completed["loaded"], completed["requests_total"]) == (rows - held, rows)
