"""`auto-optimizer demo`: the nightly optimization against a bundled sandbox, no setup needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from optimizer import embedded_prefect
from optimizer.ingest.windows import floor_to
from optimizer.pipeline.runtime import configured
from optimizer.report import NightlySummary
from optimizer.sandbox import SandboxConfig, SandboxServer
from optimizer.sandbox.traffic import MAX_LATE_S
from optimizer.settings import SANDBOX_DEFAULT_TOKEN, Settings, sandbox_endpoints


def demo_settings(base: Settings, sandbox_url: str, workdir: Path, api_style: Literal["spec", "upstream"]) -> Settings:
    """`base` pointed at a sandbox served at `sandbox_url`, every local file under `workdir`."""
    return base.model_copy(update=sandbox_endpoints(sandbox_url) | {
        "api_token": SecretStr(SANDBOX_DEFAULT_TOKEN),
        "telemetry_file": workdir / "telemetry" / "spans.jsonl",
        "warehouse": workdir / "warehouse.duckdb",
        "staging_dir": workdir / "staging",
        "reports_dir": workdir / "reports",
    } | {f"{service}_api_style": api_style for service in ("observatory", "policy", "sentinel")})


def run_demo(
    *,
    workdir: Path | None = None,
    seed: int = 42,
    requests_per_day: int = 12_000,
    backfill_days: int = 7,
    api_style: Literal["spec", "upstream"] = "spec",
    settings: Settings | None = None,
) -> NightlySummary:
    """Start a sandbox on a free loopback port and run the nightly flow against it, both
    speaking the specification's APIs or the upstream services' (`api_style`).

    The sandbox's clock stands at least as late as today 00:00 UTC plus the longest
    delivery delay, so yesterday is complete and a second run the same day finds the same
    window with nothing new in it. Its warehouse and reports go to `workdir`, by default
    `demo/` in the data folder (`AUTO_OPTIMIZER_DATA_DIR`).
    """
    base = settings or Settings()
    workdir = (workdir or base.data_dir / "demo").resolve()
    embedded_prefect.prepare()  # before Prefect is imported: it reads its settings then
    from flows.nightly import nightly_optimization

    now = datetime.now(UTC)
    window_end = floor_to(now, timedelta(days=1))
    settled = max(now, window_end + timedelta(seconds=MAX_LATE_S + 60))
    config = SandboxConfig(seed=seed, requests_per_day=requests_per_day, now=settled, anchor=window_end.date(),
                           api_style=api_style)
    with SandboxServer(config) as sandbox, configured(demo_settings(base, sandbox.url, workdir, api_style)):
        return nightly_optimization(window_end=window_end, backfill_days=backfill_days)
