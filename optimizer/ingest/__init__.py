"""Getting request records in: telemetry mapping, OTLP/JSON files, Parquet staging."""

from optimizer.ingest.mapping import record_from_attributes, record_from_log
from optimizer.ingest.otlp import OtlpStats, stage_otlp_file
from optimizer.ingest.staging import StagingWriter

__all__ = ["OtlpStats", "StagingWriter", "record_from_attributes", "record_from_log", "stage_otlp_file"]
