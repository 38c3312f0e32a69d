"""The request record as an Arrow schema, for the code that writes Parquet.

Derived from `records.REQUEST_COLUMNS` like every other form of the record; kept apart so
that reading the record's rules (settings, checks, the CLI's start) does not load pyarrow.
"""

from __future__ import annotations

import pyarrow as pa

from optimizer.schemas.records import REQUEST_COLUMNS, STORED_NOT_NULL, Kind

ARROW_TYPES: dict[Kind, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}

REQUEST_ARROW_SCHEMA: pa.Schema = pa.schema(
    [pa.field(c.name, ARROW_TYPES[c.kind], nullable=c.name not in STORED_NOT_NULL) for c in REQUEST_COLUMNS]
)
