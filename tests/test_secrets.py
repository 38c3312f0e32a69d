"""Nothing leaked: a credential in the event sink's URL never shows in what the optimizer prints,
logs, reports or stores, and the sink gets its own token, never the platform's."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterStartTime,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.settings import PREFECT_API_URL

from optimizer.errors import ServiceStartError
from optimizer.events import structured_message
from optimizer.pipeline.record import deliver_events
from optimizer.pipeline.runtime import Runtime
from optimizer.processes import wait_until_answers
from optimizer.redaction import MASK, redact, redact_url, url_credentials
from optimizer.sandbox import SandboxServer
from optimizer.schemas.events import OutgoingEvent
from optimizer.settings import Settings
from tests.conftest import DAY_END, child_environment, closed_port_url, sandbox_config, settings_for

PROJECT = Path(__file__).resolve().parent.parent
AUTO_OPTIMIZER = str(Path(sys.executable).with_name("auto-optimizer"))
# Made-up credentials, unlike anything else a run prints, so a leak cannot hide.
URL_USER, URL_PASSWORD, URL_TOKEN = "sink-user", "url-password-5e1d07", "url-token-a94c3f"
PLATFORM_TOKEN, SINK_TOKEN = "platform-token-77b2e0", "sink-token-3c80d4"


def event(number: int) -> OutgoingEvent:
    return OutgoingEvent(id=f"evt-{number}", type="io.llm-platform.optimization.recommended",
                         source="/auto-optimizer", subject="application/doc-qa", time=DAY_END,
                         data={"application_id": "doc-qa"})


class RecordingSink(ThreadingHTTPServer):
    """An event sink on loopback that answers every event with `status` and keeps the
    Authorization header each one came with."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.authorizations: list[str | None] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.authorizations.append(self.headers.get("Authorization"))
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@contextmanager
def recording_sink(status: int) -> Iterator[RecordingSink]:
    with RecordingSink(status) as sink:
        thread = threading.Thread(target=sink.serve_forever, daemon=True)
        thread.start()
        try:
            yield sink
        finally:
            sink.shutdown()
            thread.join(10)


def test_a_url_keeps_its_address_and_loses_its_credentials() -> None:
    url = f"https://{URL_USER}:{URL_PASSWORD}@sink.example:8443/events?tenant=a&access_token={URL_TOKEN}&Api-Key=k1#x"
    assert redact_url(url) == f"https://{MASK}@sink.example:8443/events?tenant=a&access_token={MASK}&Api-Key={MASK}#x"
    assert set(url_credentials(url)) == {URL_PASSWORD, URL_TOKEN, "k1"}
    assert redact_url("http://127.0.0.1:8700/events?page=2") == "http://127.0.0.1:8700/events?page=2"
    assert url_credentials("https://key-as-user-0001@sink.example/events") == ["key-as-user-0001"]


def test_text_loses_every_url_credential_and_every_known_secret() -> None:
    error = (f"event sink: POST http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:9/events?token={URL_TOKEN} failed"
             f" ('http://u:p@other/x'); the service said: bad token {PLATFORM_TOKEN}")
    clean = redact(error, [PLATFORM_TOKEN])
    assert clean == (f"event sink: POST http://{MASK}@127.0.0.1:9/events?token={MASK} failed"
                     f" ('http://{MASK}@other/x'); the service said: bad token {MASK}")


def test_settings_name_their_secrets_and_show_none_of_them() -> None:
    settings = Settings(api_token=PLATFORM_TOKEN, events_token=SINK_TOKEN,
                        events_url=f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:9/events?access_token={URL_TOKEN}")
    assert {PLATFORM_TOKEN, SINK_TOKEN, URL_PASSWORD, URL_TOKEN} <= set(settings.secret_values())
    shown = repr(settings) + str(settings) + repr(Runtime(settings))
    assert "127.0.0.1:9/events" in shown
    assert not [s for s in (PLATFORM_TOKEN, SINK_TOKEN, URL_PASSWORD, URL_TOKEN) if s in shown]


def test_a_service_that_does_not_answer_is_named_without_its_credentials() -> None:
    url = closed_port_url("/api/health").replace("://", f"://{URL_USER}:{URL_PASSWORD}@")
    with pytest.raises(ServiceStartError) as raised:
        wait_until_answers(url, 0.1)
    assert URL_PASSWORD not in str(raised.value) and f"{MASK}@127.0.0.1" in str(raised.value)


def test_the_event_sink_gets_its_own_token_never_the_platform_token(tmp_path: Path) -> None:
    with recording_sink(202) as sink:
        platform_only = Settings(warehouse=tmp_path / "warehouse.duckdb", api_token=PLATFORM_TOKEN,
                                 events_url=f"http://{sink.address}/events")
        with_sink_token = Settings(warehouse=tmp_path / "warehouse.duckdb", api_token=PLATFORM_TOKEN,
                                   events_token=SINK_TOKEN, events_url=f"http://{sink.address}/events")
        for number, settings in enumerate((with_sink_token, platform_only)):
            runtime = Runtime(settings)
            with runtime.warehouse() as store:
                store.outbox.queue([event(number)])
            assert deliver_events(runtime).delivered == 1
    assert sink.authorizations == [f"Bearer {SINK_TOKEN}", None]


def test_the_sandbox_sink_takes_its_own_token_never_the_platform_token() -> None:
    headers, body = structured_message(event(1))
    with SandboxServer(sandbox_config(token=PLATFORM_TOKEN, events_token=SINK_TOKEN)) as sandbox:
        def post(token: str) -> int:
            return httpx.post(f"{sandbox.url}/events", content=body, timeout=10,
                              headers=headers | {"Authorization": f"Bearer {token}"}).status_code

        assert post(PLATFORM_TOKEN) == 401
        assert post(SINK_TOKEN) == 202
        assert list(sandbox.state.events) == [("/auto-optimizer", "evt-1")]


def warehouse_text(path: Path) -> str:
    """Every row of every table in the warehouse, as text."""
    with duckdb.connect(str(path), read_only=True) as db:
        tables = db.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        return "\n".join(f"{table}: {db.execute(f'SELECT * FROM {schema}.{table}').fetchall()!r}"
                         for schema, table in tables)


def prefect_text(since: datetime) -> tuple[str, str]:
    """(the logs, the rest: states and artifacts) of every flow run the Prefect API started since
    `since`, with their task runs, as text."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)))
        ids = [run.id for run in runs]
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
    assert ids and logs and artifacts
    rest = [repr(run.state) for run in [*runs, *tasks]] + [f"{a.data} {a.description}" for a in artifacts]
    return "\n".join(log.message for log in logs), "\n".join(rest)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_credentials_in_the_sink_url_never_show_where_the_failure_does(
    sandbox: SandboxServer, tmp_path: Path,
) -> None:
    """The CLI's nightly run, as a user starts it (`-v` for every log line), with an event to
    deliver and a sink that keeps failing: the failure is printed, logged, reported and stored,
    the credentials nowhere."""
    started = datetime.now().astimezone()
    with recording_sink(503) as sink:
        url = f"http://{URL_USER}:{URL_PASSWORD}@{sink.address}/events?tenant=a&access_token={URL_TOKEN}"
        settings = settings_for(sandbox, tmp_path, telemetry_file=tmp_path / "spans.jsonl").model_copy(
            update={"events_url": url})
        env = child_environment(settings) | {"PREFECT_API_URL": str(PREFECT_API_URL.value()),
                                              "AUTO_OPTIMIZER_TELEMETRY_FILE": str(settings.telemetry_file)}
        with Runtime(settings).warehouse() as store:  # an event an earlier run could not deliver
            store.outbox.queue([event(1)])
        done = subprocess.run(
            [AUTO_OPTIMIZER, "-v", "run", "nightly", "--json", "--window-end", DAY_END.isoformat(),
             "--backfill-days", "1", "--no-proposals"],
            cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600, check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    # The credential was used as written: the sink was asked, with the URL's user and password.
    basic = base64.b64encode(f"{URL_USER}:{URL_PASSWORD}".encode()).decode()
    assert sink.authorizations and set(sink.authorizations) == {f"Basic {basic}"}
    summary = json.loads(done.stdout)
    assert summary["events"]["pending"] == 1 and summary["events"]["last_error"]
    logs, prefect_rest = prefect_text(started)
    assert "event sink unavailable" in logs and "event sink" in done.stderr
    shown = {
        "stdout (--json)": done.stdout, "stderr": done.stderr,
        "HTML report": Path(summary["report"]).read_text(encoding="utf-8"),
        "Markdown report": Path(summary["report_markdown"]).read_text(encoding="utf-8"),
        "warehouse": warehouse_text(settings.warehouse),
        "telemetry file": Path(str(settings.telemetry_file)).read_text(encoding="utf-8"),
        "Prefect flow-run logs": logs, "Prefect states and artifacts": prefect_rest,
    }
    leaks = {where: [s for s in (URL_PASSWORD, URL_TOKEN) if s in text] for where, text in shown.items()}
    assert {where: found for where, found in leaks.items() if found} == {}
    # Masked, not dropped: the error still says where delivery failed.
    with duckdb.connect(str(settings.warehouse), read_only=True) as db:
        stored = db.execute("SELECT last_error FROM events_outbox WHERE delivered_at IS NULL").fetchall()
    masked = f"http://{MASK}@{sink.address}/events?tenant=a&access_token={MASK}"
    assert masked in summary["events"]["last_error"] and masked in stored[0][0]
    assert f"HTTP Request: POST {masked}" in done.stderr  # httpx's own log line, cleaned on its way out
