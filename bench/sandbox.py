"""A sandbox in its own process, so the server's work does not share the client's interpreter."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from optimizer.settings import SANDBOX_DEFAULT_TOKEN, Settings, sandbox_endpoints

SANDBOX_NOW = "2026-11-25T11:00:00Z"


def start_sandbox(port: int, requests_per_day: int, now: str = SANDBOX_NOW) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).with_name("auto-optimizer")), "sandbox", "serve", "--port", str(port),
               "--requests-per-day", str(requests_per_day), "--now", now]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the sandbox did not start")


def sandbox_settings(port: int, folder: Path) -> Settings:
    """The optimizer's settings aimed at the sandbox, with a warehouse of this run's own."""
    return Settings().model_copy(update=sandbox_endpoints(f"http://127.0.0.1:{port}") | {
        "api_token": SecretStr(SANDBOX_DEFAULT_TOKEN), "warehouse": folder / "w.duckdb",
        "staging_dir": folder / "staging", "reports_dir": folder / "reports",
    })
