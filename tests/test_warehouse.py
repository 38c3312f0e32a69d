"""The warehouse on real DuckDB files: migrations, idempotent and atomic loads, quarantine."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optimizer.catalog import load_catalog
from optimizer.errors import BadInputError
from optimizer.ingest.staging import StagingWriter
from optimizer.pipeline.rollout import adopted_changes
from optimizer.pipeline.runtime import Runtime
from optimizer.report import NightlySummary
from optimizer.schemas.analysis import (
    AdoptedRecommendation,
    CascadeRecommendation,
    CascadeReport,
    CompressionRecommendation,
    CompressionReport,
)
from optimizer.schemas.governance import CostBreakdown, CostSummary, DateRange, TeamCost
from optimizer.schemas.loads import LoadBatch
from optimizer.schemas.records import REQUEST_COLUMNS
from optimizer.settings import MODEL_CATALOG, Settings
from optimizer.warehouse import Warehouse
from optimizer.warehouse._migrate import migrate
from optimizer.warehouse.loads import REPEAT_REASON

CATALOG = load_catalog(MODEL_CATALOG)
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def good_row(key: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": key, "ts": "2026-11-24T10:15:30.123Z", "application_id": "support-bot",
        "team_id": "team-support", "model": "gpt-4o-2024-08-06", "prompt_tokens": 120,
        "completion_tokens": 40, "cost_usd": 0.0007, "latency_ms": 812.5, "status": "ok",
        "quality_score": 0.91, "shadow": False,
    }
    row.update(changes)
    return row


def stage(path: Path, rows: list[dict[str, Any]]) -> Path:
    with StagingWriter(path) as writer:
        writer.write(rows)
    return path


def contents(path: Path) -> dict[str, int]:
    """Row counts of every table, read through a separate connection."""
    with duckdb.connect(str(path), read_only=True) as db:
        tables = [t for (t,) in db.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return {t: int(db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}  # type: ignore[index]


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    with Warehouse(path) as store:
        store.reference.ensure_models(CATALOG)
    return path


def load(path: Path, files: list[Path], **batch: Any) -> Any:
    with Warehouse(path) as store:
        return store.loads.load(LoadBatch(source="test", request_files=files, **batch))


def test_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    Warehouse(path).close()
    Warehouse(path).close()
    with duckdb.connect(str(path), read_only=True) as db:
        assert db.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall() == [
            (1, "initial"), (2, "results_and_outbox"), (3, "recommendation_registry_columns"),
            (4, "request_optimization_id"), (5, "optimizations"),
            (6, "realized_savings"), (7, "request_keys"), (8, "request_prompt_hash"),
            (9, "request_previous_prompt"), (10, "day_partials")]
    assert {"requests", "quarantine", "models", "cost_summaries", "experiments", "recommendations",
            "rollouts", "audit_log", "watermarks", "loads", "optimization_runs", "experiment_results",
            "events_outbox"} <= set(contents(path))


def test_requests_table_has_the_contract_columns_and_types(warehouse_path: Path) -> None:
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        described = db.execute("DESCRIBE requests").fetchall()
    stored = {name: (kind, null) for name, kind, null, *_ in described}
    for column in REQUEST_COLUMNS:
        kind = "TIMESTAMP WITH TIME ZONE" if column.sql_type == "TIMESTAMPTZ" else column.sql_type
        assert stored[column.name][0] == kind, column.name
        must_have = column.required or column.default is not None
        assert (stored[column.name][1] == "NO") == must_have, column.name


def test_rerun_adds_no_duplicates(warehouse_path: Path, tmp_path: Path) -> None:
    staged = stage(tmp_path / "s.parquet", [good_row(f"r{i}") for i in range(50)])
    first = load(warehouse_path, [staged])
    second = load(warehouse_path, [staged])
    assert (first.loaded, first.duplicates) == (50, 0)
    assert (second.loaded, second.duplicates) == (0, 50)
    assert contents(warehouse_path)["requests"] == 50


def test_a_request_seen_twice_in_one_batch_is_stored_once(warehouse_path: Path, tmp_path: Path) -> None:
    staged = stage(tmp_path / "s.parquet", [good_row("r1"), good_row("r1"), good_row("r1", latency_ms=900.0),
                                            good_row("r2")])
    result = load(warehouse_path, [staged])
    assert (result.loaded, result.duplicates, result.quarantined) == (2, 1, 1)
    assert result.quarantine_reasons == {REPEAT_REASON: 1}
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        assert db.execute("SELECT latency_ms FROM requests WHERE request_id = 'r1'").fetchall() == [(812.5,)]


def test_a_request_id_is_stored_once_whatever_its_ts(warehouse_path: Path, tmp_path: Path) -> None:
    """First arrival wins; a later copy with other values (here a shifted ts) is quarantined
    with its reason, an identical one counted as a duplicate, in any later load."""
    ids = [f"r{i}" for i in range(5)]
    first = load(warehouse_path, [stage(tmp_path / "a.parquet", [good_row(k) for k in ids])])
    shifted = [
        load(warehouse_path, [stage(tmp_path / f"{label}.parquet", [good_row(k, ts=ts) for k in ids])])
        for label, ts in (("b", "2026-11-24T10:15:31.123Z"), ("c", "2026-11-27T10:15:30.123Z"))
    ]
    again = load(warehouse_path, [stage(tmp_path / "d.parquet", [good_row(k) for k in ids])])
    assert first.loaded == 5
    assert [(r.loaded, r.duplicates, r.quarantined) for r in shifted] == [(0, 0, 5), (0, 0, 5)]
    assert (again.loaded, again.duplicates, again.quarantined) == (0, 5, 0)
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        assert db.execute("SELECT count(*), count(DISTINCT ts) FROM requests").fetchone() == (5, 1)
        assert db.execute("SELECT DISTINCT reason FROM quarantine").fetchall() == [(REPEAT_REASON,)]


def test_stored_keys_follow_a_changed_hash_function(warehouse_path: Path, tmp_path: Path) -> None:
    """Keys made by another DuckDB's hash() are computed again before a load looks anything up."""
    load(warehouse_path, [stage(tmp_path / "a.parquet", [good_row("r1")])])
    with duckdb.connect(str(warehouse_path)) as db:
        db.execute("UPDATE requests SET request_key = request_key + 1")
        db.execute("UPDATE request_key_check SET canary = canary + 1")
    again = load(warehouse_path, [stage(tmp_path / "b.parquet", [good_row("r1", ts="2026-11-25T10:00:00Z")])])
    assert (again.loaded, again.quarantined) == (0, 1)


MALFORMED: list[tuple[dict[str, Any], str]] = [
    ({"request_id": None}, "request_id is missing"),
    ({"request_id": "  "}, "request_id is missing"),
    ({"ts": "yesterday afternoon"}, "ts is not a valid timestamp"),
    ({"application_id": None}, "application_id is missing"),
    ({"model": None}, "model is missing"),
    ({"prompt_tokens": -3}, "prompt_tokens is below 0"),
    ({"prompt_tokens": 12.5}, "prompt_tokens is not a valid integer"),
    ({"completion_tokens": "many"}, "completion_tokens is not a valid integer"),
    ({"completion_tokens": 2**70}, "completion_tokens is not a valid integer"),  # beyond int64
    ({"cost_usd": "n/a"}, "cost_usd is not a valid number"),
    ({"cost_usd": -0.1}, "cost_usd is below 0"),
    ({"latency_ms": "slow"}, "latency_ms is not a valid number"),
    ({"latency_ms": float("inf")}, "latency_ms is not finite"),
    ({"status": "partial"}, "status is not one of ok, error"),
    ({"status": None}, "status is missing"),
    ({"quality_score": 1.25}, "quality_score is above 1"),
    ({"confidence_score": -0.2}, "confidence_score is below 0"),
    ({"shadow": "maybe"}, "shadow is not a valid boolean"),
    ({"original_prompt_tokens": -1}, "original_prompt_tokens is below 0"),
    ({"cost_usd": None, "model": "in-house-llm"}, "cost_usd is missing and model in-house-llm has no price"),
    ({"_error": "line 3 is not valid JSON"}, "line 3 is not valid JSON"),
]


@pytest.mark.parametrize(("change", "reason"), MALFORMED, ids=[r for _, r in MALFORMED])
def test_each_broken_rule_quarantines_the_row_with_its_reason(
    warehouse_path: Path, tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    staged = stage(tmp_path / "s.parquet", [good_row("ok-1"), good_row("bad-1", **change)])
    result = load(warehouse_path, [staged])
    assert (result.loaded, result.quarantined) == (1, 1)
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        (stored_reason, raw), = db.execute("SELECT reason, raw_record FROM quarantine").fetchall()
    assert reason in stored_reason
    assert raw


def test_quarantine_does_not_grow_on_rerun(warehouse_path: Path, tmp_path: Path) -> None:
    staged = stage(tmp_path / "s.parquet", [good_row("bad", prompt_tokens=-1)])
    assert load(warehouse_path, [staged]).quarantined == 1
    assert load(warehouse_path, [staged]).quarantined == 0
    assert contents(warehouse_path)["quarantine"] == 1


def test_missing_cost_is_priced_from_the_catalog(warehouse_path: Path, tmp_path: Path) -> None:
    staged = stage(tmp_path / "s.parquet", [good_row("r1", cost_usd=None, prompt_tokens=1000, completion_tokens=500)])
    load(warehouse_path, [staged])
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        (cost,), = db.execute("SELECT cost_usd FROM requests").fetchall()
    assert cost == pytest.approx(1000 * 0.0025 / 1000 + 500 * 0.01 / 1000)


def test_offsets_are_converted_to_utc(warehouse_path: Path, tmp_path: Path) -> None:
    staged = stage(tmp_path / "s.parquet", [good_row("r1", ts="2026-11-24T12:00:00+02:00")])
    load(warehouse_path, [staged])
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        (ts,), = db.execute("SELECT ts FROM requests").fetchall()
    assert ts == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class InjectedFailure(RuntimeError):
    pass


def fail_after_requests(message: str) -> None:
    if message.startswith("stored"):
        raise InjectedFailure("disk full, say")


def test_failure_mid_load_leaves_the_warehouse_as_it_was(warehouse_path: Path, tmp_path: Path) -> None:
    load(warehouse_path, [stage(tmp_path / "a.parquet", [good_row("before")])],
         window=(T0 - timedelta(days=1), T0))
    before = contents(warehouse_path)
    staged = stage(tmp_path / "b.parquet", [good_row(f"r{i}") for i in range(20)] + [good_row("bad", status="?")])
    summary = CostSummary(period="daily", date_range=DateRange(start=date(2026, 11, 24), end=date(2026, 11, 24)),
                          total_cost_usd=5.0, breakdown=CostBreakdown(by_team=[TeamCost(team_id="t", cost_usd=5.0)]))
    with Warehouse(warehouse_path) as store, pytest.raises(InjectedFailure):
        store.loads.load(
            LoadBatch(source="test", request_files=[staged], cost_summaries={date(2026, 11, 24): summary},
                      window=(T0, T0 + timedelta(days=1))),
            on_step=fail_after_requests,
        )
    assert contents(warehouse_path) == before
    with Warehouse(warehouse_path) as store:
        assert store.loads.watermark("test") == T0
        retried = store.loads.load(LoadBatch(source="test", request_files=[staged], window=(T0, T0 + timedelta(days=1))))
    assert (retried.loaded, retried.quarantined) == (20, 1)


def test_watermark_never_moves_backwards(warehouse_path: Path) -> None:
    with Warehouse(warehouse_path) as store:
        store.loads.load(LoadBatch(source="s", window=(T0, T0 + timedelta(days=2))))
        store.loads.load(LoadBatch(source="s", window=(T0 - timedelta(days=1), T0)))
        assert store.loads.watermark("s") == T0 + timedelta(days=2)


def test_cost_summaries_of_a_day_are_replaced(warehouse_path: Path) -> None:
    day = date(2026, 11, 24)

    def summary(total: float, team: str) -> CostSummary:
        return CostSummary(period="daily", date_range=DateRange(start=day, end=day), total_cost_usd=total,
                           breakdown=CostBreakdown(by_team=[TeamCost(team_id=team, cost_usd=total)]))

    with Warehouse(warehouse_path) as store:
        store.loads.load(LoadBatch(source="s", cost_summaries={day: summary(5.0, "team-a")}))
        store.loads.load(LoadBatch(source="s", cost_summaries={day: summary(7.0, "team-b")}))
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        rows = db.execute("SELECT dimension, key, cost_usd FROM cost_summaries ORDER BY 1, 2").fetchall()
    assert rows == [("team", "team-b", 7.0), ("total", "all", 7.0)]


def test_a_model_listed_twice_in_one_load_is_stored_once_as_listed_last(warehouse_path: Path) -> None:
    first, second = CATALOG[0], CATALOG[0].model_copy(update={"model_name": "renamed"})
    many = [CATALOG[1].model_copy(update={"model_id": f"m-{n:03d}"}) for n in range(600)]  # more than one statement
    with Warehouse(warehouse_path) as store:
        store.loads.load(LoadBatch(source="s", models=[*many, first, second]))
        ids = store.reference.model_ids()
        names = {p.model_id: p.model_name for p in store.reference.model_profiles()}
    assert len(ids) == len(set(ids)) and set(ids) >= {first.model_id, *(m.model_id for m in many)}
    assert names[first.model_id] == "renamed"


def test_parquet_with_native_types_loads(warehouse_path: Path, tmp_path: Path) -> None:
    table = pa.table({
        "request_id": ["a", "b"], "ts": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
        "application_id": ["app", "app"], "model": ["gpt-4o-mini-2024-07-18"] * 2,
        "prompt_tokens": pa.array([10, 20], pa.int64()), "completion_tokens": pa.array([1, 2], pa.int64()),
        "cost_usd": [0.1, 0.2], "latency_ms": [100.0, 200.0], "status": ["ok", "error"],
        "quality_score": [0.5, None], "an_extra_column": ["ignored", "too"],
    })
    path = tmp_path / "native.parquet"
    pq.write_table(table, path)
    result = load(warehouse_path, [path])
    assert (result.loaded, result.quarantined) == (2, 0)


def test_parquet_without_a_required_column_is_bad_input(warehouse_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "thin.parquet"
    pq.write_table(pa.table({"request_id": ["a"], "ts": [T0]}), path)
    with pytest.raises(BadInputError, match=r"missing required column.*application_id"):
        load(warehouse_path, [path])


def test_a_file_that_is_not_parquet_is_bad_input(warehouse_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "notes.parquet"
    path.write_text("not parquet at all")
    with pytest.raises(BadInputError, match="cannot read Parquet"):
        load(warehouse_path, [path])


def cascade_result(application: str, decision: str = "adopt") -> CascadeRecommendation:
    return CascadeRecommendation(
        application_id=application, decision=decision, primary_model="gpt-4o-mini-2024-07-18",
        fallback_model="gpt-4o-2024-08-06", confidence_threshold=0.9, escalation_rate=0.2, cost_reduction_pct=40.0,
        quality_change=-0.004, quality_change_ci=(-0.009, 0.001), n_pairs=900, reason="shadow pairs",
    )


def compression_result(application: str) -> CompressionRecommendation:
    return CompressionRecommendation(
        application_id=application, decision="adopt", technique="llmlingua", model="gpt-4o-2024-08-06",
        token_reduction_pct=35.0, quality_change=-0.002, quality_change_ci=(-0.006, 0.002),
        estimated_monthly_savings_usd=273.92, min_prompt_tokens=800, n_compressed=500, n_uncompressed=500,
        reason="compressed traffic",
    )


def told_registry(run_id: str, kind: str, application: str, monthly_savings_usd: float) -> AdoptedRecommendation:
    short = kind.split("_")[-1]
    return AdoptedRecommendation(recommendation_id=f"{run_id}-{short}-{application}", kind=kind,
                                 application_id=application, description=f"{kind} for {application}",
                                 monthly_savings_usd=monthly_savings_usd)


def test_adopted_results_keep_their_registry_id_and_savings_for_the_rollout(warehouse_path: Path) -> None:
    adopted = [told_registry("run-1", "model_cascade", "support-bot", 113.65),
               told_registry("run-1", "prompt_compression", "doc-qa", 273.92)]
    with Warehouse(warehouse_path) as store:
        store.results.record(
            "run-1",
            cascades=CascadeReport(recommendations=[cascade_result("support-bot"), cascade_result("email", "reject")],
                                   max_quality_drop=0.02, alpha=0.05),
            compression=CompressionReport(recommendations=[compression_result("doc-qa")],
                                          max_quality_drop=0.02, alpha=0.05),
            experiments=[], adopted=adopted, events=[],
        )
        store.runs.save("run-1", T0, (None, T0), "{}")  # a summary that names no recommendation
    with duckdb.connect(str(warehouse_path), read_only=True) as db:
        stored = db.execute("SELECT application_id, registry_recommendation_id, monthly_savings_usd"
                            " FROM recommendations ORDER BY application_id").fetchall()
    assert stored == [("doc-qa", "run-1-compression-doc-qa", 273.92), ("email", None, None),
                      ("support-bot", "run-1-cascade-support-bot", 113.65)]
    changes = adopted_changes(Runtime(Settings(warehouse=warehouse_path)))
    assert [(c.application_id, c.kind, c.recommendation_id, c.monthly_savings_usd) for c in changes] == [
        ("support-bot", "model_cascade", "run-1-cascade-support-bot", 113.65),
        ("doc-qa", "prompt_compression", "run-1-compression-doc-qa", 273.92),
    ]


def test_a_warehouse_from_before_the_registry_columns_fills_them_from_its_run_summaries(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    results = [("cascade", cascade_result("support-bot")), ("cascade", cascade_result("email", "reject")),
               ("compression", compression_result("doc-qa"))]
    summary = NightlySummary(
        run_id="run-1", requests_loaded=10, requests_total=10, quarantined=0, quarantined_total=0,
        duplicates_skipped=0, windows=1, window_end=T0, models=0, cost_days=0, experiments=0, load_id="l",
        recommendations=[told_registry("run-1", "model_cascade", "support-bot", 113.65),
                         told_registry("run-1", "prompt_compression", "doc-qa", 273.92)],
    )
    with duckdb.connect(str(path)) as db:
        assert migrate(db, up_to=2) == [1, 2]
        for kind, entry in results:
            db.execute("INSERT INTO recommendations VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [f"run-1:{kind}:{entry.application_id}", kind, entry.application_id, entry.decision,
                        "run-1", T0, entry.model_dump_json()])
        db.execute("INSERT INTO optimization_runs VALUES (?, ?, ?, ?, ?, ?)",
                   ["run-1", T0, T0, None, T0, summary.model_dump_json()])
    with Warehouse(path) as store:
        recorded = store.results.latest_adopted()
    assert [(r.entry.application_id, r.recommendation_id, r.monthly_savings_usd) for r in recorded] == [
        ("support-bot", "run-1-cascade-support-bot", 113.65), ("doc-qa", "run-1-compression-doc-qa", 273.92)]
    with duckdb.connect(str(path), read_only=True) as db:
        assert db.execute("SELECT max(version) FROM schema_migrations").fetchone() == (10,)
        assert db.execute("SELECT registry_recommendation_id, monthly_savings_usd FROM recommendations"
                          " WHERE application_id = 'email'").fetchone() == (None, None)
