"""`make serve`: everything on one machine, for a person who wants the UI.

Starts a Prefect server (UI on http://127.0.0.1:4200), the platform sandbox (unless the
platform is configured elsewhere), the webhook receiver on :8710 and the deployments, and
stops them all on Ctrl-C. `--check` starts everything, checks each answers, and stops.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from optimizer.settings import DATA_DIR, SANDBOX_DEFAULT_PORT

PREFECT_PORT = 4200
WEBHOOK_PORT = 8710


def _wait_for(url: str, timeout_s: float, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")


def _deployments_served(api: str, expected: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()
        if len(found) >= expected:
            print("serving: " + ", ".join(sorted(d["name"] for d in found)), flush=True)
            return True
        time.sleep(1)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="start everything, check it answers, stop")
    args = parser.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    api = f"http://127.0.0.1:{PREFECT_PORT}/api"
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(DATA_DIR / "prefect")),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "AUTO_OPTIMIZER_APPROVERS": os.environ.get("AUTO_OPTIMIZER_APPROVERS", os.environ.get("USER", "admin")),
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(*command: str) -> None:
        processes.append(subprocess.Popen(list(command), env=env))

    try:
        start(str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(PREFECT_PORT))
        _wait_for(f"{api}/health", 120)
        if "AUTO_OPTIMIZER_OBSERVATORY_URL" not in os.environ:
            start(str(bin_dir / "auto-optimizer"), "sandbox", "serve", "--port", str(SANDBOX_DEFAULT_PORT))
            _wait_for(f"http://127.0.0.1:{SANDBOX_DEFAULT_PORT}/_sandbox/health", 60)
        receiver = [str(bin_dir / "auto-optimizer"), "webhook", "serve", "--port", str(WEBHOOK_PORT)]
        start(*receiver, *([] if os.environ.get("AUTO_OPTIMIZER_WEBHOOK_TOKEN") else ["--no-auth"]))
        _wait_for(f"http://127.0.0.1:{WEBHOOK_PORT}/health", 60)
        start(sys.executable, "-m", "deployments.serve")
        print(
            f"Prefect UI: http://127.0.0.1:{PREFECT_PORT} (approve rollouts under Flow Runs, state Paused)\n"
            f"Webhook receiver: http://127.0.0.1:{WEBHOOK_PORT}/events\n"
            f"Approvers: {env['AUTO_OPTIMIZER_APPROVERS']}\n"
            "Run the nightly optimization now: prefect deployment run nightly-optimization/nightly",
            flush=True,
        )
        if args.check:
            return 0 if _deployments_served(api, 4, timeout_s=60) and all(p.poll() is None for p in processes) else 1
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    raise SystemExit(main())
