"""What the CLI loads before it does anything: `--help` none of the heavy libraries, and the
ad-hoc `analyze` commands only what reading Parquet and the statistics need."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

from optimizer.sandbox import SandboxConfig
from optimizer.sandbox.export import export_requests

PROJECT = Path(__file__).resolve().parent.parent
HEAVY = {"scipy", "numpy", "pandas", "pyarrow", "duckdb", "fastapi", "prefect", "httpx", "opentelemetry"}


def imported_modules(*argv: str) -> set[str]:
    """The modules `auto-optimizer argv` imports, by full name, from Python's own import log."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "deployments.cli", *argv], cwd=PROJECT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def imported(*argv: str) -> set[str]:
    """The top-level packages `auto-optimizer argv` imports."""
    return {module.split(".")[0] for module in imported_modules(*argv)}


def test_help_loads_no_heavy_library() -> None:
    found = imported("--help")
    assert "argparse" in found
    assert found & HEAVY == set()


def test_help_loads_neither_pydantic_nor_the_settings_nor_result_models() -> None:
    """The parser's defaults (worlds, the sandbox's token, the latency limits) come from
    modules of plain constants: pydantic alone costs `--help` more than its whole budget."""
    found = imported_modules("--help")
    assert {"argparse", "deployments.cli_limits"} <= found
    assert {module.split(".")[0] for module in found} & {"pydantic", "pydantic_core", "pydantic_settings"} == set()
    assert {"optimizer.settings", "optimizer.sandbox.world"} & found == set()
    assert {module for module in found if module.startswith("optimizer.schemas")} == set()


def test_analyze_loads_no_server_client_or_dataframe_library(tmp_path: Path) -> None:
    path = tmp_path / "requests.parquet"
    export_requests(path, days=1, end=date(2026, 11, 25), config=SandboxConfig(seed=7, requests_per_day=500))
    found = imported("analyze", "cascade", "--input", str(path), "--json")
    assert {"duckdb", "scipy"} <= found
    assert found & {"pandas", "pyarrow", "fastapi", "prefect", "httpx"} == set()
