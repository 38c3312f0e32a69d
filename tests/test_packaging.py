"""The package as a user gets it: the sdist and wheel built from this checkout, the wheel
installed into a fresh environment, and its `auto-optimizer demo` run from elsewhere, the
path a first start on a new machine takes. Its PREFECT_HOME is a copy of the session's
migrated one: migrating an empty one (about 9 s of CPU) is the same `prepare` call the
session's fixture makes, checked in tests/test_demo_cli.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import copy_prefect_home

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("optimizer", "tasks", "flows", "deployments")
DIST = "llm-auto-optimizer"


def run(command: list[str], timeout_s: float, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command in a process group of its own, so that on a timeout whatever it
    started (Prefect's temporary API server) is killed with it."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=cwd, env=env, start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            pytest.fail(f"{command[0]} did not finish within {timeout_s:.0f} s: {err[-2000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, and the wheel built from it (not from the checkout, as a user's pip does)."""
    out = tmp_path_factory.mktemp("dist")
    done = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)], 300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    return sdist, wheel


def expected_wheel_files() -> set[str]:
    """The modules of the four packages, their typing marker and migrations, the catalog."""
    names = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES for path in (ROOT / package).rglob("*.py") if "__pycache__" not in path.parts
    }
    names |= {path.relative_to(ROOT).as_posix() for path in (ROOT / "optimizer/warehouse/migrations").glob("*.sql")}
    return names | {"optimizer/py.typed", "optimizer/data/model_catalog.json"}


def test_the_wheel_holds_the_code_and_the_shipped_catalog_and_nothing_else(built: tuple[Path, Path]) -> None:
    sdist, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        files = {name for name in archive.namelist() if ".dist-info/" not in name}
        catalog = archive.read("optimizer/data/model_catalog.json")
    assert files == expected_wheel_files()  # no tests, bench data, warehouses or reports
    assert catalog == (ROOT / "data" / "model_catalog.json").read_bytes()
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert "setup.py" in members
    assert {name for name in members if name.startswith(("data/", "bench/"))} == {"data/model_catalog.json"}


def fresh_environment(folder: Path) -> Path:
    """A new virtual environment that sees the test environment's packages (a .pth file)
    instead of downloading the dependencies again; returns its Python."""
    run([sys.executable, "-m", "venv", "--without-pip", str(folder)], 120).check_returncode()
    python = folder / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], 60)
                .stdout.strip())
    ours = sysconfig.get_paths()
    (site / "test-environment.pth").write_text(f"{ours['purelib']}\n{ours['platlib']}\n", encoding="utf-8")
    return python


@pytest.mark.timeout(600)  # one demo, starting Prefect's temporary API from the installed package
def test_the_installed_wheel_runs_the_demo_anywhere(built: tuple[Path, Path], tmp_path: Path,
                                                    migrated_prefect_home: Path) -> None:
    """A second demo the same day loading nothing, an empty PREFECT_HOME migrated first and
    a migrated one not migrated again, are tests/test_demo_cli.py's: each costs no second
    Prefect start there."""
    python = fresh_environment(tmp_path / "venv")
    # --ignore-installed: the checkout's editable install is visible through the .pth file
    # and would otherwise count as this version already installed.
    installed = run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                     "--ignore-installed", "--quiet", str(built[1])], 120)
    assert installed.returncode == 0, installed.stderr[-2000:]
    checked = run([sys.executable, "-m", "pip", "--python", str(python), "check"], 120)
    assert [line for line in checked.stdout.splitlines() if line.startswith(DIST)] == []  # bounds hold

    workdir, prefect_home = tmp_path / "elsewhere", copy_prefect_home(migrated_prefect_home, tmp_path)
    workdir.mkdir()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("AUTO_OPTIMIZER_") and name not in {"PREFECT_API_URL", "PYTHONPATH"}}
    env |= {"PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    where = run([str(python), "-c", "import optimizer; print(optimizer.__file__)"], 60, cwd=workdir, env=env)
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv")  # the wheel, not the checkout

    done = run([str(python.parent / "auto-optimizer"), "demo", "--json", "--days", "2",
                "--requests-per-day", "1500"], 600, cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    first = json.loads(done.stdout)  # exactly one JSON document on stdout
    assert "Preparing Prefect's local database" not in done.stderr  # its migrated PREFECT_HOME was used
    assert (prefect_home / "prefect.db").is_file()
    assert int(first["requests_loaded"]) > 2000
    assert first["requests_total"] == first["requests_loaded"]
    assert int(first["quarantined"]) > 0  # the sandbox serves some malformed records
    report = Path(str(first["report"]))
    assert report.is_file() and report.is_relative_to(workdir / "data" / "demo" / "reports")
    assert (workdir / "data" / "demo" / "warehouse.duckdb").is_file()
