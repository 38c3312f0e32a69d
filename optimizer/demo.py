"""`auto-optimizer demo`: the nightly optimization against a bundled sandbox, no setup needed."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from optimizer import embedded_prefect
from optimizer.ingest.windows import floor_to
from optimizer.report import NightlySummary
from optimizer.sandbox import SandboxConfig, SandboxServer
from optimizer.sandbox.traffic import MAX_LATE_S
from optimizer.settings import SANDBOX_DEFAULT_TOKEN, Settings, sandbox_environment


@contextmanager
def environment(overrides: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block (tasks read settings from it)."""
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def demo_environment(sandbox_url: str, workdir: Path, api_style: str = "spec") -> dict[str, str]:
    variables = sandbox_environment(sandbox_url)
    variables |= {
        "AUTO_OPTIMIZER_TELEMETRY_FILE": str(workdir / "telemetry" / "spans.jsonl"),
        "AUTO_OPTIMIZER_API_TOKEN": SANDBOX_DEFAULT_TOKEN,
        "AUTO_OPTIMIZER_WAREHOUSE": str(workdir / "warehouse.duckdb"),
        "AUTO_OPTIMIZER_STAGING_DIR": str(workdir / "staging"),
        "AUTO_OPTIMIZER_REPORTS_DIR": str(workdir / "reports"),
    }
    variables |= {f"AUTO_OPTIMIZER_{service}_API_STYLE": api_style for service in ("OBSERVATORY", "POLICY", "SENTINEL")}
    return variables


def run_demo(
    *,
    workdir: Path | None = None,
    seed: int = 42,
    requests_per_day: int = 12_000,
    backfill_days: int = 7,
    api_style: Literal["spec", "upstream"] = "spec",
) -> NightlySummary:
    """Start a sandbox on a free loopback port and run the nightly flow against it, both
    speaking the specification's APIs or the upstream services' (`api_style`).

    The sandbox's clock stands at least as late as today 00:00 UTC plus the longest
    delivery delay, so yesterday is complete and a second run the same day finds the same
    window with nothing new in it. Its warehouse and reports go to `workdir`, by default
    `demo/` in the data folder (`AUTO_OPTIMIZER_DATA_DIR`).
    """
    workdir = (workdir or Settings().data_dir / "demo").resolve()
    embedded_prefect.prepare()  # before Prefect is imported: it reads its settings then
    from flows.nightly import nightly_optimization

    now = datetime.now(UTC)
    window_end = floor_to(now, timedelta(days=1))
    settled = max(now, window_end + timedelta(seconds=MAX_LATE_S + 60))
    config = SandboxConfig(seed=seed, requests_per_day=requests_per_day, now=settled, anchor=window_end.date(),
                           api_style=api_style)
    with SandboxServer(config) as sandbox, environment(demo_environment(sandbox.url, workdir, api_style)):
        return nightly_optimization(window_end=window_end, backfill_days=backfill_days)
