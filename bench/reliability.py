"""Kill drills: what the warehouse holds after loads are killed with SIGKILL mid-way, and
what a rerun then loads. The figures of docs/reliability.md come from here.

`python -m bench.reliability --rows 5000000 --kills 10` is the drill of the docs; it takes a
few minutes. Each kill lands at a random moment of a load (seeded), and after each the
warehouse must hold either nothing of the batch or all of it; the last run loads the rest,
and one more run loads nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from bench.data import dataset


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(load_kills(args.rows, args.kills, args.seed), indent=2))


if __name__ == "__main__":
    main()
