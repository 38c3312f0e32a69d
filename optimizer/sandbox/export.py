"""Request records from the sandbox's generator as a Parquet file of the contract's shape.

Analysts try `auto-optimizer analyze ...` on such files; tests use them as realistic input.
The records are the generator's ground truth: no malformed rows, no late arrivals.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from optimizer.sandbox.state import SandboxConfig, SandboxState
from optimizer.schemas.arrow import REQUEST_ARROW_SCHEMA


def records_table(frame: pd.DataFrame) -> pa.Table:
    """Generated requests as an Arrow table with the request record's schema."""
    arrays = []
    for field in REQUEST_ARROW_SCHEMA:
        if field.name == "ts":
            micros = pa.array(frame["ts_ns"].to_numpy() // 1000, pa.int64())
            arrays.append(micros.cast(field.type))
            continue
        values = frame[field.name].to_numpy()
        if field.name == "original_prompt_tokens":
            arrays.append(pa.array(values, type=field.type, mask=values < 0))
        elif field.type in (pa.string(), pa.bool_()):
            cleaned = [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]
            arrays.append(pa.array(cleaned, type=field.type))
        else:
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=REQUEST_ARROW_SCHEMA)


def export_requests(path: Path, *, days: int, end: date, config: SandboxConfig) -> int:
    """Write the `days` complete days before `end` to `path`; returns the row count."""
    state = SandboxState(config.model_copy(update={"malformed_share": 0.0, "anchor": config.anchor or end}))
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with pq.ParquetWriter(path, REQUEST_ARROW_SCHEMA, compression="zstd") as writer:
        for offset in range(days, 0, -1):
            table = records_table(state.traffic.day(end - timedelta(days=offset)))
            writer.write_table(table)
            rows += table.num_rows
    return rows
