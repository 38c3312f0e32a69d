"""`make bench`: every stage of the nightly job at 1M, 10M and 50M rows, against a plain
pandas baseline run on the same data in the same run, plus the ad-hoc `analyze` commands and
the CLI's start as cold processes (`bench.adhoc`), extraction over HTTP and Prefect's own overhead.

Each measurement runs in its own process, so its peak memory (the kernel's high-water
mark of resident memory) is its own. Results go to `bench/results/<UTC time>.json` and
`bench/results/latest.md`.
`python -m bench.run --sizes 1000000 --skip adhoc,extraction,overhead` is the quick version.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import adhoc
from bench.data import dataset, increment

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_SIZES = (1_000_000, 10_000_000, 50_000_000)
GIB = 1024**3
ANALYSES = ("cascade_s", "compression_s", "experiments_s")
# The targets: what "fast enough" means for this job.
TARGET_10M_S = 30.0
TARGET_SPEEDUP = 10.0
TARGET_50M_PEAK_GIB = 4.0
TARGET_EXTRACTION_ROWS_S = 50_000
TARGET_OVERHEAD_PCT = 15.0
TARGET_LOAD_OVER_FLOOR = 1.3  # the first load against DuckDB's bare load of the same file
TARGET_ADHOC_SPEEDUP = 3.0
TARGET_HELP_S = 0.5
TARGET_NIGHT_S = 5.0  # the nightly flow over 10M stored rows, wall
ADHOC_ROWS = 5_000_000
ADHOC_EXPERIMENT_GROUPS = 4  # the pattern's two experiments four times over: eight in the file
PARTS = ("adhoc", "extraction", "overhead", "night")


@dataclass(frozen=True)
class Measured:
    """One process's answer (its JSON), wall time and peak resident memory."""

    result: dict[str, Any]
    wall_s: float
    peak_bytes: int


def measure(*args: str) -> Measured:
    """Run `python -m <args>` and wait for it with `wait4`, which reports the child's peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"bench: `python -m {' '.join(args)}` failed with exit code {process.returncode}")
    return Measured(json.loads(output), wall, usage.ru_maxrss * 1024)  # ru_maxrss is KiB on Linux


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(), "memory_gib": round(memory / GIB, 1), "system": platform.platform(),
        "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
        **{name: version(name) for name in ("duckdb", "pandas", "pyarrow", "prefect")},
    }


def say(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _read_through(data: Path) -> None:
    """Read the file once, so the floor and the load both find it in the page cache."""
    with data.open("rb") as file:
        while file.read(1 << 24):
            pass


def load_over_floor(ours: dict[str, Any]) -> float | None:
    """The first load's time as a multiple of DuckDB's bare load of the same file."""
    return ours["load_s"] / ours["floor_s"] if "floor_s" in ours else None


def bench_size(rows: int, scratch: Path, baseline_bytes_per_row: float | None) -> dict[str, Any]:
    say(f"{rows:,} rows: preparing data")
    data = dataset(rows)
    warehouse = scratch / f"bench-{rows}.duckdb"
    _read_through(data)
    say(f"{rows:,} rows: the floor, DuckDB's bare load of the same file")
    floor = measure("bench.stages", "floor", "--data", str(data), "--warehouse", str(warehouse))
    say(f"{rows:,} rows: load")
    load = measure("bench.stages", "load", "--data", str(data), "--warehouse", str(warehouse))
    say(f"{rows:,} rows: the next night's load")
    nightly = measure("bench.stages", "increment", "--data", str(increment()), "--warehouse", str(warehouse))
    say(f"{rows:,} rows: analyses and report")
    analyses = measure("bench.stages", "analyses", "--data", str(data), "--warehouse", str(warehouse))
    warehouse.unlink(missing_ok=True)
    entry: dict[str, Any] = {
        "rows": load.result["rows"],
        "ours": {**load.result, **floor.result, **nightly.result, **analyses.result,
                 "load_peak_bytes": load.peak_bytes, "floor_peak_bytes": floor.peak_bytes,
                 "increment_peak_bytes": nightly.peak_bytes, "analyses_peak_bytes": analyses.peak_bytes},
    }
    # The baseline holds every row in memory; past what the machine has it would only swap.
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if baseline_bytes_per_row and baseline_bytes_per_row * rows > 0.8 * memory:
        projected = baseline_bytes_per_row * rows / GIB
        entry["pandas_skipped"] = f"projected peak {projected:.0f} GiB exceeds 80% of this machine's memory"
        say(f"{rows:,} rows: pandas baseline skipped ({entry['pandas_skipped']})")
    else:
        say(f"{rows:,} rows: pandas baseline")
        baseline = measure("bench.baseline", "--data", str(data))
        entry["pandas"] = {**baseline.result, "peak_bytes": baseline.peak_bytes}
    return entry


def peak(ours: dict[str, Any]) -> int:
    return int(max(ours["load_peak_bytes"], ours["increment_peak_bytes"], ours["analyses_peak_bytes"]))


def ratios(entry: dict[str, Any]) -> dict[str, float]:
    """How many times faster than pandas (higher is better), stage by stage and overall."""
    if "pandas" not in entry:
        return {}
    ours, pandas = entry["ours"], entry["pandas"]
    ours_analyses = sum(ours[name] for name in ANALYSES)
    pandas_analyses = sum(pandas[name] for name in ANALYSES)
    found = {name: pandas[name] / ours[name] for name in ("load_s", *ANALYSES)}
    found["analyses"] = pandas_analyses / ours_analyses
    found["end_to_end"] = (pandas["load_s"] + pandas_analyses) / (ours["load_s"] + ours_analyses)
    # A night after the first: the warehouse takes one new day, pandas has to read it all again.
    found["nightly"] = (pandas["load_s"] + pandas_analyses) / (ours["increment_s"] + ours_analyses)
    found["peak_memory"] = pandas["peak_bytes"] / peak(ours)
    return found


def targets(report: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met); met is None when the run did not measure it."""
    sizes = {entry["rows_requested"]: entry for entry in report["sizes"]}
    checks: list[tuple[str, str, bool | None]] = []
    if 10_000_000 in sizes:
        ours = sizes[10_000_000]["ours"]
        over_floor = load_over_floor(ours)
        if over_floor is not None:
            checks.append((f"first load of 10M rows <= {TARGET_LOAD_OVER_FLOOR}x the bare DuckDB load",
                           f"{over_floor:.2f}x ({ours['load_s']:.2f} s / {ours['floor_s']:.2f} s)",
                           over_floor <= TARGET_LOAD_OVER_FLOOR))
        total = ours["load_s"] + sum(ours[name] for name in ANALYSES)
        checks.append((f"10M rows: load + all analyses < {TARGET_10M_S:.0f} s", f"{total:.1f} s",
                       total < TARGET_10M_S))
        speed = sizes[10_000_000].get("ratios", {})
        if speed:
            checks.append((f"10M rows: analyses >= {TARGET_SPEEDUP:.0f}x pandas", f"{speed['analyses']:.1f}x",
                           speed["analyses"] >= TARGET_SPEEDUP))
            checks.append((f"10M rows: a night's load + analyses >= {TARGET_SPEEDUP:.0f}x pandas",
                           f"{speed['nightly']:.1f}x", speed["nightly"] >= TARGET_SPEEDUP))
            checks.append((f"10M rows: first load + analyses >= {TARGET_SPEEDUP:.0f}x pandas",
                           f"{speed['end_to_end']:.1f}x", speed["end_to_end"] >= TARGET_SPEEDUP))
    if 50_000_000 in sizes:
        ours = sizes[50_000_000]["ours"]
        highest = peak(ours) / GIB
        checks.append((f"50M rows: peak memory < {TARGET_50M_PEAK_GIB:.0f} GiB", f"{highest:.2f} GiB",
                       highest < TARGET_50M_PEAK_GIB))
    if "adhoc" in report:
        rows = report["adhoc"]["rows"]
        for command, found in report["adhoc"]["analyses"].items():
            checks.append((f"analyze {command} on {rows / 1e6:g}M rows, cold process: >= {TARGET_ADHOC_SPEEDUP:g}x pandas",
                           f"{found['ratio']:.1f}x", found["ratio"] >= TARGET_ADHOC_SPEEDUP))
    if "cli_help" in report:
        started = report["cli_help"]["median_s"]
        checks.append((f"auto-optimizer --help <= {TARGET_HELP_S:g} s", f"{started:.2f} s", started <= TARGET_HELP_S))
    if "extraction" in report:
        rate = report["extraction"]["one_window"]["rows_per_s"]
        checks.append((f"extraction >= {TARGET_EXTRACTION_ROWS_S:,} rows/s", f"{rate:,.0f} rows/s",
                       rate >= TARGET_EXTRACTION_ROWS_S))
    if "overhead" in report:
        overhead = report["overhead"]["overhead_pct"]
        checks.append((f"Prefect overhead < {TARGET_OVERHEAD_PCT:.0f}%", f"{overhead:.1f}%",
                       overhead < TARGET_OVERHEAD_PCT))
    if "night" in report:
        night = report["night"]
        checks.append((f"nightly flow over {night['stored_rows'] / 1e6:.0f}M stored rows <= {TARGET_NIGHT_S:g} s wall",
                       f"{night['wall_s']:.1f} s", night["wall_s"] <= TARGET_NIGHT_S))
    return checks


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Benchmark {report['started']}", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()), "",
             "| rows | stage | ours (s) | pandas (s) | pandas / ours | ours peak (MiB) | pandas peak (MiB) |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for entry in report["sizes"]:
        ours, pandas, speed = entry["ours"], entry.get("pandas", {}), entry.get("ratios", {})
        rows = f"{entry['rows']:,}"
        stages = [("load", "load_s", "load_peak_bytes"), ("cascade", "cascade_s", "analyses_peak_bytes"),
                  ("compression", "compression_s", "analyses_peak_bytes"),
                  ("experiments", "experiments_s", "analyses_peak_bytes")]
        for label, key, peak in stages:
            lines.append(
                f"| {rows} | {label} | {ours[key]:.2f} | {pandas[key]:.2f} | {speed[key]:.1f}x | "
                f"{_mib(ours[peak])} | {_mib(pandas['peak_bytes'])} |" if pandas else
                f"| {rows} | {label} | {ours[key]:.2f} | - | - | {_mib(ours[peak])} | - |"
            )
            if key == "load_s" and "floor_s" in ours:
                lines.append(f"| {rows} | floor: bare DuckDB load | {ours['floor_s']:.2f} | - | - | "
                             f"{_mib(ours['floor_peak_bytes'])} | - |")
                lines.append(f"| {rows} | floor: bare DuckDB load, insertion order not kept | "
                             f"{ours['floor_same_settings_s']:.2f} | - | - | {_mib(ours['floor_peak_bytes'])} | - |")
        lines.append(f"| {rows} | report | {ours['report_s']:.3f} | - | - | {_mib(ours['analyses_peak_bytes'])} | - |")
        lines.append(f"| {rows} | next night's load ({ours['increment_rows']:,} rows) | {ours['increment_s']:.2f} | - | - | "
                     f"{_mib(ours['increment_peak_bytes'])} | - |")
        if speed:
            lines.append(f"| {rows} | **all analyses** | {sum(ours[k] for k in ANALYSES):.2f} | "
                         f"{sum(pandas[k] for k in ANALYSES):.2f} | **{speed['analyses']:.1f}x** | | |")
            lines.append(f"| {rows} | **load + analyses** | {ours['load_s'] + sum(ours[k] for k in ANALYSES):.2f} | "
                         f"{pandas['load_s'] + sum(pandas[k] for k in ANALYSES):.2f} | "
                         f"**{speed['end_to_end']:.1f}x** | | {speed['peak_memory']:.1f}x less |")
            lines.append(f"| {rows} | **a night: new day + analyses** | "
                         f"{ours['increment_s'] + sum(ours[k] for k in ANALYSES):.2f} | "
                         f"{pandas['load_s'] + sum(pandas[k] for k in ANALYSES):.2f} | **{speed['nightly']:.1f}x** | | |")
        elif "pandas_skipped" in entry:
            lines.append(f"| {rows} | pandas baseline | | not run: {entry['pandas_skipped']} | | | |")
    if "adhoc" in report:
        lines += adhoc.markdown(report["adhoc"], report["adhoc"]["rows"])
    if "cli_help" in report:
        lines += adhoc.help_markdown(report["cli_help"])
    if "extraction" in report:
        extraction = report["extraction"]
        lines += ["", f"Extraction over loopback ({extraction['requests_per_day']:,} requests a day, "
                  f"pages of {extraction['page_size']:,}): one window "
                  f"{extraction['one_window']['rows_per_s']:,.0f} rows/s; seven windows side by side "
                  f"{extraction['week_parallel']['rows_per_s']:,.0f} rows/s."]
    if "overhead" in report:
        overhead = report["overhead"]
        lines += ["", f"Prefect overhead (nightly flow, {overhead['backfill_days']} days of "
                  f"{overhead['requests_per_day']:,} requests, median of {overhead['rounds']}): flow "
                  f"{overhead['prefect_s']:.2f} s against plain calls {overhead['plain_s']:.2f} s = "
                  f"{overhead['overhead_pct']:.1f}%; inside the flow run "
                  f"{overhead['prefect_running_s']:.2f} s = {overhead['task_overhead_pct']:.1f}%; with "
                  f"heartbeats off {overhead['prefect_no_heartbeat_s']:.2f} s = "
                  f"{overhead['no_heartbeat_overhead_pct']:.1f}%."]
    if "night" in report:
        night = report["night"]
        lines += ["", f"Nightly flow through Prefect over {night['stored_rows']:,} stored rows: one new day "
                  f"({night['rounds'][0]['loaded']:,} rows) extracted and loaded, {night['analysed_rows']:,} rows "
                  f"analysed ({night['analysis_days']} days), results recorded, report and API snapshot written: "
                  f"{night['wall_s']:.2f} s wall, {night['running_s']:.2f} s Running "
                  f"(load average {night['load_average']:.1f})."]
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    for target, measured, met in targets(report):
        lines.append(f"| {target} | {measured} | {'yes' if met else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated row counts (default: %(default)s)")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to leave out: {', '.join(PARTS)}")
    parser.add_argument("--adhoc-rows", type=int, default=ADHOC_ROWS,
                        help="rows of the file the ad-hoc commands read (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="cold runs of each ad-hoc command and of its pandas script (default %(default)s)")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where results are written")
    args = parser.parse_args()
    try:
        sizes = sorted({int(size.replace("_", "")) for size in args.sizes.split(",") if size.strip()})
    except ValueError:
        parser.error(f"--sizes takes row counts such as 1000000,10000000, not {args.sizes!r}")
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    if unknown := skip - set(PARTS):
        parser.error(f"--skip knows {', '.join(PARTS)}, not {', '.join(sorted(unknown))}")

    started = datetime.now(UTC)
    report: dict[str, Any] = {"started": started.isoformat(timespec="seconds"), "machine": machine(), "sizes": []}
    args.results.mkdir(parents=True, exist_ok=True)
    scratch = args.results / "scratch.tmp"
    scratch.mkdir(exist_ok=True)
    bytes_per_row = None
    for rows in sizes:
        entry = {"rows_requested": rows, **bench_size(rows, scratch, bytes_per_row)}
        entry["ratios"] = ratios(entry)
        if "pandas" in entry:
            bytes_per_row = entry["pandas"]["peak_bytes"] / entry["rows"]
        report["sizes"].append(entry)
    scratch.rmdir()
    if "adhoc" not in skip:
        say(f"ad-hoc analyze on {args.adhoc_rows:,} rows against pandas, cold processes")
        data = dataset(args.adhoc_rows, experiment_groups=ADHOC_EXPERIMENT_GROUPS)
        report["adhoc"] = {"rows": args.adhoc_rows, **adhoc.compare(data, args.rounds)}
        say("auto-optimizer --help")
        report["cli_help"] = adhoc.help_start()
    if "extraction" not in skip:
        say("extraction over HTTP")
        report["extraction"] = measure("bench.extraction").result
    if "overhead" not in skip:
        say("Prefect overhead")
        report["overhead"] = measure("bench.overhead").result
    if "night" not in skip:
        say("the nightly flow over 10M stored rows")
        report["night"] = measure("bench.night").result
    report["targets"] = [{"target": t, "measured": m, "met": met} for t, m, met in targets(report)]

    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    (args.results / f"{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.results / "latest.md").write_text(table)
    print(table)
    print(f"results: {args.results / f'{stamp}.json'}")


if __name__ == "__main__":
    main()
