"""Caching's evidence kept in the warehouse: each stored request's previous answer to the same
prompt, set by every load (also for stored rows a late row now comes just before) and by the
migration for a warehouse made before it. The warehouse's caching figures stay those worked
out from the rows themselves."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from optimizer.schemas.loads import LoadBatch
from optimizer.warehouse import Warehouse
from optimizer.warehouse._migrate import migrate
from optimizer.warehouse.analytics import RequestSource

T0 = datetime(2026, 11, 2, 12, tzinfo=UTC)
TTLS = (60, 300, 900, 3600)


def row(key: str, seconds: float, **changes: Any) -> dict[str, Any]:
    return {"request_id": key, "ts": T0 + timedelta(seconds=seconds), "application_id": "support-bot",
            "model": "m", "prompt_tokens": 100, "completion_tokens": 10, "cost_usd": 0.5, "latency_ms": 500.0,
            "status": "ok", "shadow": False, "prompt_hash": "h1", **changes}


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def load(warehouse: Path, file: Path) -> None:
    with Warehouse(warehouse) as store:
        store.loads.load(LoadBatch(source="test", request_files=[file]))


def stored_gaps(warehouse: Path) -> dict[str, float | None]:
    """Each stored request's seconds since the previous answer to its prompt (None: none)."""
    with duckdb.connect(str(warehouse), read_only=True) as db:
        rows = db.execute("SELECT request_id, epoch(ts) - epoch(previous_prompt_ts) FROM requests").fetchall()
    return {key: gap for key, gap in rows}


def test_a_late_row_between_two_stored_ones_becomes_the_later_ones_previous_answer(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    load(warehouse, write(tmp_path / "a.parquet", [row("r1", 0), row("r2", 1000), row("other", 1010, model="m2")]))
    assert stored_gaps(warehouse) == {"r1": None, "r2": 1000.0, "other": None}

    late = [row("r3", 900), row("r0", -50), row("r3-error", 950, status="error"), row("r3-shadow", 960, shadow=True)]
    load(warehouse, write(tmp_path / "b.parquet", late))
    assert stored_gaps(warehouse) == {"r0": None, "r1": 50.0, "r3": 900.0, "r2": 100.0, "other": None,
                                      "r3-error": None, "r3-shadow": None}
    with Warehouse(warehouse) as store:
        (found,) = store.request_source().caching_data(ttls=(60, 300, 900))
    assert {d.ttl_seconds: d.hits for d in found.days} == {60: 1, 300: 2, 900: 3}


def test_a_load_of_late_rows_only_leaves_the_latest_stored_answer_the_latest(tmp_path: Path) -> None:
    """The next load's first answer follows the latest answer of all, not the latest of the
    last load."""
    warehouse = tmp_path / "w.duckdb"
    load(warehouse, write(tmp_path / "a.parquet", [row("r1", 0), row("r2", 1000)]))
    load(warehouse, write(tmp_path / "b.parquet", [row("late", 500)]))
    load(warehouse, write(tmp_path / "c.parquet", [row("next", 1100)]))
    assert stored_gaps(warehouse) == {"r1": None, "late": 500.0, "r2": 500.0, "next": 100.0}


def test_same_second_repeats_are_ordered_by_request_id_whatever_the_load_order(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    load(warehouse, write(tmp_path / "a.parquet", [row("b", 10), row("d", 10)]))
    load(warehouse, write(tmp_path / "b.parquet", [row("c", 10), row("a", 0)]))
    assert stored_gaps(warehouse) == {"a": None, "b": 10.0, "c": 0.0, "d": 0.0}


def random_rows(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Repeats of a few prompts by two applications and models, some in the same second, some
    errors, shadow calls or without a hash, over three days."""
    rows = []
    for number in range(count):
        rows.append(row(
            f"r{number:04d}", float(rng.choice([rng.randrange(0, 3 * 86400), 3600 * rng.randrange(0, 72)])),
            application_id=rng.choice(["support-bot", "doc-qa"]), model=rng.choice(["m", "m2"]),
            prompt_hash=rng.choice(["h1", "h2", "h3", None]), status=rng.choice(["ok"] * 5 + ["error"]),
            shadow=rng.random() < 0.1, cost_usd=round(rng.uniform(0.001, 0.1), 4),
        ))
    return rows


def caching_from_files(tmp_path: Path, rows: list[dict[str, Any]], window: tuple[datetime, datetime]) -> Any:
    """The caching figures of the rows inside `window`, worked out from a Parquet file of them."""
    inside = [r for r in rows if window[0] <= r["ts"] < window[1]]
    path = write(tmp_path / f"window-{window[0]:%d%H}-{window[1]:%d%H}.parquet", inside)
    return RequestSource.from_parquet([path], label="rows").caching_data(ttls=TTLS)


def test_loads_in_any_order_give_the_caching_figures_of_the_rows_themselves(tmp_path: Path) -> None:
    """Rows loaded in five batches of shuffled rows (most of them late for some stored row):
    every window's caching figures are those worked out from the rows, as if loaded at once."""
    rng = random.Random(7)
    rows = random_rows(rng, 600)
    shuffled = rng.sample(rows, len(rows))
    warehouse = tmp_path / "w.duckdb"
    for number in range(5):
        load(warehouse, write(tmp_path / f"batch-{number}.parquet", shuffled[number::5]))
    windows = [(T0 - timedelta(days=1), T0 + timedelta(days=4)), (T0 + timedelta(hours=30), T0 + timedelta(days=2)),
               (T0 + timedelta(hours=5), T0 + timedelta(hours=50))]
    with Warehouse(warehouse) as store:
        for window in windows:
            assert store.request_source(window).caching_data(ttls=TTLS) == caching_from_files(tmp_path, rows, window)
    assert stored_gaps(warehouse) == gaps_of(rows)


def gaps_of(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Each row's seconds since the previous answer to its prompt, worked out from all of them."""
    gaps: dict[str, float | None] = {r["request_id"]: None for r in rows}
    last: dict[tuple[str, str, str], datetime] = {}
    for r in sorted(rows, key=lambda r: (r["ts"], r["request_id"])):
        if r["prompt_hash"] is None or r["shadow"] or r["status"] != "ok":
            continue
        prompt = (r["application_id"], r["model"], r["prompt_hash"])
        if prompt in last:
            gaps[r["request_id"]] = (r["ts"] - last[prompt]).total_seconds()
        last[prompt] = r["ts"]
    return gaps


def test_the_migration_fills_the_previous_answers_of_a_warehouse_made_before_it(tmp_path: Path) -> None:
    rows = random_rows(random.Random(11), 300)
    warehouse = tmp_path / "old.duckdb"
    with duckdb.connect(str(warehouse)) as db:
        migrate(db, up_to=8)
        db.execute("SET TimeZone = 'UTC'")
        db.execute("CREATE TEMP TABLE staged AS SELECT * FROM read_parquet($file)",
                   {"file": str(write(tmp_path / "rows.parquet", rows))})
        db.execute("INSERT INTO requests BY NAME SELECT *, hash(request_id) AS request_key, 'old-load' AS load_id,"
                   " now() AS loaded_at FROM staged")
    window = (T0 + timedelta(hours=5), T0 + timedelta(hours=50))
    with Warehouse(warehouse) as store:
        assert store.request_source(window).caching_data(ttls=TTLS) == caching_from_files(tmp_path, rows, window)
    assert stored_gaps(warehouse) == gaps_of(rows)
    # and the next load goes on from there: a late answer and a later one
    load(warehouse, write(tmp_path / "next.parquet", [row("late", 7200, prompt_hash="h2"),
                                                      row("later", 4 * 86400, prompt_hash="h2")]))
    everything = [*rows, row("late", 7200, prompt_hash="h2"), row("later", 4 * 86400, prompt_hash="h2")]
    assert stored_gaps(warehouse) == gaps_of(everything)
