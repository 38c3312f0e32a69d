"""Prefect's embedded local API, ready before the first flow run asks for it.

With no `PREFECT_API_URL`, a flow run starts a temporary Prefect API on the SQLite database
in `PREFECT_HOME`. The very first start creates and migrates that database, which takes
about 40 s on two quiet cores and longer on busy ones, while the temporary server is only
waited for `PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS` (20 s by default). So the
database is migrated here first, with a message saying why the wait, and the server is
given room to start on a busy machine.

Prefect reads its settings when it is imported: call `prepare()` before importing it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from optimizer.errors import ServiceStartError

# Seconds the temporary API may take to answer once its database exists; generous, since
# a busy machine is where a short wait fails.
STARTUP_TIMEOUT_S = 300
MIGRATION_TIMEOUT_S = 900
DEFAULTS = {
    # The server's usage analytics would try the network at every start and log failures.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(STARTUP_TIMEOUT_S),
    # The late-runs service only relabels runs nobody has started on time as "Late" (still
    # Scheduled: runners pick them up the same). On SQLite it competes with run creation for
    # the one writer: a burst of 1,000 webhook events then took minutes, not seconds
    # (docs/benchmarks.md).
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
}


def local_database(environ: Mapping[str, str]) -> Path | None:
    """The SQLite file the local API will use, or None when Prefect is elsewhere (an API URL,
    or a database that is not a local SQLite file)."""
    if environ.get("PREFECT_API_URL"):
        return None
    url = environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") or environ.get("PREFECT_API_DATABASE_CONNECTION_URL")
    if url is None:
        home = Path(environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
        return home / "prefect.db"
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix) or ":memory:" in url:
        return None
    return Path(url.removeprefix(prefix))


def migrate(database: Path, environ: Mapping[str, str], log: TextIO = sys.stderr) -> None:
    """Create and migrate Prefect's database in a child process, saying so first."""
    log.write(f"Preparing Prefect's local database at {database} (first run only; about a minute)...\n")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "server", "database", "upgrade", "--yes"],
        env=dict(environ), capture_output=True, text=True, timeout=MIGRATION_TIMEOUT_S, check=False,
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise ServiceStartError(f"could not prepare Prefect's database at {database}: "
                           f"{detail[-1] if detail else f'exit status {done.returncode}'}")
    log.write(f"Prefect's local database is ready ({time.monotonic() - started:.0f} s).\n")


def _api_already_chosen() -> bool:
    """Whether Prefect, already imported in this process, talks to an API of its own choosing
    (a test harness or a settings context), whatever the environment says."""
    if "prefect.settings" not in sys.modules:
        return False
    from prefect.settings import get_current_settings

    return get_current_settings().api.url is not None


def prepare(environ: dict[str, str] | None = None, log: TextIO | None = None) -> None:
    """Default Prefect's embedded settings and migrate its local database if it is new,
    saying so on `log` (stderr by default).

    Works on `os.environ` unless given another mapping; the user's own settings win.
    """
    env = os.environ if environ is None else environ
    for name, value in DEFAULTS.items():
        env.setdefault(name, value)
    if environ is None and _api_already_chosen():
        return
    database = local_database(env)
    if database is not None and not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        migrate(database, env, log or sys.stderr)
