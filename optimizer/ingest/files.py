"""`auto-optimizer ingest`: load OTLP/JSON or Parquet files with the nightly load's guarantees."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

from optimizer.catalog import load_catalog
from optimizer.errors import BadInputError
from optimizer.ingest.otlp import stage_otlp_file
from optimizer.schemas.loads import LoadBatch, LoadResult
from optimizer.warehouse import Warehouse


class IngestSummary(BaseModel):
    source: str
    files: int
    rows_in: int
    loaded: int
    duplicates_skipped: int
    quarantined: int
    quarantine_reasons: dict[str, int] = Field(default_factory=dict)
    requests_total: int
    spans: int | None = None
    non_llm_spans_skipped: int | None = None


def _summary(source: str, files: int, result: LoadResult, **extra: int) -> IngestSummary:
    return IngestSummary(
        source=source,
        files=files,
        rows_in=result.rows_in,
        loaded=result.loaded,
        duplicates_skipped=result.duplicates,
        quarantined=result.quarantined,
        quarantine_reasons=result.quarantine_reasons,
        requests_total=result.requests_total,
        **extra,
    )


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


def ingest_parquet(path: Path, *, warehouse: Path, catalog: Path) -> IngestSummary:
    files = parquet_inputs(path)
    with Warehouse(warehouse) as store:
        store.reference.ensure_models(load_catalog(catalog))
        result = store.loads.load(LoadBatch(source=f"parquet:{path.name}", request_files=files))
    return _summary(f"parquet:{path}", len(files), result)


def ingest_otlp(path: Path, *, warehouse: Path, catalog: Path) -> IngestSummary:
    with tempfile.TemporaryDirectory(prefix="otlp-staging-") as staging:
        staged = Path(staging) / "spans"
        stats = stage_otlp_file(path, staged)
        with Warehouse(warehouse) as store:
            store.reference.ensure_models(load_catalog(catalog))
            result = store.loads.load(LoadBatch(source=f"otlp:{path.name}", request_files=[staged]))
    return _summary(
        f"otlp:{path}", 1, result,
        spans=stats.spans, non_llm_spans_skipped=stats.spans - stats.genai_spans,
    )
