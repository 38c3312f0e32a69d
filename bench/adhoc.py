"""The ad-hoc commands as an analyst runs them: `auto-optimizer analyze ...` on one Parquet file,
against a plain pandas + scipy script doing the same analysis on the same file, each as a whole
cold process (interpreter start, imports, reading, checking, statistics, exit), and how long
`auto-optimizer --help` takes to start.

Rounds alternate ours and pandas, so load on a shared machine falls on both; the figure is the
median of the rounds, and the load average is recorded beside it. CPU time is recorded too: on
a busy machine our two DuckDB threads get less than two cores, while the pandas script uses one
whatever the load, so the wall-time ratio falls with the load and the CPU-time ratio much less.

`python -m bench.adhoc --rows 5000000` runs this part alone; `--before DIR` adds a third
contender to every round, the same commands run from another checkout of the project (an
older commit, say), so a change is measured before and after in one sitting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

# Our command, and the baseline's name for the same analysis.
COMMANDS = {"cascade": "cascade", "compression": "compression", "experiment": "experiments"}
HELP_ROUNDS = 5


def cold(*args: str, cwd: Path | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user and system, all threads) of `python -m <args>` (or of
    `python -c pass` for no args), run in `cwd` (whose project it imports), start to exit;
    its output is read and dropped."""
    command = ["-m", *args] if args else ["-c", "pass"]
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, cwd=cwd)
    assert process.stdout is not None
    process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: `python {' '.join(command)}` failed")
    return wall, usage.ru_utime + usage.ru_stime


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def compare(data: Path, rounds: int, only: Collection[str] = COMMANDS, before: Path | None = None) -> dict[str, Any]:
    """Per analysis: our and pandas' median cold time over `rounds`, and their ratio; with
    `before`, the same for the commands run from that checkout, in the same rounds."""
    found: dict[str, Any] = {"data": data.name, "rounds": rounds, "analyses": {}}
    for command, baseline in COMMANDS.items():
        if command not in only:
            continue
        analyze = ("deployments.cli", "analyze", command, "--input", str(data.resolve()), "--json")
        ours: list[tuple[float, float]] = []
        earlier: list[tuple[float, float]] = []
        pandas: list[tuple[float, float]] = []
        loads = [_load()]
        for _ in range(rounds):
            ours.append(cold(*analyze))
            if before is not None:
                earlier.append(cold(*analyze, cwd=before))
            pandas.append(cold("bench.baseline", "--data", str(data), "--only", baseline))
            loads.append(_load())
        (ours_s, ours_cpu), (pandas_s, pandas_cpu) = _medians(ours), _medians(pandas)
        found["analyses"][command] = {
            "ours_s": ours_s, "pandas_s": pandas_s, "ratio": pandas_s / ours_s,
            "ours_cpu_s": ours_cpu, "pandas_cpu_s": pandas_cpu, "cpu_ratio": pandas_cpu / ours_cpu,
            "ours_rounds_s": [w for w, _ in ours], "pandas_rounds_s": [w for w, _ in pandas], "load_average": loads,
        }
        if earlier:
            before_s, before_cpu = _medians(earlier)
            found["analyses"][command] |= {"before_s": before_s, "before_cpu_s": before_cpu,
                                           "before_ratio": pandas_s / before_s, "before_cpu_ratio": pandas_cpu / before_cpu}
    return found


def help_start(rounds: int = HELP_ROUNDS, before: Path | None = None) -> dict[str, Any]:
    """`auto-optimizer --help`, start to exit: the median of `rounds`, beside the bare
    interpreter's start (`python -c pass`) in the same rounds (and `before`'s, when given)."""
    ours: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    earlier: list[tuple[float, float]] = []
    for _ in range(rounds):
        bare.append(cold())
        ours.append(cold("deployments.cli", "--help"))
        if before is not None:
            earlier.append(cold("deployments.cli", "--help", cwd=before))
    (median, cpu), (python_s, python_cpu) = _medians(ours), _medians(bare)
    found = {"median_s": median, "cpu_s": cpu, "rounds_s": [w for w, _ in ours], "python_s": python_s,
             "python_cpu_s": python_cpu, "load_average": _load()}
    if earlier:
        found["before_s"], found["before_cpu_s"] = _medians(earlier)
    return found


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
        if "before_s" in found:
            lines.append(f"| before: analyze {command} | {found['before_s']:.2f} | | {found['before_ratio']:.1f}x | "
                         f"{found['before_cpu_s']:.2f} | {found['before_cpu_ratio']:.1f}x | |")
    return lines


def help_markdown(found: dict[str, Any]) -> list[str]:
    line = (f"`auto-optimizer --help`: {found['median_s']:.2f} s ({found.get('cpu_s', 0):.2f} s CPU), median of "
            f"{len(found['rounds_s'])} cold starts; `python -c pass` {found.get('python_s', 0):.2f} s "
            f"({found.get('python_cpu_s', 0):.2f} s CPU)")
    if "before_s" in found:
        line += f"; before {found['before_s']:.2f} s ({found['before_cpu_s']:.2f} s CPU)"
    return ["", f"{line} (load average {found['load_average']:g})."]


def main() -> None:
    parser = argparse.ArgumentParser(
        description="The ad-hoc analyze commands against the pandas script, and auto-optimizer --help, as cold processes.")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--rows", type=int, help="rows of the generated file the commands read (e.g. 5000000)")
    data.add_argument("--data", type=Path, help="a Parquet file of request records to read instead")
    parser.add_argument("--rounds", type=int, default=3, help="cold runs of each contender (default %(default)s)")
    parser.add_argument("--only", default=",".join(COMMANDS),
                        help=f"comma-separated commands to time (default {','.join(COMMANDS)}); 'none' for none")
    parser.add_argument("--help-rounds", type=int, default=HELP_ROUNDS,
                        help="cold starts of `auto-optimizer --help` (default %(default)s; 0 for none)")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="another checkout of the project whose commands run in the same rounds")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip() and name.strip() != "none"}
    if unknown := only - set(COMMANDS):
        parser.error(f"--only knows {', '.join(COMMANDS)}, not {', '.join(sorted(unknown))}")
    if args.before is not None and not (args.before / "deployments" / "cli.py").is_file():
        parser.error(f"--before: {args.before} is not a checkout of this project")
    if args.data is None:
        from bench.data import dataset  # imports pyarrow and the sandbox: only when a file is made
        from bench.run import ADHOC_EXPERIMENT_GROUPS

        args.data = dataset(args.rows, experiment_groups=ADHOC_EXPERIMENT_GROUPS)
    lines: list[str] = []
    if only:
        found = compare(args.data, args.rounds, only, args.before)
        rows = args.rows or pq.ParquetFile(args.data).metadata.num_rows
        lines += markdown(found, rows)
    if args.help_rounds > 0:
        lines += help_markdown(help_start(args.help_rounds, args.before))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
