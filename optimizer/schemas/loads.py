"""A load: what one warehouse transaction commits, and what it did."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from optimizer.schemas.governance import CostSummary
from optimizer.schemas.records import DEFAULT_BOUNDS, RecordBounds
from optimizer.schemas.registry import ModelProfile, StoredExperiment


@dataclass(frozen=True)
class Window:
    """A span of time extracted and loaded as one piece, [start, end)."""

    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return f"{self.start:%Y%m%dT%H%M}-{self.end:%Y%m%dT%H%M}"


@dataclass(frozen=True)
class LoadBatch:
    """Everything one load commits together.

    `request_files` are Parquet files (or staging folders of part files) whose columns carry
    request-record names, of any type: values are cast and checked on load. `window` is the
    time span the files cover; its end becomes the source's watermark when the load commits.
    `bounds` are the plausible timestamps and text lengths a request row must keep.
    """

    source: str
    request_files: Sequence[Path] = ()
    models: Sequence[ModelProfile] = ()
    cost_summaries: Mapping[date, CostSummary] = field(default_factory=dict)
    experiments: Sequence[StoredExperiment] = ()
    window: tuple[datetime, datetime] | None = None
    bounds: RecordBounds = DEFAULT_BOUNDS


@dataclass(frozen=True)
class LoadResult:
    """What a committed load did; the `_total` counts are the warehouse's after it."""

    load_id: str
    source: str
    rows_in: int
    loaded: int
    duplicates: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    models: int
    cost_days: int
    experiments: int
    requests_total: int
    quarantined_total: int


class IngestSummary(BaseModel):
    """What `auto-optimizer ingest` did (docs/cli.md)."""

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

    @classmethod
    def of(cls, source: str, files: int, result: LoadResult, **extra: int) -> IngestSummary:
        return cls(source=source, files=files, rows_in=result.rows_in, loaded=result.loaded,
                   duplicates_skipped=result.duplicates, quarantined=result.quarantined,
                   quarantine_reasons=result.quarantine_reasons, requests_total=result.requests_total, **extra)
