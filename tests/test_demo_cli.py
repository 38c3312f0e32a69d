"""The README's commands as a user runs them: `auto-optimizer demo` and `run nightly`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optimizer.cli import main
from optimizer.settings import Settings
from tests.conftest import DAY_END

pytestmark = pytest.mark.slow


def run_demo(workdir: Path, prefect_home: Path, *options: str) -> dict[str, object]:
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "optimizer.cli", "demo", "--json", "--workdir", str(workdir),
         "--days", "2", "--requests-per-day", "1500", *options],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)  # exactly one JSON document on stdout


def test_demo_runs_end_to_end_and_a_second_run_loads_nothing(tmp_path: Path) -> None:
    workdir, prefect_home = tmp_path / "demo", tmp_path / "prefect"
    first = run_demo(workdir, prefect_home)
    assert int(first["requests_loaded"]) > 2000  # type: ignore[call-overload]
    assert first["requests_total"] == first["requests_loaded"]
    assert int(first["quarantined"]) > 0  # type: ignore[call-overload]  # the sandbox serves some malformed records
    assert Path(str(first["report"])).is_file()
    second = run_demo(workdir, prefect_home)
    assert second["requests_loaded"] == 0 and second["quarantined"] == 0
    assert second["requests_total"] == first["requests_total"]


@pytest.mark.usefixtures("prefect_api")
def test_run_nightly_prints_one_json_document(platform_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "nightly", "--json", "--window-end", DAY_END.isoformat(), "--backfill-days", "1"])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out)
    assert summary["requests_loaded"] == summary["requests_total"] > 0
    assert {"requests_loaded", "requests_total", "quarantined", "report"} <= set(summary)


def test_the_demo_speaks_the_upstream_apis_too(tmp_path: Path) -> None:
    upstream = run_demo(tmp_path / "demo", tmp_path / "prefect", "--api-style", "upstream")
    assert int(upstream["requests_loaded"]) > 2000 and int(upstream["cost_days"]) == 14  # type: ignore[call-overload]
    assert Path(str(upstream["report"])).is_file()
