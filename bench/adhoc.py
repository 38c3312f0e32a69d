"""The ad-hoc commands as an analyst runs them: `auto-optimizer analyze ...` on one Parquet file,
against a plain pandas + scipy script doing the same analysis on the same file, each as a whole
cold process (interpreter start, imports, reading, checking, statistics, exit), and how long
`auto-optimizer --help` takes to start.

Rounds alternate ours and pandas, so load on a shared machine falls on both; the figure is the
median of the rounds, and the load average is recorded beside it. CPU time is recorded too: on
a busy machine our two DuckDB threads get less than two cores, while the pandas script uses one
whatever the load, so the wall-time ratio falls with the load and the CPU-time ratio much less.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Our command, and the baseline's name for the same analysis.
COMMANDS = {"cascade": "cascade", "compression": "compression", "experiment": "experiments"}
HELP_ROUNDS = 5


def cold(*args: str) -> tuple[float, float]:
    """Wall time and CPU time (user and system, all threads) of `python -m <args>`, start to
    exit; its output is read and dropped."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: `python -m {' '.join(args)}` failed")
    return wall, usage.ru_utime + usage.ru_stime


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def compare(data: Path, rounds: int) -> dict[str, Any]:
    """Per analysis: our and pandas' median cold time over `rounds`, and their ratio."""
    found: dict[str, Any] = {"data": data.name, "rounds": rounds, "analyses": {}}
    for command, baseline in COMMANDS.items():
        ours: list[tuple[float, float]] = []
        pandas: list[tuple[float, float]] = []
        loads = [_load()]
        for _ in range(rounds):
            ours.append(cold("deployments.cli", "analyze", command, "--input", str(data), "--json"))
            pandas.append(cold("bench.baseline", "--data", str(data), "--only", baseline))
            loads.append(_load())
        ours_s, pandas_s = statistics.median(w for w, _ in ours), statistics.median(w for w, _ in pandas)
        ours_cpu, pandas_cpu = statistics.median(c for _, c in ours), statistics.median(c for _, c in pandas)
        found["analyses"][command] = {
            "ours_s": ours_s, "pandas_s": pandas_s, "ratio": pandas_s / ours_s,
            "ours_cpu_s": ours_cpu, "pandas_cpu_s": pandas_cpu, "cpu_ratio": pandas_cpu / ours_cpu,
            "ours_rounds_s": [w for w, _ in ours], "pandas_rounds_s": [w for w, _ in pandas], "load_average": loads,
        }
    return found


def help_start(rounds: int = HELP_ROUNDS) -> dict[str, Any]:
    """`auto-optimizer --help`, start to exit: the median of `rounds`."""
    times = [cold("deployments.cli", "--help")[0] for _ in range(rounds)]
    return {"median_s": statistics.median(times), "rounds_s": times, "load_average": _load()}


def markdown(adhoc: dict[str, Any], rows: int) -> list[str]:
    lines = ["", f"Ad-hoc `analyze` on {rows:,} rows (`{adhoc['data']}`), whole cold processes, median of "
             f"{adhoc['rounds']} alternating rounds:", "",
             "| command | ours (s) | pandas + scipy (s) | pandas / ours | CPU: ours / pandas (s) | pandas / ours "
             "| load average |", "|---|---:|---:|---:|---:|---:|---|"]
    for command, found in adhoc["analyses"].items():
        loads = ", ".join(f"{value:g}" for value in found["load_average"])
        lines.append(f"| analyze {command} | {found['ours_s']:.2f} | {found['pandas_s']:.2f} | "
                     f"**{found['ratio']:.1f}x** | {found['ours_cpu_s']:.2f} / {found['pandas_cpu_s']:.2f} | "
                     f"{found['cpu_ratio']:.1f}x | {loads} |")
    return lines
