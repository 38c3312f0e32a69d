"""Scale-out: analyses fanned out by application agree with analysing everything at once,
and the nightly flow on a local Dask cluster stores what it stores with threads."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.logging import disable_run_logger
from pydantic import BaseModel

from flows.nightly import nightly_optimization
from flows.runners import dask_runner, task_runner
from optimizer.analysis import cascade, compression
from optimizer.catalog import load_catalog
from optimizer.pipeline.analyze import (
    analyze_application,
    analyze_window,
    combine,
    combine_savings,
    export_for_analysis,
)
from optimizer.pipeline.runtime import Runtime, configured
from optimizer.report import NightlySummary
from optimizer.sandbox import SandboxServer
from optimizer.sandbox.export import export_requests
from optimizer.schemas.analysis import CascadeReport, CompressionReport
from optimizer.schemas.loads import LoadBatch
from optimizer.settings import MODEL_CATALOG, Settings
from optimizer.warehouse import Warehouse
from tests.conftest import (
    DAY_END,
    assert_same_numbers,
    sandbox_config,
    settings_for,
)


def test_analysing_applications_apart_gives_the_report_of_analysing_them_together(tmp_path: Path) -> None:
    data = tmp_path / "requests.parquet"
    export_requests(data, days=14, end=DAY_END.date(), config=sandbox_config(requests_per_day=3000))
    window = (DAY_END - timedelta(days=14), DAY_END)
    with Warehouse(tmp_path / "w.duckdb") as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        store.loads.load(LoadBatch(source="test", request_files=[data]))
        whole = store.request_source(window)
        together = (
            cascade.recommend(whole.cascade_pairs()),
            compression.recommend(whole.compression_data(store.reference.input_prices())),
            whole.application_profiles(),
        )
        partitions = store.export.by_application(window, tmp_path / "by-application")
        prices = store.reference.input_prices()
        rows = store.loads.request_count()  # the data is the window, exactly
    with disable_run_logger():
        apart = combine(
            [analyze_application(app, folder, prices, 0.02, 0.05) for app, folder in partitions.items()],
            max_quality_drop=0.02, alpha=0.05,
        )
    assert sorted(partitions) == [p.application_id for p in together[2]]
    assert len(partitions) >= 5 and {r.decision for r in together[0].recommendations} >= {"reject"}
    assert all(r.p95_latency_change_pct is not None for r in together[0].recommendations if r.decision == "reject")
    for merged, single in zip(apart[:2], together[:2], strict=True):
        assert isinstance(merged, CascadeReport | CompressionReport)
        assert_same_numbers(merged.model_dump(exclude={"input"}), single.model_dump(exclude={"input"}))
    assert apart[0].input is not None and apart[0].input.rows == rows
    assert_same_numbers([vars(p) for p in apart[2]], [vars(p) for p in together[2]])


def test_the_window_analysed_in_the_warehouse_gives_what_the_application_folders_give(tmp_path: Path) -> None:
    """Threads analyse the window where it is stored, in one pass for every application; Dask
    workers analyse each application's Parquet folder. The night must not depend on which."""
    data = tmp_path / "requests.parquet"
    export_requests(data, days=14, end=DAY_END.date(), config=sandbox_config(requests_per_day=3000))
    window = (DAY_END - timedelta(days=10), DAY_END)  # less than the data: the window alone is read
    runtime = Runtime(Settings(warehouse=tmp_path / "w.duckdb"))
    with runtime.warehouse() as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        store.loads.load(LoadBatch(source="test", request_files=[data]))
        assert store.request_source(window).summary.rows < store.loads.request_count()
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as db:
        (in_window,), = db.execute("SELECT count(*) FROM requests WHERE ts >= $1 AND ts < $2", list(window)).fetchall()
    with disable_run_logger():
        inputs = export_for_analysis(runtime, window, tmp_path / "by-application")
        folders = [analyze_application(app, folder, inputs.input_prices, 0.02, 0.05, batch_prices=inputs.batch_prices)
                   for app, folder in inputs.partitions.items()]
        direct = analyze_window(runtime, window, 0.02, 0.05)
    apart = (*combine(folders, max_quality_drop=0.02, alpha=0.05), *combine_savings(folders, alpha=0.05))
    together = (*combine([direct], max_quality_drop=0.02, alpha=0.05), *combine_savings([direct], alpha=0.05))
    assert together[0].recommendations and together[3].recommendations and together[4].recommendations
    assert_same_numbers([vars(p) for p in together[2]], [vars(p) for p in apart[2]])
    for one, other in zip((together[0], together[1], *together[3:]), (apart[0], apart[1], *apart[3:]), strict=True):
        assert isinstance(one, BaseModel) and isinstance(other, BaseModel)
        assert_same_numbers(one.model_dump(exclude={"input"}), other.model_dump(exclude={"input"}))
    assert direct.cascades.input is not None and apart[0].input is not None
    assert direct.cascades.input.rows == apart[0].input.rows == in_window


def test_partition_folders_round_trip_any_application_name(tmp_path: Path) -> None:
    data = tmp_path / "requests.parquet"
    export_requests(data, days=1, end=DAY_END.date(), config=sandbox_config(requests_per_day=200))
    odd = "team a/bot=1 é"
    with duckdb.connect() as db:
        db.execute(f"COPY (SELECT * REPLACE (CASE WHEN application_id = 'support-bot' THEN '{odd}' "
                   f"ELSE application_id END AS application_id) FROM '{data}') TO '{tmp_path / 'odd.parquet'}'")
    with Warehouse(tmp_path / "w.duckdb") as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        store.loads.load(LoadBatch(source="test", request_files=[tmp_path / "odd.parquet"]))
        partitions = store.export.by_application((DAY_END - timedelta(days=1), DAY_END), tmp_path / "out")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as db:
        counts = dict(db.execute("SELECT application_id, count(*) FROM requests GROUP BY 1").fetchall())
    assert odd in partitions and "=" not in partitions[odd].name
    for application, folder in partitions.items():
        with duckdb.connect() as db:
            found = db.execute(f"SELECT DISTINCT application_id, count(*) OVER () FROM '{folder}/*.parquet'").fetchall()
        assert found == [(application, counts[application])]


def stored(warehouse: Path) -> dict[str, Any]:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        recommendations = db.execute(
            "SELECT kind, application_id, decision, payload FROM recommendations ORDER BY kind, application_id"
        ).fetchall()
        experiments = db.execute(
            "SELECT experiment_id, recommendation, winner, payload FROM experiment_results ORDER BY experiment_id"
        ).fetchall()
        requests = db.execute("SELECT count(*), sum(cost_usd) FROM requests").fetchone()
    return {
        "recommendations": [[*row[:3], json.loads(row[3])] for row in recommendations],
        "experiments": [[*row[:3], json.loads(row[3])] for row in experiments],
        "requests": list(requests or ()),
    }


def night(sandbox: SandboxServer, folder: Path, runner: Any = None) -> tuple[NightlySummary, dict[str, Any]]:
    """A nightly run against `sandbox` into a warehouse of its own."""
    settings = settings_for(sandbox, folder)
    flow = nightly_optimization if runner is None else nightly_optimization.with_options(task_runner=runner)
    with configured(settings):  # the Dask workers get them with each task, not from their environment
        summary = flow(window_end=DAY_END, backfill_days=7)
    return summary, stored(settings.warehouse)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_the_nightly_flow_on_a_local_dask_cluster_stores_what_threads_store(tmp_path: Path) -> None:
    with SandboxServer(sandbox_config(requests_per_day=2000)) as sandbox:
        threads_summary, with_threads = night(sandbox, tmp_path / "threads")
        dask_summary, with_dask = night(sandbox, tmp_path / "dask", dask_runner(workers=2))
    assert with_threads["experiments"] and {row[2] for row in with_threads["recommendations"]} & {"adopt", "reject"}
    assert_same_numbers(with_dask, with_threads)
    for field in ("requests_loaded", "quarantined", "windows", "experiments", "budgets_flagged"):
        assert getattr(dask_summary, field) == getattr(threads_summary, field), field
    outcomes = {"recommendations": {"__all__": {"recommendation_id"}}}  # ids carry the run's id
    assert_same_numbers(dask_summary.model_dump(include={"recommendations", "experiment_outcomes"}, exclude=outcomes),
                        threads_summary.model_dump(include={"recommendations", "experiment_outcomes"}, exclude=outcomes))
    assert dask_summary.potential_monthly_savings_usd == pytest.approx(threads_summary.potential_monthly_savings_usd)


def test_the_task_runner_follows_settings() -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask.task_runners import DaskTaskRunner

    assert isinstance(task_runner(Settings()), ThreadPoolTaskRunner)
    remote = task_runner(Settings(task_runner="dask", dask_address="tcp://127.0.0.1:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://127.0.0.1:8786"
    local = task_runner(Settings(task_runner="dask", dask_workers=3))
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 3
