"""The warehouse keeps each whole day's partial results, and a night computes only the days
whose rows changed: the analyses must be exactly those of reading every row again."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from optimizer.analysis.batching import LATENCY_TOLERANT_TASK_TYPES
from optimizer.catalog import load_catalog
from optimizer.sandbox.export import export_requests
from optimizer.schemas.loads import LoadBatch
from optimizer.settings import MODEL_CATALOG
from optimizer.warehouse import Warehouse
from optimizer.warehouse.analytics import RequestSource
from optimizer.warehouse.day_partials import DAY, ROWS, DayPartial, StoredDayPartials
from tests.conftest import DAY_END, assert_same_numbers, sandbox_config

WINDOW = (DAY_END - timedelta(days=6), DAY_END)
PARTIALS = {"model_counts", "served", "pairs", "compression", "caching", "batching", "cells"}


def stored(folder: Path, days: int, per_day: int) -> tuple[Path, Path]:
    """The sandbox's `days` days before DAY_END as a Parquet file, loaded into a new warehouse."""
    data, warehouse = folder / "requests.parquet", folder / "w.duckdb"
    export_requests(data, days=days, end=DAY_END.date(), config=sandbox_config(requests_per_day=per_day))
    with Warehouse(warehouse) as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        store.loads.load(LoadBatch(source="test", request_files=[data]))
    return data, warehouse


def analyses(source: RequestSource, prices: dict[str, float]) -> dict[str, Any]:
    return {
        "profiles": [vars(p) for p in source.application_profiles()],
        "pairs": source.cascade_pairs(),
        "compression": source.compression_data(prices),
        "caching": source.caching_data(),
        "batching": source.batching_data(LATENCY_TOLERANT_TASK_TYPES),
        "cells": source.traffic_cells(),
    }


def late_rows(data: Path, folder: Path) -> Path:
    """Copies of 300 served, unpaired rows of the window's fourth day under new ids, five
    minutes later: only that day's rows change (no pairs, no prompt hashes)."""
    table = pq.read_table(data)
    day = WINDOW[0] + timedelta(days=3)
    chosen = table.filter(pc.and_(pc.and_(pc.greater_equal(table["ts"], pa.scalar(day, table.schema.field("ts").type)),
                                          pc.less(table["ts"], pa.scalar(day + timedelta(hours=20),
                                                                         table.schema.field("ts").type))),
                                  pc.and_(pc.invert(table["shadow"]), pc.is_null(table["pair_id"])))).slice(0, 300)
    late = (chosen.set_column(chosen.schema.get_field_index("request_id"), "request_id",
                              pc.binary_join_element_wise("late-", chosen["request_id"], ""))
            .set_column(chosen.schema.get_field_index("ts"), "ts",
                        pc.add(chosen["ts"], pa.scalar(timedelta(minutes=5))))
            .set_column(chosen.schema.get_field_index("prompt_hash"), "prompt_hash",
                        pa.nulls(chosen.num_rows, chosen.schema.field("prompt_hash").type)))
    path = folder / "late.parquet"
    pq.write_table(late, path)
    return path


def test_kept_day_partials_give_what_reading_every_row_gives_and_changed_days_alone_are_computed(tmp_path: Path) -> None:
    data, warehouse = stored(tmp_path, days=8, per_day=1500)
    with Warehouse(warehouse) as store:
        prices = store.reference.input_prices()
        first = store.request_source(WINDOW)
        before = analyses(first, prices)
        assert first.days_computed == dict.fromkeys(PARTIALS, 6)  # nothing kept yet
        again = store.request_source(WINDOW)
        assert_same_numbers(analyses(again, prices), before)
        assert again.days_computed == dict.fromkeys(PARTIALS, 0)  # every day kept
        store.loads.load(LoadBatch(source="test", request_files=[late_rows(data, tmp_path)]))
        after_load = store.request_source(WINDOW)
        after = analyses(after_load, prices)
        # The changed day, and for pairs the days whose partners it may hold.
        assert after_load.days_computed == {**dict.fromkeys(PARTIALS, 1), "pairs": 3}
        assert after["cells"] != before["cells"]
    with Warehouse(warehouse, read_only=True) as store:  # nothing can be kept: every row read again
        fresh = store.request_source(WINDOW)
        assert_same_numbers(analyses(fresh, prices), after)
        assert fresh.days_computed == dict.fromkeys(PARTIALS, 6)


def test_a_window_off_day_boundaries_reads_its_part_days_afresh(tmp_path: Path) -> None:
    data, warehouse = stored(tmp_path, days=8, per_day=1000)
    window = (WINDOW[0] + timedelta(hours=7), WINDOW[1] - timedelta(hours=5))
    with Warehouse(warehouse) as store:
        prices = store.reference.input_prices()
        analyses(store.request_source(WINDOW), prices)  # every whole day kept
        kept = store.request_source(window)
        found = analyses(kept, prices)
        assert kept.days_computed == dict.fromkeys(PARTIALS, 2)  # the two part-days; four whole days kept
    window_rows = tmp_path / "window.parquet"
    table = pq.read_table(data)
    ts_type = table.schema.field("ts").type
    pq.write_table(table.filter(pc.and_(pc.greater_equal(table["ts"], pa.scalar(window[0], ts_type)),
                                       pc.less(table["ts"], pa.scalar(window[1], ts_type)))), window_rows)
    assert_same_numbers(found, analyses(RequestSource.from_parquet([window_rows], label="window"), prices))


def test_days_are_utc_days(tmp_path: Path) -> None:
    """Caching and batching count by UTC day: a request at 23:59 belongs to its own day."""
    _, warehouse = stored(tmp_path, days=3, per_day=1000)
    with Warehouse(warehouse) as store:
        source = store.request_source((DAY_END - timedelta(days=3), DAY_END))
        last = int((DAY_END - timedelta(days=1)).timestamp()) // 86400
        batching = source.batching_data(LATENCY_TOLERANT_TASK_TYPES)
        caching = source.caching_data()
    assert batching and {b.last_day for b in batching} == {last}
    assert {d.day for b in batching for d in b.days} == {last - 2, last - 1, last}
    assert caching and {d.day for c in caching for d in c.days} == {last - 2, last - 1, last}


def test_sources_keeping_the_same_days_at_once_all_read_them_right(tmp_path: Path) -> None:
    """Threads of one process may analyse the same window together: whichever keeps a day
    first, the others read theirs afresh, and every one gets the same figures."""
    _, warehouse = stored(tmp_path, days=6, per_day=800)
    window = (DAY_END - timedelta(days=5), DAY_END)
    found: dict[int, Any] = {}

    def analyse(number: int) -> None:
        with Warehouse(warehouse) as store:
            source = store.request_source(window)
            found[number] = (source.traffic_cells(), source.cascade_pairs(), source.caching_data())

    threads = [threading.Thread(target=analyse, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(found) == [0, 1, 2, 3]
    assert all(found[number] == found[0] for number in found)
    with Warehouse(warehouse) as store:  # what was kept is right too
        kept = store.request_source(window)
        assert (kept.traffic_cells(), kept.cascade_pairs(), kept.caching_data()) == found[0]
        assert kept.days_computed == {"cells": 0, "model_counts": 0, "pairs": 0, "caching": 0, "served": 0}


def test_a_new_version_of_a_partial_replaces_what_the_old_one_kept(tmp_path: Path) -> None:
    data, warehouse = stored(tmp_path, days=3, per_day=500)
    rows = pq.read_metadata(data).num_rows
    window = {"start": DAY_END - timedelta(days=3), "end": DAY_END}
    old = DayPartial("probe", f"SELECT {DAY} AS day, count(*) AS n FROM requests WHERE {ROWS} GROUP BY ALL")
    new = DayPartial("probe", f"SELECT {DAY} AS day, count(*) AS n, sum(prompt_tokens) AS tokens "
                              f"FROM requests WHERE {ROWS} GROUP BY ALL")
    with duckdb.connect(str(warehouse)) as db:
        db.execute("SET TimeZone = 'UTC'")
        first = StoredDayPartials(db, "previous_prompt_ts")
        first.assemble(old, "first", window)
        second = StoredDayPartials(db, "previous_prompt_ts")
        second.assemble(new, "second", window)
        assert (first.computed, second.computed) == ({"probe": 3}, {"probe": 3})
        assert db.execute("SELECT sum(n), count(tokens) FROM second").fetchone() == (rows, 3)
        kept = db.execute("SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, 'day_partial_probe')")
        assert kept.fetchall() == [(f"day_partial_probe_{new.version}",)]
        assert db.execute("SELECT DISTINCT partial FROM day_partials WHERE starts_with(partial, 'day_partial_probe')"
                          ).fetchall() == [(f"day_partial_probe_{new.version}",)]
