"""Sending the outbox: as often as the settings say, each event once, even when two flows of
one process send at the same time."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from optimizer.pipeline.record import EventDelivery, deliver_events
from optimizer.pipeline.runtime import Runtime
from optimizer.schemas.events import OutgoingEvent
from optimizer.settings import Settings
from tests.conftest import DAY_END


class Sink(ThreadingHTTPServer):
    """An event sink on loopback that answers 503 to its first `failures` requests, then 202
    after `delay_s`, and counts the event ids it accepted."""

    def __init__(self, failures: int = 0, delay_s: float = 0.0) -> None:
        self.failures, self.requests, self.accepted = failures, 0, Counter[str]()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests += 1
                refused = sink.requests <= sink.failures
                if not refused:
                    time.sleep(delay_s)
                    sink.accepted[json.loads(body)["id"]] += 1
                self.send_response(503 if refused else 202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def settings(self, folder: Path, **overrides: object) -> Settings:
        return Settings(warehouse=folder / "warehouse.duckdb", http_backoff_s=0.01, http_max_backoff_s=0.02,
                        events_url=f"http://127.0.0.1:{self.server_address[1]}/events", **overrides)


def event(number: int) -> OutgoingEvent:
    return OutgoingEvent(id=f"evt-{number}", type="io.llm-platform.optimization.recommended",
                         source="/auto-optimizer", subject="application/doc-qa", time=DAY_END,
                         data={"application_id": "doc-qa"})


@pytest.mark.parametrize("attempts", [3, 5])
def test_event_delivery_tries_as_often_as_the_settings_say(tmp_path: Path, attempts: int) -> None:
    with Sink(failures=3) as sink:
        runtime = Runtime(sink.settings(tmp_path, http_max_attempts=attempts))
        with runtime.warehouse() as store:
            store.outbox.queue([event(1)])
        delivery = deliver_events(runtime)
        sink.shutdown()
    assert sink.requests == min(attempts, 4)
    assert (delivery.delivered, delivery.pending) == ((1, 0) if attempts > 3 else (0, 1))


def test_flows_finishing_together_send_each_event_once(tmp_path: Path) -> None:
    """Rollouts approved together finish together, each sending the outbox from its own thread."""
    with Sink(delay_s=0.02) as sink:
        runtime = Runtime(sink.settings(tmp_path))
        with runtime.warehouse() as store:
            store.outbox.queue([event(n) for n in range(6)])
        deliveries: list[EventDelivery] = []
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def send() -> None:
            start.wait()
            try:
                deliveries.append(deliver_events(runtime))
            except BaseException as exc:
                errors.append(exc)

        senders = [threading.Thread(target=send) for _ in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(30)
        sink.shutdown()
    assert errors == []
    assert sink.accepted == Counter({f"evt-{n}": 1 for n in range(6)})
    assert sum(d.delivered for d in deliveries) == 6
    with runtime.warehouse() as store:
        assert store.outbox.pending() == []
