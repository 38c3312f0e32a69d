"""Extraction of request records from the Observatory's log search into staging files."""

from __future__ import annotations

import gc
import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
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


def prefetched(items: Iterator[Item], depth: int = 2) -> Generator[Item, None, None]:
    """The same items, produced on a background thread up to `depth` ahead: the next page is
    on its way while this one is mapped and written. An error in the producer is re-raised.

    Close it (`contextlib.closing`) when the consumer may stop early: the producer then
    stops too and closes `items`, instead of waiting forever on a full queue.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:
            offer(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    threading.Thread(target=produce, daemon=True, name="prefetch").start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()


_PAUSE_LOCK = threading.Lock()
_pauses = 0
_resume = False


@contextmanager
def collector_paused() -> Generator[None, None, None]:
    """Python's cyclic garbage collector held off while pages are parsed, mapped and staged.

    A page parses to tens of thousands of fresh dicts; they set off collections that walk
    the whole heap (a fifth of the client's time per page, measured) and find no cycle to
    free: a page's objects go by reference counting as always. Windows extracted side by
    side share one pause, and the collector resumes (if it was on) when the last one ends.
    """
    global _pauses, _resume
    with _PAUSE_LOCK:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()


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
    with collector_paused(), StagingWriter(path) as writer, closing(prefetched(
        client.search_logs(window.start, window.end, page_size=page_size)
    )) as log_pages:
        for page in log_pages:
            writer.write_columns(columns_from_logs(page.logs))
            pages += 1
            if progress and page.total:
                progress(f"window {window.label}: {writer.rows_written}/{page.total} records")
    return StagedWindow(window=window, path=path, rows=writer.rows_written, pages=pages)
