"""Getting request records in: telemetry mapping, OTLP/JSON files, Parquet staging."""

from optimizer.ingest.mapping import columns_from_logs, record_from_attributes
from optimizer.ingest.otlp import OtlpStats, stage_otlp_file
from optimizer.ingest.staging import StagingWriter

__all__ = ["OtlpStats", "StagingWriter", "columns_from_logs", "record_from_attributes", "stage_otlp_file"]
