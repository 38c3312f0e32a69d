"""Parquet out: a window's request records for workers that have no access to the warehouse
file (one process at a time may write it; any number of workers can read Parquet from
shared storage)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import duckdb


class ParquetExport:
    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def by_application(self, window: tuple[datetime, datetime], directory: Path) -> dict[str, Path]:
        """The window's request records as Parquet, one folder per application, in `directory`
        (emptied first); an empty window gives no folders."""
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        written = directory / "by-application"
        target = str(written).replace("'", "''")
        self._db.execute(
            f"COPY (SELECT * EXCLUDE (request_key, previous_prompt_ts) FROM requests WHERE ts >= $start AND ts < $end) TO '{target}' "
            "(FORMAT parquet, PARTITION_BY (application_id), WRITE_PARTITION_COLUMNS true, OVERWRITE_OR_IGNORE)",
            {"start": window[0], "end": window[1]},
        )
        if not written.exists():  # nothing in the window
            return {}
        # Plain folder names: `key=value` folders would be read back as Hive partitions.
        partitions = {}
        for number, folder in enumerate(sorted(p for p in written.iterdir() if p.is_dir())):
            application = unquote(folder.name.partition("=")[2])
            partitions[application] = folder.rename(directory / f"application-{number:05d}")
        written.rmdir()
        return partitions
