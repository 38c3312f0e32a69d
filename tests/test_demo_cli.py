"""The README's commands as a user runs them: `auto-optimizer demo` and `run nightly`.

The demo as a user first meets it, from an installed wheel with an empty PREFECT_HOME and
run twice, is tests/test_packaging.py's; here the CLI runs in-process against the session's
Prefect API, so no test migrates a second new Prefect database.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from deployments.cli import main
from optimizer.settings import Settings
from tests.conftest import DAY_END

pytestmark = pytest.mark.slow


def json_output(monkeypatch: pytest.MonkeyPatch, *argv: str, settings: Settings | None = None) -> Any:
    """Run the CLI and parse its stdout, which must be exactly one JSON document.

    Only stdout is replaced: capsys would also swap stderr, and Prefect's log handler, set up
    by the first flow import, would keep writing to that stream after the test closed it.
    """
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(list(argv), settings) == 0
    return json.loads(out.getvalue())


@pytest.mark.usefixtures("prefect_api")
def test_run_nightly_prints_one_json_document(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = json_output(monkeypatch, "run", "nightly", "--json", "--window-end", DAY_END.isoformat(),
                          "--backfill-days", "1", settings=settings)
    assert summary["requests_loaded"] == summary["requests_total"] > 0
    assert {"requests_loaded", "requests_total", "quarantined", "report"} <= set(summary)


@pytest.mark.usefixtures("prefect_api")
def test_the_demo_speaks_the_upstream_apis_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream = json_output(monkeypatch, "demo", "--json", "--workdir", str(tmp_path / "demo"), "--days", "2",
                           "--requests-per-day", "1500", "--api-style", "upstream")
    assert int(upstream["requests_loaded"]) > 2000 and int(upstream["cost_days"]) == 14
    assert Path(str(upstream["report"])).is_relative_to(tmp_path / "demo" / "reports")
    assert Path(str(upstream["report"])).is_file()
