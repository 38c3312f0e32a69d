"""Where the optimizer's own telemetry goes: OTLP when an endpoint is set, a file, or nowhere.

Each case runs in a fresh interpreter, because OpenTelemetry's providers are set once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

SCRIPT = """
from optimizer import telemetry
from optimizer.settings import Settings
telemetry.configure(Settings().telemetry_file)
with telemetry.operation("analyze.cascade", "model_cascade"):
    telemetry.record_savings(optimization_type="model_cascade", application="support-bot", cost_usd=12.5, tokens=1000)
telemetry.flush()
"""


def run_script(env: dict[str, str]) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUTO_OPTIMIZER_TELEMETRY"))}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=clean | env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


class Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, int]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Collector.received.append((self.path, self.headers.get("Content-Type", ""), len(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_spans_and_metrics_go_over_otlp_when_an_endpoint_is_set(collector: str) -> None:
    run_script({"OTEL_EXPORTER_OTLP_ENDPOINT": collector})
    paths = {(path, kind) for path, kind, size in Collector.received if size > 0}
    assert ("/v1/traces", "application/x-protobuf") in paths
    assert ("/v1/metrics", "application/x-protobuf") in paths


def test_spans_go_to_a_file_when_one_is_named(tmp_path: Path) -> None:
    target = tmp_path / "telemetry" / "spans.jsonl"
    run_script({"AUTO_OPTIMIZER_TELEMETRY_FILE": str(target)})
    (span,) = [json.loads(line) for line in target.read_text().splitlines()]
    assert span["name"] == "analyze.cascade"
    assert span["attributes"]["optimization.type"] == "model_cascade"
    assert span["resource"]["attributes"]["service.name"] == "llm-auto-optimizer"
    metrics = (tmp_path / "telemetry" / "spans-metrics.jsonl").read_text()
    assert "llm.optimization.runs" in metrics and "llm.optimization.cost_savings_usd" in metrics


def test_nothing_is_written_or_sent_by_default(tmp_path: Path, collector: str) -> None:
    # Per-signal endpoints alone do not switch export on; they only make sure that an exporter
    # created anyway would be caught by the collector.
    run_script({"HOME": str(tmp_path), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{collector}/v1/traces",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{collector}/v1/metrics"})
    assert Collector.received == []
    assert list(tmp_path.iterdir()) == []
