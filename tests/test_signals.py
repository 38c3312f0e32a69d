"""Every long-running command stops everything it started, within ten seconds, on SIGTERM and
on Ctrl-C: `auto-optimizer sandbox serve`, `auto-optimizer webhook serve` (with the temporary
Prefect API it starts by itself), `make serve` with everything bundled, and `make serve`
with Prefect and the platform elsewhere, whose runner has a flow run in progress. Each runs
as a real subprocess on ports chosen by settings; what it started is read from /proc."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from optimizer.processes import wait_until_answers
from optimizer.settings import sandbox_endpoints
from tests.conftest import closed_port_url, copy_prefect_home
from tests.process_tree import Command, descendants, free_port, prefect_server
from tests.test_webhook import BUDGET

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OPTIMIZER = str(BIN / "auto-optimizer")
DEFAULT_PORTS = {4200, 8700, 8710, 8720}
DEPLOYMENTS = ["anomaly-resolved", "anomaly-response", "budget-response", "model-update-check", "nightly",
               "policy-violation-response", "rollout"]
# Lets the flow run these tests start give up late: it is still running when the signal comes.
UNREACHABLE_PLATFORM = {f"AUTO_OPTIMIZER_{name.upper()}": url
                        for name, url in sandbox_endpoints(closed_port_url("")).items()}


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without any Prefect API or optimizer setting, with
    local state under `tmp_path`, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTO_OPTIMIZER_", "PREFECT_API_", "PREFECT_HOME", "PREFECT_SERVER_API_"))}
    env.update({
        "AUTO_OPTIMIZER_DATA_DIR": str(tmp_path / "data"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **extra,
    })
    return env


@pytest.fixture(scope="module")
def own_prefect_api(migrated_prefect_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server of its own (not the session's test API, whose unclaimed runs a runner
    would pick up), as `prefect server start` runs it; yields its API URL."""
    folder = tmp_path_factory.mktemp("prefect-server")
    home = copy_prefect_home(migrated_prefect_home, folder)
    with prefect_server(home, clean_env(folder), folder / "server.log") as address:
        yield f"{address}/api"


def api_call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    """A Prefect API call, tried again while the server answers 503 (its SQLite database is
    busy when several processes write at once)."""
    for _ in range(40):
        answer = httpx.request(method, url, json=body, timeout=10)
        if answer.status_code != 503:
            answer.raise_for_status()
            return answer.json()
        time.sleep(0.25)
    raise AssertionError(f"{method} {url} kept answering 503")


def served_deployments(api: str, timeout_s: float = 120) -> dict[str, str]:
    """Deployment ids by name, once all of them are registered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = {d["name"]: d["id"] for d in api_call("POST", f"{api}/deployments/filter", {})}
        if sorted(found) == DEPLOYMENTS:
            return found
        time.sleep(0.5)
    raise AssertionError(f"the deployments were not all served within {timeout_s:.0f} s")


def run_until_running(api: str, deployment_id: str, timeout_s: float = 90) -> None:
    """Start a flow run of a served deployment and wait, generously, for the runner to pick
    it up and its process to run it."""
    run = api_call("POST", f"{api}/deployments/{deployment_id}/create_flow_run", {"parameters": {"backfill_days": 1}})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = api_call("GET", f"{api}/flow_runs/{run['id']}")["state"]
        if state["type"] == "RUNNING":
            return
        assert state["type"] in ("SCHEDULED", "PENDING"), state
        time.sleep(0.25)
    raise AssertionError(f"the runner did not start the run within {timeout_s:.0f} s")


@pytest.mark.parametrize(("sig", "whole_group"), [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["sigterm", "ctrl-c"])
def test_sandbox_serve_listens_where_settings_say_and_stops_when_asked(
    tmp_path: Path, sig: signal.Signals, whole_group: bool
) -> None:
    port = free_port()
    env = clean_env(tmp_path, AUTO_OPTIMIZER_SANDBOX_PORT=str(port))
    with Command([OPTIMIZER, "sandbox", "serve", "--requests-per-day", "100"], env=env) as sandbox:
        wait_until_answers(f"http://127.0.0.1:{port}/_sandbox/health", 60, process=sandbox.process)
        assert sandbox.stop_and_check(sig, whole_group=whole_group) == 0


def test_webhook_serve_stops_the_temporary_prefect_api_it_started_on_sigterm(
    tmp_path: Path, migrated_prefect_home: Path
) -> None:
    """With no PREFECT_API_URL the receiver starts Prefect's temporary API for its first
    event; SIGTERM used to end the receiver before the cleanup that stops that server."""
    port = free_port()
    env = clean_env(tmp_path, PREFECT_HOME=str(copy_prefect_home(migrated_prefect_home, tmp_path)))
    with Command([OPTIMIZER, "webhook", "serve", "--no-auth", "--port", str(port)], env=env,
                 log=tmp_path / "receiver.log") as receiver:
        wait_until_answers(f"http://127.0.0.1:{port}/health", 60, process=receiver.process)
        event = {"specversion": "1.0", "type": "io.llm-platform.governance.budget-alert",
                 "source": "/governance/budgets", "id": "budget-1", "data": BUDGET}
        accepted = httpx.post(f"http://127.0.0.1:{port}/events", json=event,
                              headers={"content-type": "application/cloudevents+json"}, timeout=180)
        assert accepted.status_code == 202, accepted.text
        # Answered at once; the API starts with the first attempt at the run, which fails (no
        # deployment is registered there) once the API answers.
        deadline = time.monotonic() + 180
        while "could not start budget-response" not in (tmp_path / "receiver.log").read_text(errors="replace"):
            assert time.monotonic() < deadline, "the receiver made no attempt at the run"
            time.sleep(0.25)
        temporary_api = [p for p in descendants(receiver.pid) if "prefect.server.api.server:create_app" in p.command]
        assert temporary_api, "the receiver did not start Prefect's temporary API"
        assert receiver.stop_and_check(signal.SIGTERM) == 0


def test_make_serve_serves_on_ports_from_settings_and_sigterm_stops_everything(
    tmp_path: Path, migrated_prefect_home: Path
) -> None:
    """`make serve` with every bundled service moved by settings: the UI, the sandbox, the
    receiver, the optimizer's API and the four deployments answer, on those ports only; SIGTERM to make (which
    passes it on) stops all of it."""
    prefect_port, sandbox_port, webhook_port, api_port = free_port(), free_port(), free_port(), free_port()
    env = clean_env(
        tmp_path, PREFECT_HOME=str(copy_prefect_home(migrated_prefect_home, tmp_path)),
        AUTO_OPTIMIZER_PREFECT_PORT=str(prefect_port), AUTO_OPTIMIZER_SANDBOX_PORT=str(sandbox_port),
        AUTO_OPTIMIZER_WEBHOOK_PORT=str(webhook_port), AUTO_OPTIMIZER_API_SERVER_PORT=str(api_port),
    )
    with Command(make("serve"), env=env, cwd=PROJECT, log=tmp_path / "serve.log") as serve:
        api = f"http://127.0.0.1:{prefect_port}/api"
        wait_until_answers(f"{api}/health", 180, process=serve.process)
        wait_until_answers(f"http://127.0.0.1:{prefect_port}/", 10)  # the UI
        wait_until_answers(f"http://127.0.0.1:{sandbox_port}/_sandbox/health", 60, process=serve.process)
        wait_until_answers(f"http://127.0.0.1:{webhook_port}/health", 60, process=serve.process)
        wait_until_answers(f"http://127.0.0.1:{api_port}/health", 60, process=serve.process)
        served_deployments(api)
        _, ports = serve.record()
        assert {prefect_port, sandbox_port, webhook_port, api_port} <= ports and not ports & DEFAULT_PORTS
        serve.stop_and_check(signal.SIGTERM)
    assert f"Prefect UI: http://127.0.0.1:{prefect_port}" in (tmp_path / "serve.log").read_text()


def test_local_serve_with_prefect_and_platform_replaced_runs_only_the_runner_and_ctrl_c_stops_its_flow_run(
    tmp_path: Path, own_prefect_api: str
) -> None:
    """`make serve` with PREFECT_API_URL set, every platform URL elsewhere, the receiver and
    the API turned off: no bundled service starts, only the runner that serves the
    deployments. A run started from the nightly deployment is picked up and running (its
    platform unreachable, it keeps retrying) when SIGINT comes to the whole process group; the
    runner and the run's process stop with it. Started as a script's `make serve &` starts it,
    with SIGINT ignored by inheritance, which a long-running command must not keep.
    (`make serve-nightly` starts the same runner with the same ChildProcesses; one runner
    start here covers both.)"""
    env = clean_env(tmp_path, PREFECT_API_URL=own_prefect_api, AUTO_OPTIMIZER_SERVE_RECEIVER="false",
                    AUTO_OPTIMIZER_SERVE_API="false", AUTO_OPTIMIZER_HTTP_BACKOFF_S="2", **UNREACHABLE_PLATFORM)
    with Command(make("serve"), env=env, cwd=PROJECT, log=tmp_path / "serve.log", in_background=True) as serve:
        nightly = served_deployments(own_prefect_api)["nightly"]
        local = next(p for p in descendants(serve.pid) if p.command.endswith("deployments.local"))
        children = [p for p in descendants(serve.pid) if p.parent == local.pid]
        assert [p.command.split()[-1] for p in children] == ["deployments.runner"], children
        run_until_running(own_prefect_api, nightly)
        tree, _ = serve.record()
        runner = next(p for p in tree if p.command.endswith("deployments.runner"))
        assert any(p.parent == runner.pid for p in tree), "the flow run is not a process of the runner's"
        serve.stop_and_check(signal.SIGINT, whole_group=True)


def make(target: str) -> list[str]:
    """`make target` with the virtualenv running these tests; "-o" keeps make from reinstalling it."""
    venv = Path(sys.prefix)
    return ["make", "--no-print-directory", f"VENV={venv}", "-o", f"{venv}/.installed", target]
