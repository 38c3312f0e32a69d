"""The README's commands as a user runs them: `auto-optimizer demo` and `run nightly`.

The demo as a user first meets it, from an installed wheel, is tests/test_packaging.py's;
here the CLI runs in-process against the session's Prefect API. The one migration of an
empty PREFECT_HOME in the suite is the session's (tests/conftest.py), made by the same
`embedded_prefect.prepare` a first demo calls; it is checked here.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from deployments.cli import main
from optimizer import embedded_prefect
from optimizer.settings import Settings
from tests.conftest import DAY_END, MIGRATION_LOG

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
def test_the_demo_speaks_the_upstream_apis_too_and_a_second_run_loads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = ["demo", "--json", "--workdir", str(tmp_path / "demo"), "--days", "2", "--requests-per-day", "1500",
            "--api-style", "upstream"]
    upstream = json_output(monkeypatch, *demo)
    assert int(upstream["requests_loaded"]) > 2000 and int(upstream["cost_days"]) == 14
    assert Path(str(upstream["report"])).is_relative_to(tmp_path / "demo" / "reports")
    assert Path(str(upstream["report"])).is_file()
    second = json_output(monkeypatch, *demo)  # the same day: the same window, nothing new in it
    assert second["requests_loaded"] == 0 and second["quarantined"] == 0
    assert second["requests_total"] == upstream["requests_total"]


def test_an_empty_prefect_home_is_migrated_first_saying_so(migrated_prefect_home: Path) -> None:
    said = (migrated_prefect_home.parent / MIGRATION_LOG).read_text(encoding="utf-8")
    assert "Preparing Prefect's local database" in said and "Prefect's local database is ready" in said
    assert (migrated_prefect_home / "prefect.db").stat().st_size > 0


def test_a_prefect_home_already_migrated_is_not_migrated_again(tmp_path: Path) -> None:
    database = tmp_path / "prefect-home" / "prefect.db"
    database.parent.mkdir()
    database.write_bytes(b"")  # an empty SQLite file: a migration would fill it
    environ = {"PREFECT_HOME": str(database.parent)}
    embedded_prefect.prepare(environ)
    assert database.read_bytes() == b""
    assert environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == str(embedded_prefect.STARTUP_TIMEOUT_S)
