"""Shared fixtures: a real sandbox over loopback, a real Prefect API, real DuckDB files.

The suite runs on several worker processes (pytest-xdist); each worker has its own session
fixtures. Tests of a module in SHARED_FIXTURE_MODULES run on one worker, which builds their
module-scoped fixtures once; every other test goes wherever a worker is free.
"""

from __future__ import annotations

import contextvars
import fcntl
import io
import os
import shutil
import subprocess
import threading

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The tests read flow runs, states and artifacts, never the event stream; on the test API's
# SQLite database the event persister and the task-run recorder make every write several
# times slower (1,000 event-triggered runs: ~10 s instead of ~60 s).
os.environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED", "false")
# Nor do they use automations, work-pool health, late-run marking or database upkeep: each test
# API runs only the services the tests need (pause expirations, the scheduler, cancellation
# cleanup), about a sixth less CPU for the whole suite on two cores.
os.environ.setdefault("PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_SERVICES_FOREMAN_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED", "false")

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from optimizer import embedded_prefect
from optimizer.pipeline.runtime import configured
from optimizer.sandbox import SandboxConfig, SandboxServer
from optimizer.settings import SANDBOX_DEFAULT_TOKEN, SERVICES, Settings
from tests.process_tree import free_port

# Modules whose tests share a module-scoped fixture (a night's run, a built wheel, a server).
SHARED_FIXTURE_MODULES = frozenset(f"tests/{name}.py" for name in (
    "test_analyze_cli", "test_api_styles", "test_nightly_results", "test_packaging", "test_response_flows",
    "test_signals",
))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Like `--dist load`, except that a module of SHARED_FIXTURE_MODULES is one unit of work."""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # keep the order of pytest_collection_modifyitems

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in SHARED_FIXTURE_MODULES else nodeid

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest work first, so no worker is left with a long module while the others idle:
    modules that run as one unit and hold slow tests, then other modules with slow tests, then
    the rest. A module's tests stay together, in file order, so its fixtures are built once."""
    weights: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        slow = item.get_closest_marker("slow") is not None
        weight = (0 if module in SHARED_FIXTURE_MODULES else 1) if slow else 2
        weights[module] = min(weight, weights.get(module, 2))
    items.sort(key=lambda item: weights[item.nodeid.split("::", 1)[0]])


# The sandbox clock in tests: late morning, so the previous day is fully delivered.
SANDBOX_NOW = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
DAY_END = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.fixture(scope="session", autouse=True)
def telemetry_capture() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """In-memory OpenTelemetry providers for the whole session, installed before any flow
    runs, so the optimizer's own configuration leaves them in place and tests can read
    every span and metric it records."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return exporter, reader


MIGRATION_LOG = "migrated-prefect-home.log"


@pytest.fixture(scope="session")
def migrated_prefect_home(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A PREFECT_HOME whose database is created and migrated once for the whole run, every
    worker included (a migration costs about 9 s of CPU); tests and servers start from copies
    of it (`copy_prefect_home`). It is made as a user's first run makes it, by
    `embedded_prefect.prepare` on an empty PREFECT_HOME; what that said is kept beside it
    (`MIGRATION_LOG`) for tests/test_demo_cli.py to check."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the folder all workers' temporary folders live in
    home = shared / "migrated-prefect-home"
    with (shared / "migrated-prefect-home.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker migrates; the others wait for it
        if not (home / "prefect.db").exists():
            home.mkdir(exist_ok=True)
            environ = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_", "PREFECT_SERVER_DATABASE"))}
            said = io.StringIO()
            embedded_prefect.prepare({**environ, "PREFECT_HOME": str(home)}, log=said)
            (home.parent / MIGRATION_LOG).write_text(said.getvalue(), encoding="utf-8")
    return home


def copy_prefect_home(migrated: Path, folder: Path) -> Path:
    """A PREFECT_HOME of its own in `folder`, its database already migrated."""
    return Path(shutil.copytree(migrated, folder / "prefect-home"))


@pytest.fixture(scope="session")
def prefect_api(migrated_prefect_home: Path, tmp_path_factory: pytest.TempPathFactory,
                monkeypatch_session: pytest.MonkeyPatch) -> Iterator[None]:
    """One real Prefect API for the whole session (per worker): Prefect's test harness, whose
    temporary database starts as a copy of the migrated one instead of being migrated again."""
    import prefect.testing.utilities as harness

    def migrated_folder() -> str:
        folder = tmp_path_factory.mktemp("prefect-api")
        shutil.copy(migrated_prefect_home / "prefect.db", folder / "prefect-test.db")
        return str(folder)

    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    monkeypatch_session.setattr(harness, "mkdtemp", migrated_folder)
    # Without flow-run heartbeats: they feed crashed-run detection, which the test API does not
    # run (no triggers, no event persister), and each run's end waits up to a second for the
    # heartbeat thread's sleep.
    with harness.prefect_test_harness(server_startup_timeout=120), \
            temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture(scope="session")
def monkeypatch_session() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def sandbox_config(**overrides: object) -> SandboxConfig:
    values: dict[str, object] = {"seed": 7, "requests_per_day": 1500, "now": SANDBOX_NOW}
    values.update(overrides)
    return SandboxConfig.model_validate(values)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A sandbox of the test's own, to change: its clock, faults, incidents, routing, records."""
    with SandboxServer(sandbox_config()) as server:
        yield server


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[SandboxServer]:
    """One sandbox for the whole session, for tests that only read it: started once, its
    traffic generated once. A test that changes anything in it uses `sandbox` instead."""
    with SandboxServer(sandbox_config()) as server:
        yield server


def settings_for(sandbox: SandboxServer, folder: Path, **overrides: Any) -> Settings:
    """Settings aimed at `sandbox`, with a warehouse of their own in `folder` and quick retries."""
    return Settings(
        api_token=SANDBOX_DEFAULT_TOKEN,
        warehouse=folder / "warehouse.duckdb",
        staging_dir=folder / "staging",
        reports_dir=folder / "reports",
        api_snapshot=folder / "api" / "latest-night.json",
        http_backoff_s=0.01,
        http_max_backoff_s=0.05,
        http_timeout_s=10,
        **overrides,
    ).pointing_at_sandbox(sandbox.url)


def assert_same_numbers(actual: Any, expected: Any, rel: float = 1e-9, where: str = "") -> None:
    """Equal structures (dicts, lists, strings, ints) whose floats agree to `rel`: sums over
    the same rows in another order may differ in their last bits."""
    if isinstance(expected, float) and isinstance(actual, float | int):
        assert actual == pytest.approx(expected, rel=rel, abs=1e-300, nan_ok=True), where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), where
        for key, value in expected.items():
            assert_same_numbers(actual[key], value, rel, f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(actual, list | tuple) and len(actual) == len(expected), where
        for index, (left, right) in enumerate(zip(actual, expected, strict=True)):
            assert_same_numbers(left, right, rel, f"{where}[{index}]")
    else:
        assert actual == expected, where


def closed_port_url(path: str) -> str:
    """A loopback URL where nothing listens: a service that is down."""
    return f"http://127.0.0.1:{free_port()}{path}"


def speaking(style: str) -> dict[str, str]:
    """Settings overrides for every service to speak one API style."""
    return {"observatory_api_style": style, "policy_api_style": style, "sentinel_api_style": style}


@pytest.fixture
def settings(sandbox: SandboxServer, tmp_path: Path) -> Settings:
    return settings_for(sandbox, tmp_path)


@pytest.fixture
def platform_settings(settings: Settings) -> Iterator[Settings]:
    """`settings`, chosen for every flow the test runs in this thread."""
    with configured(settings):
        yield settings


def in_thread(target: Callable[[], None]) -> threading.Thread:
    """A started daemon thread running `target` with this thread's context: flows it runs see
    the settings `configured` chose here (a new thread starts with an empty context)."""
    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), daemon=True)
    thread.start()
    return thread


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment plus `settings` as AUTO_OPTIMIZER_* variables: how a
    command started as a child process (a worker, a served deployment) gets them."""
    names = [*(f"{service}_url" for service in SERVICES), "events_url", "policy_engine_url", "warehouse",
             "staging_dir", "reports_dir", "api_snapshot", "http_backoff_s", "http_max_backoff_s",
             "observatory_api_style", "policy_api_style", "sentinel_api_style"]
    variables = {f"AUTO_OPTIMIZER_{name.upper()}": str(getattr(settings, name)) for name in names}
    variables["AUTO_OPTIMIZER_API_TOKEN"] = settings.api_token.get_secret_value()
    if settings.approvers:
        variables["AUTO_OPTIMIZER_APPROVERS"] = ",".join(settings.approvers)
    return {**os.environ, **variables}


# Headless Chromium in a container: no sandbox, no GPU, and nothing that reaches the network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed by the test setup when the machine lacks it."""
    found = shutil.which("chromium")
    if found is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                       check=True, env=env, timeout=600)
        found = shutil.which("chromium")
    assert found, "chromium could not be installed"
    return found
