"""A sandbox in its own process, so the server's work does not share the client's interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from optimizer.settings import SANDBOX_DEFAULT_TOKEN, sandbox_environment

SANDBOX_NOW = "2026-11-25T11:00:00Z"


def start_sandbox(port: int, requests_per_day: int) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).with_name("auto-optimizer")), "sandbox", "serve", "--port", str(port),
               "--requests-per-day", str(requests_per_day), "--now", SANDBOX_NOW]
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


def point_at(port: int, folder: Path) -> None:
    """Aim the optimizer's settings at the sandbox, with a warehouse of this run's own."""
    os.environ |= sandbox_environment(f"http://127.0.0.1:{port}")
    os.environ |= {
        "AUTO_OPTIMIZER_API_TOKEN": SANDBOX_DEFAULT_TOKEN,
        "AUTO_OPTIMIZER_WAREHOUSE": str(folder / "w.duckdb"), "AUTO_OPTIMIZER_STAGING_DIR": str(folder / "staging"),
        "AUTO_OPTIMIZER_REPORTS_DIR": str(folder / "reports"),
    }
