"""The webhook receiver under a burst: events from many concurrent senders to `auto-optimizer
webhook serve`, on a local `prefect server start` with the project's embedded settings (as
`make serve` runs it, on a database of its own); how long until every event is answered, and
until every one has its flow run.

`python -m bench.receiver` (1,000 events from 50 senders) prints one JSON object. Runs are
created, not executed: no deployment runner is started, so the figure is the receiver's and
the Prefect API's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from optimizer import embedded_prefect
from optimizer.processes import ChildProcesses
from optimizer.webhook.routes import ANOMALY_RESPONSE

BIN = Path(sys.executable).parent
# The checkout this benchmark is in: its receiver is the one measured, whichever copy of the
# project the environment has installed.
CHECKOUT = Path(__file__).resolve().parents[1]
ALERT = {"alert_id": "bench-alert", "severity": "high", "category": "performance", "alert_type": "latency_anomaly"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def send_all(url: str, events: int, senders: int) -> Counter[int]:
    """`events` structured-mode alerts, split among `senders` threads; the answers' statuses."""

    def send(sender: int) -> list[int]:
        statuses = []
        with httpx.Client(timeout=120) as client:
            for n in range(sender, events, senders):
                event = {"specversion": "1.0", "id": f"bench-{n}", "source": "/bench/sentinel",
                         "type": "io.llm-platform.sentinel.alert", "datacontenttype": "application/json",
                         "data": ALERT}
                reply = client.post(url, content=json.dumps(event),
                                    headers={"Content-Type": "application/cloudevents+json"})
                statuses.append(reply.status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=senders) as pool:
        return Counter(status for batch in pool.map(send, range(senders)) for status in batch)


def unstarted(inbox: Path) -> int:
    with sqlite3.connect(inbox) as db:
        (count,) = db.execute("SELECT count(*) FROM inbox WHERE flow_run_id IS NULL").fetchone()
    return int(count)


def register_deployments(api: str) -> None:
    """The response deployments, on the benchmark's Prefect server (Prefect reads its API URL
    when first imported, so only now)."""
    os.environ["PREFECT_API_URL"] = api
    from deployments.runner import deployment
    from flows.respond import anomaly_response

    deployment(anomaly_response, name=ANOMALY_RESPONSE.split("/")[1]).apply()


def isolated_environment(scratch: Path, settings: dict[str, str]) -> tuple[dict[str, str], int, str]:
    """(environment, port, API URL) of a Prefect server and a receiver of their own under
    `scratch`, its database migrated, Prefect's settings those `make serve` gives its server
    unless `settings` say otherwise; nothing of the caller's settings or Prefect carried in."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("AUTO_OPTIMIZER_", "PREFECT_"))}
    env |= {"PREFECT_HOME": str(scratch / "prefect"), "AUTO_OPTIMIZER_DATA_DIR": str(scratch / "data"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), env.get("PYTHONPATH")])), **settings}
    embedded_prefect.prepare(env)
    prefect_port = free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    env["PREFECT_API_URL"] = api
    return env, prefect_port, api


def measure(events: int, senders: int, scratch: Path, timeout_s: float, settings: dict[str, str]) -> dict[str, Any]:
    """`settings`: environment variables for the server and the receiver (Prefect's server
    settings, AUTO_OPTIMIZER_WEBHOOK_START_CONCURRENCY, ...)."""
    env, prefect_port, api = isolated_environment(scratch, settings)
    receiver_port = free_port()
    receiver = f"http://127.0.0.1:{receiver_port}"
    with ChildProcesses(env) as children, (scratch / "services.log").open("wb") as log:
        children.start("Prefect server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                          "--port", str(prefect_port)],
                       ready_url=f"{api}/health", ready_timeout_s=180, output=log)
        register_deployments(api)
        children.start("webhook receiver", [str(BIN / "auto-optimizer"), "webhook", "serve", "--no-auth",
                                            "--port", str(receiver_port)], ready_url=f"{receiver}/health", output=log)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        statuses = send_all(f"{receiver}/events", events, senders)
        answered_s = time.perf_counter() - started
        inbox = scratch / "data" / "webhook" / "inbox.sqlite"
        while (left := unstarted(inbox)) and time.perf_counter() - started < timeout_s:
            time.sleep(0.2)
        all_runs_s = time.perf_counter() - started
        load_after = os.getloadavg()[0]
        runs = httpx.post(f"{api}/flow_runs/count", json={}, timeout=30).json()
    retried = (scratch / "services.log").read_text(errors="replace").count("could not start")
    return {"events": events, "senders": senders, "statuses": dict(statuses), "answered_s": round(answered_s, 1),
            "all_runs_s": round(all_runs_s, 1) if not left else None, "without_run": left, "flow_runs": runs,
            "failed_starts": retried, "settings": settings,
            # The machine's other work: 1-minute load averages as the burst began and ended.
            "load_average": [round(load_before, 1), round(load_after, 1)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=1200, help="seconds to wait for every run")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the Prefect server and the receiver (repeatable)")
    args = parser.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as scratch:
        result = measure(args.events, args.senders, Path(scratch), args.timeout, settings)
    print(json.dumps(result))
    return 0 if result["without_run"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
