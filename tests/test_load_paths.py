"""A load stores its rows in one pass and looks further only when a row is left over: each way
a row can be left over (a broken rule, a repeat within the batch or of a stored request, an
id that differs only in spaces, a key shared with another id) still ends where it should."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from optimizer.schemas.telemetry import missing_hint
from optimizer.warehouse import Warehouse
from optimizer.warehouse.loads import REPEAT_REASON
from tests.test_warehouse import CATALOG, MALFORMED, good_row, load, stage

# What count_reasons makes of each MALFORMED reason (the rule, without the value shown after ':').
EVERY_RULE = {
    "application_id is missing": 1,
    "completion_tokens is not a valid integer": 2,
    "confidence_score is below 0": 1,
    "cost_usd is below 0": 1,
    "cost_usd is missing and model in-house-llm has no price in the catalog": 1,
    "cost_usd is not a valid number": 1,
    "latency_ms is not a valid number": 1,
    "latency_ms is not finite": 1,
    "line 3 is not valid JSON": 1,
    "model is missing": 1,
    "original_prompt_tokens is below 0": 1,
    "prompt_tokens is below 0": 1,
    "prompt_tokens is not a valid integer": 1,
    "quality_score is above 1": 1,
    "request_id is missing": 2,
    "shadow is not a valid boolean": 1,
    "status is missing": 1,
    "status is not one of ok, error": 1,
    "ts is not a valid timestamp": 1,
}


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    with Warehouse(path) as store:
        store.reference.ensure_models(CATALOG)
    return path


def test_a_batch_with_every_kind_of_bad_row_gives_each_reason_and_count(warehouse_path: Path, tmp_path: Path) -> None:
    good = [good_row(f"ok-{i}") for i in range(30)]
    bad = [good_row(f"bad-{i}", **change) for i, (change, _) in enumerate(MALFORMED)]
    several = good_row("bad-several", model=None, prompt_tokens=-3, status="partial")
    repeats = [good_row("ok-3"), good_row("ok-4", latency_ms=900.0)]  # identical / other values
    result = load(warehouse_path, [stage(tmp_path / "s.parquet", [*good, *bad, several, *repeats])])
    assert (result.rows_in, result.loaded, result.duplicates) == (30 + len(MALFORMED) + 3, 30, 1)
    assert result.quarantined == len(MALFORMED) + 2
    expected = dict(EVERY_RULE, **{REPEAT_REASON: 1})
    for rule in ("model is missing", "prompt_tokens is below 0", "status is not one of ok, error"):
        expected[rule] += 1
    assert result.quarantine_reasons == dict(sorted(expected.items()))
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        (reason,), = db.execute("SELECT reason FROM quarantine WHERE request_id = 'bad-several'").fetchall()
        assert db.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() == (30, 30)
        assert db.execute("SELECT latency_ms FROM requests WHERE request_id = 'ok-4'").fetchone() == (812.5,)
    assert reason == f"model is missing: {missing_hint('model')}; prompt_tokens is below 0: -3; status is not one of ok, error: partial"


def test_a_later_clean_load_quarantines_a_changed_repeat_of_a_stored_request(
    warehouse_path: Path, tmp_path: Path
) -> None:
    load(warehouse_path, [stage(tmp_path / "a.parquet", [good_row(f"r{i}") for i in range(20)])])
    later = [good_row(f"n{i}") for i in range(20)] + [good_row("r5"), good_row("r6", status="error")]
    result = load(warehouse_path, [stage(tmp_path / "b.parquet", later)])
    assert (result.loaded, result.duplicates, result.quarantined) == (20, 1, 1)
    assert result.quarantine_reasons == {REPEAT_REASON: 1}
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        assert db.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() == (40, 40)
        assert db.execute("SELECT status FROM requests WHERE request_id = 'r6'").fetchone() == ("ok",)


def test_ids_that_differ_only_in_surrounding_spaces_are_one_request(warehouse_path: Path, tmp_path: Path) -> None:
    rows = [good_row("r1"), good_row(" r1 "), good_row("r1  ", latency_ms=900.0), good_row("r2")]
    result = load(warehouse_path, [stage(tmp_path / "s.parquet", rows)])
    assert (result.loaded, result.duplicates, result.quarantined) == (2, 1, 1)
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        assert db.execute("SELECT request_id, latency_ms FROM requests ORDER BY 1").fetchall() == [
            ("r1", 812.5), ("r2", 812.5)]


def test_a_key_shared_with_another_stored_id_does_not_keep_a_request_out(warehouse_path: Path, tmp_path: Path) -> None:
    """Stored keys are looked up first; a request whose key only coincides with another id's is stored."""
    load(warehouse_path, [stage(tmp_path / "a.parquet", [good_row("r1")])])
    with duckdb.connect(str(warehouse_path)) as db:
        db.execute("UPDATE requests SET request_key = hash('r2')")  # as if r1 and r2 had the same key
    result = load(warehouse_path, [stage(tmp_path / "b.parquet", [good_row("r2"), good_row("r3")])])
    assert (result.loaded, result.duplicates, result.quarantined) == (2, 0, 0)
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        assert db.execute("SELECT request_id FROM requests ORDER BY 1").fetchall() == [("r1",), ("r2",), ("r3",)]
