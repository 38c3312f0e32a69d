"""`make bench` at a small size: every stage runs in its own process and the table has ratios;
the ad-hoc commands and the CLI's start are timed as cold processes against their targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_runs_each_stage_against_the_baseline_and_writes_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--sizes", "150000", "--skip", "extraction,overhead",
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
    assert size["ours"]["adopted"] >= 1  # the analyses found what the sandbox traffic holds
    analyses = report["adhoc"]["analyses"]
    assert set(analyses) == {"cascade", "compression", "experiment"}
    assert all(found["ours_s"] > 0 and found["pandas_s"] > 0 and found["ratio"] > 0 for found in analyses.values())
    assert report["cli_help"]["median_s"] > 0
    measured = [target["target"] for target in report["targets"]]
    assert "auto-optimizer --help <= 0.5 s" in measured and sum("analyze" in t for t in measured) == 3
    table = (tmp_path / "latest.md").read_text()
    assert "| **all analyses** |" in table and "pandas / ours" in table
    assert table in done.stdout


def test_bench_refuses_bad_sizes() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.run", "--sizes", "ten"], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--sizes takes row counts" in done.stderr
