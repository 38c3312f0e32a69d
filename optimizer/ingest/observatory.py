"""Extraction of request records from the Observatory's log search into staging files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from optimizer.clients.observatory import ObservatoryClient
from optimizer.ingest.mapping import record_from_log
from optimizer.ingest.staging import StagingWriter
from optimizer.ingest.windows import Window

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedWindow:
    window: Window
    path: Path
    rows: int
    pages: int


def extract_window(
    client: ObservatoryClient,
    window: Window,
    staging_dir: Path,
    *,
    page_size: int = 5000,
    progress: Callable[[str], None] | None = None,
) -> StagedWindow:
    """Page through every log record of `window` into one staging file.

    The file appears only when the window is complete: a failure part-way leaves nothing
    for the load step to mistake for a whole window.
    """
    path = staging_dir / f"requests-{window.label}.parquet"
    pages = 0
    with StagingWriter(path) as writer:
        for page in client.search_logs(window.start, window.end, page_size=page_size):
            writer.write(record_from_log(log) for log in page.logs)
            pages += 1
            if progress and page.total:
                progress(f"window {window.label}: {writer.rows_written}/{page.total} records")
    return StagedWindow(window=window, path=path, rows=writer.rows_written, pages=pages)
