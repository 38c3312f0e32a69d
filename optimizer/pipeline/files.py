"""`auto-optimizer ingest`: load OTLP/JSON or Parquet files with the nightly load's guarantees."""

from __future__ import annotations

import tempfile
from pathlib import Path

from optimizer.catalog import load_catalog
from optimizer.ingest.files import parquet_inputs
from optimizer.ingest.otlp import stage_otlp_file
from optimizer.pipeline.runtime import Runtime
from optimizer.schemas.loads import IngestSummary, LoadBatch


def ingest_parquet(runtime: Runtime, path: Path) -> IngestSummary:
    files = parquet_inputs(path)
    with runtime.warehouse() as store:
        store.reference.ensure_models(load_catalog(runtime.settings.model_catalog))
        result = store.loads.load(LoadBatch(source=f"parquet:{path.name}", request_files=files,
                                                 bounds=runtime.settings.record_bounds))
    return IngestSummary.of(f"parquet:{path}", len(files), result)


def ingest_otlp(runtime: Runtime, path: Path) -> IngestSummary:
    with tempfile.TemporaryDirectory(prefix="otlp-staging-") as staging:
        staged = Path(staging) / "spans"
        stats = stage_otlp_file(path, staged)
        with runtime.warehouse() as store:
            store.reference.ensure_models(load_catalog(runtime.settings.model_catalog))
            result = store.loads.load(LoadBatch(source=f"otlp:{path.name}", request_files=[staged],
                                                     bounds=runtime.settings.record_bounds))
    return IngestSummary.of(f"otlp:{path}", 1, result, spans=stats.spans,
                            non_llm_spans_skipped=stats.spans - stats.genai_spans)
