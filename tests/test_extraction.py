"""Extraction from an Observatory whose pages hold records that are not request records."""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from optimizer.catalog import load_catalog
from optimizer.clients import ObservatoryClient
from optimizer.clients._http import RetryPolicy
from optimizer.errors import PlatformUnavailableError
from optimizer.ingest.observatory import collector_paused, extract_window, prefetched
from optimizer.ingest.windows import Window
from optimizer.schemas.loads import LoadBatch
from optimizer.settings import MODEL_CATALOG
from optimizer.warehouse import Warehouse

GOOD = {
    "timestamp": "2026-11-24T10:00:00.000Z", "severityNumber": 9,
    "attributes": {
        "llm.request_id": "req-1", "llm.application_name": "support-bot", "llm.team_id": "team-support",
        "deployment.environment.name": "production", "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-2024-08-06", "gen_ai.usage.prompt_tokens": 100,
        "gen_ai.usage.completion_tokens": 20, "llm.request.cost_usd": 0.0012, "llm.response.latency_ms": 900.0,
    },
}
PAGE = {"logs": ["not a record", {"timestamp": "2026-11-24T10:00:01.000Z", "attributes": "flat text"}, GOOD],
        "next_cursor": None, "total": 3}
COLLECTOR_ON_AT_REQUEST: list[bool] = []  # whether the cyclic garbage collector ran when a page was asked for


class OnePage(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        COLLECTOR_ON_AT_REQUEST.append(gc.isenabled())
        body = json.dumps(PAGE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def observatory() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OnePage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/observatory/api/v1"
    server.shutdown()
    server.server_close()


def test_records_that_are_not_objects_reach_quarantine_and_the_page_still_loads(
    observatory: str, tmp_path: Path
) -> None:
    window = Window(datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))
    with ObservatoryClient(observatory, None) as client:
        staged = extract_window(client, window, tmp_path / "staging")
    assert staged.rows == 3
    with Warehouse(tmp_path / "w.duckdb") as store:
        store.reference.ensure_models(load_catalog(MODEL_CATALOG))
        result = store.loads.load(LoadBatch(source="test", request_files=[staged.path]))
        reasons = store.loads.quarantine_reasons()
    assert result.loaded == 1
    assert reasons == {"log record is not a JSON object": 1, "log record has no attributes object": 1}


def test_a_consumer_that_fails_stops_the_prefetching_producer() -> None:
    """A writer failing mid-window must not leave a thread blocked on a full queue, holding
    the log search open."""
    closed = threading.Event()

    def pages() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    with pytest.raises(RuntimeError, match="writer failed"), closing(prefetched(pages())) as items:
        for n in items:
            if n == 3:
                raise RuntimeError("the writer failed")
    assert closed.wait(5), "the producer still waits to hand over its next page"


def test_the_collector_is_paused_while_a_window_is_extracted_and_resumed_after(
    observatory: str, tmp_path: Path
) -> None:
    """Pages are parsed and mapped without the cyclic collector's full-heap passes; it is back
    on afterwards, also after a failure, and a window extracted beside another keeps it off."""
    window = Window(datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))
    COLLECTOR_ON_AT_REQUEST.clear()
    with ObservatoryClient(observatory, None) as client:
        extract_window(client, window, tmp_path / "staging")
        assert COLLECTOR_ON_AT_REQUEST == [False]
        assert gc.isenabled()
        with collector_paused():
            extract_window(client, window, tmp_path / "beside")
            assert not gc.isenabled(), "the other window's pause ended with this one"
        assert gc.isenabled()
    with pytest.raises(PlatformUnavailableError), ObservatoryClient(
        "http://127.0.0.1:9/observatory/api/v1", None, retry=RetryPolicy(max_attempts=1)
    ) as unreachable:
        extract_window(unreachable, window, tmp_path / "failed")
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
