"""The nightly flow under a real Prefect API, against the sandbox, into a real DuckDB file."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from prefect.client.orchestration import get_client
from pydantic import SecretStr

from flows.nightly import nightly_optimization
from optimizer.errors import AuthenticationError
from optimizer.pipeline.runtime import configured
from optimizer.sandbox import FaultSettings, SandboxServer
from optimizer.settings import Settings
from tests.conftest import DAY_END, SANDBOX_NOW

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]


def served(sandbox: SandboxServer, days: int) -> tuple[int, int]:
    """(valid, malformed) records the Observatory serves for the last `days` days."""
    frame = sandbox.state.visible_requests(DAY_END - timedelta(days=days), DAY_END)
    malformed = int((frame["malformed"] >= 0).sum())
    return len(frame) - malformed, malformed


def stored_requests(warehouse: Path) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        return int(db.execute("SELECT count(*) FROM requests").fetchone()[0])  # type: ignore[index]


def test_nightly_run_loads_every_served_record(sandbox: SandboxServer, platform_settings: Settings) -> None:
    valid, malformed = served(sandbox, 2)
    summary = nightly_optimization(window_end=DAY_END, backfill_days=2)
    assert (summary.requests_loaded, summary.quarantined) == (valid, malformed)
    assert summary.requests_total == valid and malformed > 0
    assert sum(summary.quarantine_reasons.values()) >= malformed
    assert (summary.models, summary.cost_days, summary.experiments, summary.windows) == (5, 14, 2, 2)
    assert Path(summary.report).is_file() and "LLM optimization report" in Path(summary.report).read_text()
    assert Path(summary.report_markdown).is_file()
    assert stored_requests(platform_settings.warehouse) == valid
    assert not any(platform_settings.staging_dir.glob("run-*/*.parquet"))

    async def artifact_markdown() -> str:
        async with get_client() as client:
            artifact = await client.read_latest_artifacts()
            return next(a.data for a in artifact if a.key == "nightly-optimization")

    assert f"{valid:,}" in asyncio.run(artifact_markdown())


def test_rerun_over_the_same_window_adds_nothing(sandbox: SandboxServer, platform_settings: Settings) -> None:
    # What a run killed yesterday left behind, and what a run still going writes.
    killed, running = platform_settings.staging_dir / "run-killed", platform_settings.staging_dir / "run-running"
    for folder in (killed, running):
        (folder / "window").mkdir(parents=True)
        (folder / "window" / "part-0.parquet").write_bytes(b"PAR1")
    yesterday = time.time() - 26 * 3600
    for path in (killed, killed / "window", killed / "window" / "part-0.parquet"):
        os.utime(path, (yesterday, yesterday))
    first = nightly_optimization(window_end=DAY_END, backfill_days=1)
    assert sorted(p.name for p in platform_settings.staging_dir.iterdir()) == ["run-running"]
    # A day of the analysis period whose spend the warehouse lost is asked for again.
    lost = (DAY_END - timedelta(days=5)).date()
    with duckdb.connect(str(platform_settings.warehouse)) as db:
        db.execute("DELETE FROM cost_summaries WHERE day = ?", [lost])
    second = nightly_optimization(window_end=DAY_END, backfill_days=1)
    assert first.requests_loaded > 0
    assert (second.requests_loaded, second.quarantined) == (0, 0)
    assert second.duplicates_skipped > 0 and second.windows == 1
    # the first run asks for the whole analysis period's spend; the second for the look-back's
    # day and the lost one only
    assert (first.cost_days, second.cost_days) == (14, 2)
    with duckdb.connect(str(platform_settings.warehouse), read_only=True) as db:
        days = db.execute("SELECT count(DISTINCT day) FROM cost_summaries WHERE day = ?", [lost]).fetchone()
    assert days == (1,)
    assert second.requests_total == first.requests_total == stored_requests(platform_settings.warehouse)


def test_late_records_are_caught_by_the_lookback(sandbox: SandboxServer, platform_settings: Settings) -> None:
    sandbox.state.set_now(DAY_END + timedelta(minutes=5))
    early = nightly_optimization(window_end=DAY_END, backfill_days=1)
    sandbox.state.set_now(SANDBOX_NOW)
    late_valid, _ = served(sandbox, 1)
    assert early.requests_loaded < late_valid
    later = nightly_optimization(window_end=DAY_END, backfill_days=1, lookback_hours=24)
    assert early.requests_loaded + later.requests_loaded == late_valid
    assert stored_requests(platform_settings.warehouse) == late_valid


def test_rate_limits_and_server_errors_do_not_change_the_result(sandbox: SandboxServer, platform_settings: Settings) -> None:
    valid, malformed = served(sandbox, 1)
    sandbox.state.faults.configure(FaultSettings(
        rate_limit_share=0.2, server_error_share=0.1, retry_after_seconds=0, seed=3))
    summary = nightly_optimization(window_end=DAY_END, backfill_days=1)
    assert (summary.requests_loaded, summary.quarantined) == (valid, malformed)
    injected = sandbox.state.faults.served
    assert injected[429] > 0 and injected[500] + injected[502] + injected[503] > 0


def test_refused_extraction_leaves_the_warehouse_untouched(
    sandbox: SandboxServer, platform_settings: Settings
) -> None:
    with configured(platform_settings.model_copy(update={"api_token": SecretStr("revoked-token")})):
        state = nightly_optimization(window_end=DAY_END, backfill_days=1, return_state=True)
    assert state.is_failed()
    with pytest.raises(AuthenticationError):
        state.result()
    if platform_settings.warehouse.exists():
        assert stored_requests(platform_settings.warehouse) == 0


REASON_OF_KIND = {
    "missing_model": "model is missing",
    "negative_tokens": "prompt_tokens is below 0",
    "quality_out_of_range": "quality_score is above 1",
    "unknown_status": "status is not one of ok, error",
    "non_numeric_cost": "cost_usd is not a valid number",
    "bad_timestamp": "ts is not a valid timestamp",
    "missing_request_id": "request_id is missing",
    "non_numeric_latency": "latency_ms is not a valid number",
}


def test_each_kind_of_malformed_record_is_quarantined_with_its_reason(platform_settings: Settings) -> None:
    from optimizer.sandbox.traffic import MALFORMED_KINDS
    from tests.conftest import sandbox_config

    with SandboxServer(sandbox_config(malformed_share=0.05)) as noisy, \
            configured(platform_settings.model_copy(update={"observatory_url": f"{noisy.url}/observatory/api/v1"})):
        frame = noisy.state.visible_requests(DAY_END - timedelta(days=1), DAY_END)
        summary = nightly_optimization(window_end=DAY_END, backfill_days=1)
    kinds = frame.loc[frame["malformed"] >= 0, "malformed"].map(lambda k: MALFORMED_KINDS[k]).value_counts()
    assert set(kinds.index) == set(REASON_OF_KIND)
    for kind, count in kinds.items():
        assert summary.quarantine_reasons[REASON_OF_KIND[str(kind)]] == count, kind
    assert summary.quarantined == int(kinds.sum())
    assert summary.requests_loaded == len(frame) - summary.quarantined
