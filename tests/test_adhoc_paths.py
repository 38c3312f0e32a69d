"""The shortcuts that make the ad-hoc commands fast give exactly what the plain SQL gives: a
cascade's p95 latencies from each candidate's pairs in one pass, bit for bit DuckDB's
`quantile_cont` over the threshold join; and the file check's per-column suspects, a
superset of the broken rows, whose row-by-row check counts what checking every row counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optimizer.analysis.cascade_pairs import (
    GRID_STEPS,
    LATENCY_STEP,
    NO_LEVEL,
    latency_tails,
    quantile_cont,
)
from optimizer.schemas.arrow import REQUEST_ARROW_SCHEMA
from optimizer.warehouse._validation import literal, suspect_conditions, typed_projection
from optimizer.warehouse.analytics import EXPERIMENT_READS, RequestSource, _as_is
from optimizer.warehouse.parquet_input import parquet_columns

# The cascade's latency at a threshold step for a highest routed level (cutoff), as SQL: what
# the warehouse computed over a join of every pair with every step and cutoff.
THRESHOLD_JOIN = f"""
SELECT k.cutoff, s.step,
       quantile_cont(CASE WHEN k.cutoff < 2 AND (level IS NULL OR level > k.cutoff) THEN fallback_latency
                          WHEN bin >= s.step THEN primary_latency
                          ELSE primary_latency + fallback_latency END, 0.95) AS p95
FROM pairs, (SELECT range * {LATENCY_STEP} AS step FROM range(0, {GRID_STEPS // LATENCY_STEP + 1})) AS s,
     (SELECT range AS cutoff FROM range(0, 3)) AS k
GROUP BY ALL ORDER BY ALL
"""


def _pairs(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    levels = rng.choice([0, 1, 2, NO_LEVEL], n).astype(np.int64)
    return {
        "bin": rng.integers(-1, GRID_STEPS + 1, n),
        "level": levels,
        # Rounded, so that equal latencies (ties at the order statistics) occur too.
        "primary_latency": np.round(rng.lognormal(6, 1, n), 1 if n % 2 else 4),
        "fallback_latency": np.round(rng.lognormal(7, 0.8, n), 1 if n % 2 else 4),
    }


@pytest.mark.parametrize("n", [1, 2, 3, 20, 21, 399, 5_000])
def test_one_pass_tails_are_duckdbs_quantiles_over_the_threshold_join(n: int) -> None:
    pairs = _pairs(np.random.default_rng(n), n)
    db = duckdb.connect()
    db.execute("CREATE TABLE pairs AS SELECT bin, CASE WHEN level = $none THEN NULL ELSE level END AS level, "
               "primary_latency, fallback_latency FROM (SELECT unnest($bin) AS bin, unnest($level) AS level, "
               "unnest($primary) AS primary_latency, unnest($fallback) AS fallback_latency)",
               {"none": NO_LEVEL, "bin": pairs["bin"].tolist(), "level": pairs["level"].tolist(),
                "primary": pairs["primary_latency"].tolist(), "fallback": pairs["fallback_latency"].tolist()})
    expected = db.execute(THRESHOLD_JOIN).fetchall()
    (fallback_expected,) = db.execute("SELECT quantile_cont(fallback_latency, 0.95) FROM pairs").fetchone() or (None,)

    fallback_p95, by_cutoff = latency_tails(pairs["bin"], pairs["level"], pairs["primary_latency"],
                                            pairs["fallback_latency"])

    assert [(cutoff, step, p95) for cutoff, steps in enumerate(by_cutoff) for step, p95 in steps] == expected
    assert fallback_p95 == fallback_expected


def test_quantile_cont_is_duckdbs_to_the_bit_and_may_leave_out_what_lies_below() -> None:
    rng = np.random.default_rng(3)
    db = duckdb.connect()
    for n in (1, 2, 7, 100, 1_001, 4_093):
        values = rng.lognormal(8, 1, n)
        (expected,) = db.execute("SELECT quantile_cont(v, 0.95) FROM (SELECT unnest($v) AS v)",
                                 {"v": values.tolist()}).fetchone() or (None,)
        assert quantile_cont(values, 0.95) == expected
        # Values under the lower order statistic may be counted instead of passed.
        cut = int(np.floor((n - 1) * 0.95))
        ordered = np.sort(values)
        assert quantile_cont(rng.permutation(ordered[cut:]), 0.95, below=cut) == expected


T0 = datetime(2026, 11, 20, tzinfo=UTC)
WIDE = "\u00e9" * 200  # 400 bytes of UTF-8, 200 characters: long only in bytes


def _row(i: int, **values: object) -> dict[str, object]:
    base = {name: None for name in REQUEST_ARROW_SCHEMA.names} | {
        "request_id": f"r{i}", "ts": T0 + timedelta(seconds=i), "application_id": "app", "model": "m",
        "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.01, "latency_ms": 100.0, "status": "ok",
        "shadow": False, "experiment_id": "exp", "variant_id": "control" if i % 2 else "treatment"}
    return base | values


def test_suspects_hold_every_broken_row_and_only_the_broken_are_left_out(tmp_path: Path) -> None:
    rows = [_row(i) for i in range(40)]
    rows[3] |= {"team_id": WIDE}  # a suspect (bytes), not broken (characters)
    rows[5] |= {"team_id": WIDE + "\u00e9" * 57}  # 257 characters: broken
    rows[8] |= {"latency_ms": float("nan"), "status": "maybe"}  # two rules at once
    rows[13] |= {"request_id": "\u00a0 "}  # blank once trimmed
    schema = pa.schema([field.with_nullable(True) for field in REQUEST_ARROW_SCHEMA])
    path = tmp_path / "mixed.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=16)

    db = duckdb.connect()
    types = parquet_columns(db, [str(path)], label="mixed", required=(), check_types=True)
    source = f"read_parquet({literal(str(path))})"
    suspects = {place for condition in suspect_conditions(types) for (place,) in
                db.execute(f"SELECT s.file_row_number FROM {source} AS s WHERE {condition}").fetchall()}
    broken = {place for (place,) in db.execute(
        f"SELECT file_row_number FROM (SELECT s.file_row_number, {typed_projection(types, with_raw=False, columns=())} "
        f"FROM {source} AS s) WHERE _problems IS NOT NULL").fetchall()}
    assert broken == {5, 8, 13} and suspects == {3, 5, 8, 13}

    checked = RequestSource.from_parquet([path], label="mixed", reads=EXPERIMENT_READS)
    assert (checked.summary.rows, checked.summary.rows_excluded) == (40, 3)
    assert checked.summary.exclusion_reasons == {
        "latency_ms is not finite": 1, "request_id is missing": 1, "status is not one of ok, error": 1,
        "team_id is longer than 256 characters": 1}
    assert sum(v.cost_usd.n for v in checked.experiment_variants("exp")) == 37


def test_text_is_read_as_it_is_only_where_no_value_needs_trimming(tmp_path: Path) -> None:
    rows = [_row(i) for i in range(40)]
    for i in (4, 10):  # treatment rows turned control
        rows[i] |= {"variant_id": "control\u3000 "}  # trimmed to 'control' (an ideographic space too)
    path = tmp_path / "spaced.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=REQUEST_ARROW_SCHEMA), path)
    db = duckdb.connect()
    types = parquet_columns(db, [str(path)], label="spaced", required=(), check_types=True)

    plain = _as_is(db, f"read_parquet({literal(str(path))})", types, EXPERIMENT_READS)

    assert plain == {"experiment_id", "status"}  # variant_id needs trimming; ts and the numbers are not text
    variants = RequestSource.from_parquet([path], label="spaced", reads=EXPERIMENT_READS).experiment_variants("exp")
    assert {v.variant_id: v.cost_usd.n for v in variants} == {"control": 22, "treatment": 18}
