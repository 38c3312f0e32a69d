"""Extraction over HTTP: Observatory log search pages from a sandbox in another process, mapped
to request records and staged as Parquet, as the nightly flow does it.

Two figures: one day-window extracted alone (pages follow a cursor, so one window is a
sequence), and a week of day-windows extracted side by side as the flow's tasks run.
`python -m bench.extraction` prints one JSON object.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.sandbox import sandbox_settings, start_sandbox
from optimizer.ingest.windows import Window
from optimizer.pipeline.ingest import extract_requests
from optimizer.pipeline.runtime import Runtime
from optimizer.settings import Settings

PORT = 8792
REQUESTS_PER_DAY = 100_000
DAYS = 7
PAGE_SIZE = 10_000
LAST_DAY = datetime(2026, 11, 25, tzinfo=UTC)


def day_windows(days: int) -> list[Window]:
    return [Window(LAST_DAY - timedelta(days=n), LAST_DAY - timedelta(days=n - 1)) for n in range(days, 0, -1)]


def extract(settings: Settings, windows: list[Window], staging: Path, workers: int) -> dict[str, float]:
    """The nightly run's extraction step, one window per worker thread."""
    runtime = Runtime(settings.model_copy(update={"page_size": PAGE_SIZE}))
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        staged = list(pool.map(lambda w: extract_requests(runtime, w, staging), windows))
    seconds = time.perf_counter() - started
    rows = sum(s.rows for s in staged)
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def main() -> None:
    sandbox = start_sandbox(PORT, REQUESTS_PER_DAY)
    folder = Path(tempfile.mkdtemp(prefix="bench-extraction-"))
    result: dict[str, Any] = {"requests_per_day": REQUESTS_PER_DAY, "page_size": PAGE_SIZE}
    try:
        settings = sandbox_settings(PORT, folder)
        windows = day_windows(DAYS)
        extract(settings, windows[:1], folder / "warmup", 1)  # the sandbox builds each day's traffic on first read
        extract(settings, windows[1:], folder / "warmup", len(windows))
        result["one_window"] = extract(settings, windows[:1], folder / "one", 1)
        result["week_parallel"] = extract(settings, windows, folder / "week", len(windows))
    finally:
        sandbox.terminate()
        shutil.rmtree(folder, ignore_errors=True)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
