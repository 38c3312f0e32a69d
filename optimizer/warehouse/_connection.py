"""Opening the warehouse file, and the transaction every concern writes in."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from optimizer.errors import WarehouseError

logger = logging.getLogger(__name__)


def _memory_setting(value: str) -> str:
    """A DuckDB memory size such as 3GB or 512MB; anything else is refused."""
    number, unit = value[:-2], value[-2:].upper()
    if not number.replace(".", "", 1).isdigit() or unit not in {"KB", "MB", "GB", "TB"}:
        raise WarehouseError(f"memory limit {value!r} is not a size like 3GB or 512MB")
    return f"{number}{unit}"


def _wait_for_lock(path: Path, read_only: bool, lock_timeout_s: float) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting while another process (a nightly run, say) holds its lock."""
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.1
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise WarehouseError(f"cannot open warehouse {path}: {first_line}") from exc
            logger.info("warehouse %s is locked by another process; waiting", path)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def connect(
    path: Path, *, read_only: bool, lock_timeout_s: float, memory_limit: str | None
) -> duckdb.DuckDBPyConnection:
    """A connection to the file with the session settings every query assumes (UTC)."""
    db = _wait_for_lock(path, read_only, lock_timeout_s)
    db.execute("SET TimeZone = 'UTC'")
    # Loads stream in insertion order no query relies on; not keeping it saves memory.
    db.execute("SET preserve_insertion_order = false")
    if memory_limit:  # DuckDB's default is 80% of the machine's memory
        db.execute(f"SET memory_limit = '{_memory_setting(memory_limit)}'")
    return db


@contextmanager
def transaction(db: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Everything written inside commits together, or is rolled back on any exception."""
    db.execute("BEGIN TRANSACTION")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
