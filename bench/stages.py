"""The optimizer's own stages, one per process so each gets its own peak memory figure.

`python -m bench.stages STAGE --data FILE --warehouse FILE` prints one JSON object of timings
(`--data` is the file to load; `analyses` ignores it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from optimizer.analysis import cascade, compression
from optimizer.analysis.experiments import analyse_experiment
from optimizer.catalog import load_catalog
from optimizer.report import NightlySummary, ReportData, render_html
from optimizer.schemas.loads import LoadBatch
from optimizer.settings import MODEL_CATALOG
from optimizer.warehouse import Warehouse

MEMORY_LIMIT = "3GB"


def load(data: Path, warehouse: Path) -> dict[str, Any]:
    """The first night: everything into an empty warehouse."""
    warehouse.unlink(missing_ok=True)
    started = time.perf_counter()
    with Warehouse(warehouse, memory_limit=MEMORY_LIMIT) as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        result = store.loads.load(LoadBatch(source="bench", request_files=[data]))
    return {"load_s": time.perf_counter() - started, "rows": result.loaded}


def floor(data: Path, warehouse: Path) -> dict[str, Any]:
    """DuckDB's own load of the same file into a fresh file, nothing checked or deduplicated:
    the floor a first load is held to. `floor_same_settings_s` is the same with the
    warehouse's session settings (insertion order not kept)."""
    timings = {}
    for key, settings in (("floor_s", []), ("floor_same_settings_s", ["SET preserve_insertion_order = false"])):
        path = warehouse.with_name(f"{warehouse.stem}-floor.duckdb")
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        with duckdb.connect(str(path)) as db:
            for statement in [f"SET memory_limit = '{MEMORY_LIMIT}'", *settings]:
                db.execute(statement)
            db.execute("CREATE TABLE t AS SELECT * FROM read_parquet($file)", {"file": str(data)})
        timings[key] = time.perf_counter() - started
        path.unlink()
    return timings


def increment(data: Path, warehouse: Path) -> dict[str, Any]:
    """Every night after: one more day into the warehouse, checked against all it holds."""
    started = time.perf_counter()
    with Warehouse(warehouse, memory_limit=MEMORY_LIMIT) as store:
        result = store.loads.load(LoadBatch(source="bench", request_files=[data]))
    return {"increment_s": time.perf_counter() - started, "increment_rows": result.loaded}


def analyses(warehouse: Path) -> dict[str, Any]:
    timings: dict[str, Any] = {}
    with Warehouse(warehouse, memory_limit=MEMORY_LIMIT) as store:
        source = store.request_source()
        started = time.perf_counter()
        cascades = cascade.recommend(source.cascade_pairs())
        timings["cascade_s"] = time.perf_counter() - started
        started = time.perf_counter()
        compressed = compression.recommend(source.compression_data(store.reference.input_prices()))
        timings["compression_s"] = time.perf_counter() - started
        started = time.perf_counter()
        experiments = [
            analyse_experiment(e, source.experiment_variants(e), {"control": 0.5, "treatment": 0.5})
            for e in source.experiment_ids()
        ]
        timings["experiments_s"] = time.perf_counter() - started
        rows = store.loads.request_count()
    started = time.perf_counter()
    end = datetime.now(UTC)
    summary = NightlySummary(requests_loaded=rows, requests_total=rows, quarantined=0, quarantined_total=0,
                             duplicates_skipped=0, windows=0, window_end=end, models=5, cost_days=0,
                             experiments=len(experiments), load_id="bench")
    html = render_html(ReportData(summary=summary, analysis_start=end - timedelta(days=14), cascades=cascades,
                                  compression=compressed, experiments=experiments))
    timings["report_s"] = time.perf_counter() - started
    timings["report_bytes"] = len(html)
    timings["adopted"] = (sum(r.decision == "adopt" for r in cascades.recommendations)
                          + sum(r.decision == "adopt" for r in compressed.recommendations))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=["load", "floor", "increment", "analyses", "pipeline"])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--warehouse", type=Path, required=True)
    args = parser.parse_args()
    if args.stage == "load":
        result = load(args.data, args.warehouse)
    elif args.stage == "floor":
        result = floor(args.data, args.warehouse)
    elif args.stage == "increment":
        result = increment(args.data, args.warehouse)
    elif args.stage == "analyses":
        result = analyses(args.warehouse)
    else:
        result = load(args.data, args.warehouse) | analyses(args.warehouse)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
