"""Request records at benchmark sizes, seeded and shaped like the sandbox's traffic.

Fourteen days of the sandbox generator's traffic are the pattern; larger sizes repeat it
further back in time with fresh ids (pairs and experiments stay intact), oldest copy first
so the file is in time order. Files are kept in `bench/data/` and reused.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from optimizer.sandbox.export import export_requests
from optimizer.sandbox.state import SandboxConfig
from optimizer.schemas.arrow import REQUEST_ARROW_SCHEMA

DATA_DIR = Path(__file__).resolve().parent / "data"
PATTERN_DAYS = 14
PATTERN_END = date(2026, 11, 25)


def _kept(path: Path) -> bool:
    """A file made earlier that still has the record's columns (a column added since means
    making it again)."""
    return path.exists() and pq.read_schema(path).names == REQUEST_ARROW_SCHEMA.names


def pattern(seed: int, anchor: date | None = None) -> Path:
    """The pattern's fourteen days; `anchor` is the day the generator places experiments and
    incidents from (default the pattern's end), as a sandbox whose clock stands on it does."""
    named = f"-anchor{anchor:%Y%m%d}" if anchor else ""
    path = DATA_DIR / f"pattern-seed{seed}{named}.parquet"
    if not _kept(path):
        export_requests(path, days=PATTERN_DAYS, end=PATTERN_END,
                        config=SandboxConfig(seed=seed, requests_per_day=12_000, anchor=anchor))
    return path


def _copy(table: pa.Table, copy: int, experiment_groups: int = 1) -> pa.Table:
    """The pattern `copy` periods earlier (a negative copy is later), with ids of its own; with
    several `experiment_groups`, its experiments are named after the group the copy falls in."""
    suffix = f"-{copy}" if copy >= 0 else f"-next{-copy}"
    shift = pa.scalar(timedelta(days=PATTERN_DAYS * copy), pa.duration("us"))
    table = (
        table.set_column(table.schema.get_field_index("request_id"), "request_id",
                         pc.binary_join_element_wise(table["request_id"], suffix, ""))
        .set_column(table.schema.get_field_index("pair_id"), "pair_id",
                    pc.binary_join_element_wise(table["pair_id"], suffix, ""))
        .set_column(table.schema.get_field_index("ts"), "ts", pc.subtract(table["ts"], shift))
    )
    if experiment_groups > 1:
        group = f"-g{copy % experiment_groups}"
        table = table.set_column(table.schema.get_field_index("experiment_id"), "experiment_id",
                                 pc.binary_join_element_wise(table["experiment_id"], group, ""))
    return table


def dataset(rows: int, seed: int = 42, experiment_groups: int = 1) -> Path:
    """A Parquet file of about `rows` request records (whole copies of the pattern), holding
    the pattern's experiments `experiment_groups` times over under different names."""
    groups = f"-exp-groups{experiment_groups}" if experiment_groups > 1 else ""
    path = DATA_DIR / f"requests-{rows}-seed{seed}{groups}.parquet"
    if _kept(path):
        return path
    table = pq.read_table(pattern(seed)).cast(REQUEST_ARROW_SCHEMA)
    copies = max(1, round(rows / table.num_rows))
    partial = path.with_suffix(".partial")
    with pq.ParquetWriter(partial, REQUEST_ARROW_SCHEMA, compression="zstd") as writer:
        for copy in range(copies - 1, -1, -1):
            writer.write_table(_copy(table, copy, experiment_groups).cast(REQUEST_ARROW_SCHEMA),
                               row_group_size=500_000)
    partial.rename(path)
    return path


def increment(seed: int = 42) -> Path:
    """The day after every dataset ends, for a nightly load: the pattern's first day, one period later."""
    path = DATA_DIR / f"increment-seed{seed}.parquet"
    if not _kept(path):
        table = pq.read_table(pattern(seed)).cast(REQUEST_ARROW_SCHEMA)
        second_day = datetime.combine(PATTERN_END - timedelta(days=PATTERN_DAYS - 1), time(), UTC)
        table = table.filter(pc.less(table["ts"], pa.scalar(second_day, pa.timestamp("us", "UTC"))))
        pq.write_table(_copy(table, -1).cast(REQUEST_ARROW_SCHEMA), path, compression="zstd")
    return path


def recent_dataset(rows: int, seed: int = 42, anchor: date | None = None) -> Path:
    """About `rows` request records all inside the pattern's fourteen days: the pattern's
    copies laid over each other, each shifted by its share of the period (wrapping round
    inside it) and with ids of its own (the first copy keeps the generator's, so the sandbox's
    late-record look-back finds them already stored, given the sandbox's `anchor`). What a
    night's analysis window reads when the warehouse's recent days hold millions of rows."""
    named = f"-anchor{anchor:%Y%m%d}" if anchor else ""
    path = DATA_DIR / f"requests-{rows}-seed{seed}-recent{named}.parquet"
    if _kept(path):
        return path
    source = pattern(seed, anchor)
    copies = max(1, round(rows / pq.read_metadata(source).num_rows))
    start = datetime.combine(PATTERN_END - timedelta(days=PATTERN_DAYS), time(), UTC)
    period_us = PATTERN_DAYS * 86_400_000_000
    columns = ", ".join(
        "CASE WHEN k = 0 THEN request_id ELSE request_id || '-r' || k END AS request_id" if name == "request_id" else
        "CASE WHEN k = 0 THEN pair_id ELSE pair_id || '-r' || k END AS pair_id" if name == "pair_id" else
        "make_timestamptz($start_us + (epoch_us(ts) - $start_us + k * $step_us) % $period_us) AS ts" if name == "ts" else
        name
        for name in REQUEST_ARROW_SCHEMA.names
    )
    partial = path.with_suffix(".partial")
    with duckdb.connect() as db, pq.ParquetWriter(partial, REQUEST_ARROW_SCHEMA, compression="zstd") as writer:
        db.execute("SET TimeZone = 'UTC'")
        db.execute("SET enable_progress_bar = false")
        batches = db.sql(
            f"SELECT {columns} FROM read_parquet($source), range($copies) AS copies(k) ORDER BY ts",
            params={"source": str(source), "copies": copies, "start_us": int(start.timestamp() * 1_000_000),
             "step_us": period_us // copies, "period_us": period_us},
        ).to_arrow_reader(500_000)
        for batch in batches:
            writer.write_table(pa.Table.from_batches([batch]).cast(REQUEST_ARROW_SCHEMA), row_group_size=500_000)
    partial.rename(path)
    return path
