"""Extraction of request records from the Observatory's log search into staging files."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from optimizer.clients.observatory import ObservatoryClient
from optimizer.ingest.mapping import columns_from_logs
from optimizer.ingest.staging import StagingWriter
from optimizer.ingest.windows import Window

logger = logging.getLogger(__name__)
Item = TypeVar("Item")
_DONE = object()


def prefetched(items: Iterator[Item], depth: int = 2) -> Iterator[Item]:
    """The same items, produced on a background thread up to `depth` ahead: the next page is
    on its way while this one is mapped and written. An error in the producer is re-raised."""
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)

    def produce() -> None:
        try:
            for item in items:
                ready.put(item)
            ready.put(_DONE)
        except BaseException as exc:
            ready.put(exc)

    threading.Thread(target=produce, daemon=True, name="prefetch").start()
    while True:
        item = ready.get()
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item  # type: ignore[misc]


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
    path = staging_dir / f"requests-{window.label}"
    pages = 0
    with StagingWriter(path) as writer:
        for page in prefetched(client.search_logs(window.start, window.end, page_size=page_size)):
            writer.write_columns(columns_from_logs(page.logs))
            pages += 1
            if progress and page.total:
                progress(f"window {window.label}: {writer.rows_written}/{page.total} records")
    return StagedWindow(window=window, path=path, rows=writer.rows_written, pages=pages)
