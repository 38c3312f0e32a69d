"""Which files a path names: a Parquet file, or every `*.parquet` under a folder."""

from __future__ import annotations

from pathlib import Path

from optimizer.errors import BadInputError


def parquet_inputs(path: Path) -> list[Path]:
    """A Parquet file, or every `*.parquet` under a directory."""
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if found:
            return found
        raise BadInputError(f"{path}: no .parquet files in this directory")
    raise BadInputError(f"{path}: no such file or directory")
