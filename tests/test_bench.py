"""`make bench` at a small size: every stage runs in its own process and the table has ratios;
the ad-hoc commands and the CLI's start are timed as cold processes against their targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import markdown, targets

PROJECT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_runs_each_stage_against_the_baseline_and_writes_results(tmp_path: Path) -> None:
    # Extraction, Prefect's overhead and the night over 10M rows have tests of their own parts;
    # run here they would take minutes.
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--sizes", "150000", "--skip", "extraction,overhead,night",
         "--adhoc-rows", "150000", "--rounds", "1", "--results", str(tmp_path)],
        cwd=PROJECT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (result_file,) = tmp_path.glob("*.json")
    report = json.loads(result_file.read_text())
    (size,) = report["sizes"]
    assert size["rows"] > 100_000 and size["ours"]["increment_rows"] > 10_000
    assert size["ours"]["load_peak_bytes"] > 0 and size["pandas"]["peak_bytes"] > 0
    assert set(size["ratios"]) >= {"load_s", "cascade_s", "compression_s", "experiments_s", "analyses", "nightly"}
    assert size["ours"]["floor_s"] > 0 and size["ours"]["floor_same_settings_s"] > 0
    assert size["ours"]["adopted"] >= 1  # the analyses found what the sandbox traffic holds
    analyses = report["adhoc"]["analyses"]
    assert set(analyses) == {"cascade", "compression", "experiment"}
    assert all(found["ours_s"] > 0 and found["pandas_s"] > 0 and found["ratio"] > 0 for found in analyses.values())
    assert report["cli_help"]["median_s"] > 0
    measured = [target["target"] for target in report["targets"]]
    assert "auto-optimizer --help <= 0.5 s" in measured and sum("analyze" in t for t in measured) == 3
    table = (tmp_path / "latest.md").read_text()
    assert "| **all analyses** |" in table and "pandas / ours" in table and "| floor: bare DuckDB load |" in table
    assert table in done.stdout


def test_bench_refuses_bad_sizes() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.run", "--sizes", "ten"], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--sizes takes row counts" in done.stderr


def test_the_first_load_is_held_to_the_bare_duckdb_load_of_the_same_file() -> None:
    ours = {"load_s": 6.5, "floor_s": 5.2, "floor_same_settings_s": 4.0, "cascade_s": 0.5, "compression_s": 0.2,
            "experiments_s": 0.2, "report_s": 0.01, "increment_s": 0.1, "increment_rows": 13_559,
            "load_peak_bytes": 2**30, "floor_peak_bytes": 2**29, "increment_peak_bytes": 2**28,
            "analyses_peak_bytes": 2**29}
    report = {"started": "now", "machine": {}, "sizes": [{"rows_requested": 10_000_000, "rows": 10_000_000,
                                                           "ours": ours}]}
    target = "first load of 10M rows <= 1.3x the bare DuckDB load"
    assert (target, "1.25x (6.50 s / 5.20 s)", True) in targets(report)
    report["sizes"][0]["ours"] = dict(ours, load_s=7.0)
    assert (target, "1.35x (7.00 s / 5.20 s)", False) in targets(report)
    table = markdown(report)
    assert "| 10,000,000 | floor: bare DuckDB load | 5.20 | - | - | 512 | - |" in table
    assert "| 10,000,000 | floor: bare DuckDB load, insertion order not kept | 4.00 |" in table
    assert f"| {target} | 1.35x (7.00 s / 5.20 s) | no |" in table


def test_the_night_is_held_to_its_wall_time_target() -> None:
    night = {"stored_rows": 10_030_637, "wall_s": 4.2, "running_s": 3.9, "analysed_rows": 9_327_737,
             "analysis_days": 14, "load_average": 0.5, "rounds": [{"loaded": 13_638}]}
    report = {"started": "now", "machine": {}, "sizes": [], "night": night}
    target = "nightly flow over 10M stored rows <= 5 s wall"
    assert (target, "4.2 s", True) in targets(report)
    report["night"] = dict(night, wall_s=5.4)
    assert (target, "5.4 s", False) in targets(report)
    assert f"| {target} | 5.4 s | no |" in markdown(report)
