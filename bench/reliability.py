"""Kill drills, whose figures are those of docs/reliability.md.

`python -m bench.reliability loads --rows 5000000 --kills 10`: loads killed with SIGKILL at a
random moment (seeded); after each the warehouse must hold nothing of the batch or all of
it, the last run loads the rest, and one more run loads nothing.

`python -m bench.reliability receiver --events 300 --kills 2`: events sent, as a platform
sends them (again until answered), to `auto-optimizer webhook serve` on a Prefect server of
its own, while the receiver is killed with SIGKILL and started again; then how many were
acknowledged, lost (acknowledged but not kept, or without a run) and duplicated (more than
one run for an event).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import duckdb
import httpx

from bench.data import dataset
from bench.receiver import (
    ALERT,
    BIN,
    free_port,
    isolated_environment,
    register_deployments,
    unstarted,
)
from optimizer.errors import ServiceStartError
from optimizer.processes import ChildProcesses, wait_until_answers


def _ingest(data: Path, warehouse: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "deployments.cli", "ingest", "parquet", str(data), "--warehouse", str(warehouse),
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _stored(warehouse: Path) -> tuple[int, int]:
    """(rows, distinct request ids) the warehouse holds; (0, 0) before its first commit."""
    if not warehouse.exists():
        return 0, 0
    with duckdb.connect(str(warehouse), read_only=True) as db:
        tables = {t for (t,) in db.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "requests" not in tables:
            return 0, 0
        rows, distinct = db.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() or (0, 0)
    return int(rows), int(distinct)


def load_kills(rows: int, kills: int, seed: int) -> dict[str, Any]:
    data = dataset(rows)
    randomness = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="kill-drill-") as scratch:
        warehouse = Path(scratch) / "w.duckdb"
        started = time.perf_counter()
        clean = _ingest(data, Path(scratch) / "timing.duckdb")
        clean.communicate()
        duration = time.perf_counter() - started
        partial_states = []
        killed_mid_load = 0
        for _ in range(kills):
            process = _ingest(data, warehouse)
            time.sleep(randomness.uniform(0.05, 0.95) * duration)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed_mid_load += 1
            process.wait()
            partial_states.append(_stored(warehouse))
        completed = json.loads(_ingest(data, warehouse).communicate()[0])
        again = json.loads(_ingest(data, warehouse).communicate()[0])
        held = _stored(warehouse)
    expected = completed["requests_total"]
    return {
        "rows": expected, "kills": kills, "killed_mid_load": killed_mid_load, "clean_load_s": round(duration, 1),
        "states_after_kills": sorted({rows for rows, _ in partial_states}),
        "partial_batches": sum(1 for rows, _ in partial_states if rows not in (0, expected)),
        "completing_run_loaded": completed["loaded"], "rerun_loaded": again["loaded"], "final_rows": held[0], "final_distinct_ids": held[1],
    }


def _receiver(env: dict[str, str], port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """`webhook serve`, outside ChildProcesses: the drill kills and restarts it itself."""
    process = subprocess.Popen([str(BIN / "auto-optimizer"), "webhook", "serve", "--no-auth", "--port", str(port)],
                               env=env, stdout=log, stderr=log)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/health", 120, process=process, name="webhook receiver")
    except ServiceStartError:
        process.kill()
        raise
    return process


def receiver_kills(events: int, kills: int, senders: int, scratch: Path) -> dict[str, Any]:
    env, prefect_port, api = isolated_environment(scratch, {})
    port = free_port()
    acknowledged: set[str] = set()
    attempts = Counter[str]()
    lock = threading.Lock()

    def send(sender: int) -> None:
        with httpx.Client(timeout=30) as client:
            for n in range(sender, events, senders):
                event_id = f"drill-{n}"
                event = {"specversion": "1.0", "id": event_id, "source": "/bench/sentinel",
                         "type": "io.llm-platform.sentinel.alert", "datacontenttype": "application/json",
                         "data": ALERT}
                while True:  # at least once, as the platform sends
                    with lock:
                        attempts[event_id] += 1
                    try:
                        reply = client.post(f"http://127.0.0.1:{port}/events", content=json.dumps(event),
                                            headers={"Content-Type": "application/cloudevents+json"})
                    except httpx.HTTPError:
                        time.sleep(0.2)
                        continue
                    if reply.status_code in (200, 202):
                        with lock:
                            acknowledged.add(event_id)
                        break
                    time.sleep(0.2)
                time.sleep(0.02)

    with ChildProcesses(env) as children, (scratch / "services.log").open("wb") as log:
        children.start("Prefect server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                          "--port", str(prefect_port)],
                       ready_url=f"{api}/health", ready_timeout_s=180, output=log)
        register_deployments(api)
        receiver = _receiver(env, port, log)
        try:
            pool = ThreadPoolExecutor(max_workers=senders)
            sending = [pool.submit(send, sender) for sender in range(senders)]
            killed = 0
            for kill in range(1, kills + 1):
                while len(acknowledged) < events * kill // (kills + 1):
                    time.sleep(0.05)
                receiver.send_signal(signal.SIGKILL)
                receiver.wait()
                killed += 1
                receiver = _receiver(env, port, log)
            for future in sending:
                future.result()
            pool.shutdown()
            inbox = scratch / "data" / "webhook" / "inbox.sqlite"
            deadline = time.monotonic() + 900
            while unstarted(inbox) and time.monotonic() < deadline:
                time.sleep(0.5)
            with sqlite3.connect(inbox) as db:
                kept = {row[0] for row in db.execute("SELECT id FROM inbox WHERE flow_run_id IS NOT NULL")}
            runs = httpx.post(f"{api}/flow_runs/count", json={}, timeout=30).json()
        finally:
            receiver.kill()
            receiver.wait()
    return {
        "events": events, "sent": sum(attempts.values()), "resent": sum(attempts.values()) - events,
        "receiver_kills": killed, "acknowledged": len(acknowledged), "lost": len(acknowledged - kept),
        "flow_runs": runs, "duplicated": runs - len(kept),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    drills = parser.add_subparsers(dest="drill", required=True)
    loads = drills.add_parser("loads")
    loads.add_argument("--rows", type=int, default=5_000_000)
    loads.add_argument("--kills", type=int, default=10)
    loads.add_argument("--seed", type=int, default=7)
    receiver = drills.add_parser("receiver")
    receiver.add_argument("--events", type=int, default=300)
    receiver.add_argument("--kills", type=int, default=2)
    receiver.add_argument("--senders", type=int, default=10)
    args = parser.parse_args()
    if args.drill == "loads":
        result = load_kills(args.rows, args.kills, args.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="receiver-drill-") as scratch:
            result = receiver_kills(args.events, args.kills, args.senders, Path(scratch))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
