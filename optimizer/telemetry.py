"""The optimizer's own traces and metrics, with OpenTelemetry.

Spans cover each flow and analysis step; metrics are the ones the platform specification
names: `llm.optimization.runs`, `llm.optimization.duration` (ms), and the savings found,
`llm.optimization.cost_savings_usd` and `llm.optimization.token_savings` (the prompt tokens
an adopted compression saves). Export follows
the standard variables: OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, JSON lines
to the file the caller names (the `telemetry_file` setting, `AUTO_OPTIMIZER_TELEMETRY_FILE`)
when one is named, nowhere otherwise. A provider someone
installed first (a test's in-memory one, an application's own) is left in place.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, Status, StatusCode

from optimizer.redaction import redact

INSTRUMENTATION = "llm-auto-optimizer"
_lock = threading.Lock()
_owned: tuple[TracerProvider, MeterProvider] | None = None


class JsonLinesSpanExporter(SpanExporter):
    """One JSON object per finished span, appended to a file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._file.write(span.to_json(indent=None) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


def configure(file: Path | None = None, service_version: str = "0.1.0") -> None:
    """Install exporting providers once per process, unless providers are already set."""
    global _owned
    with _lock:
        if _owned is not None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return
        resource = Resource.create({"service.name": INSTRUMENTATION, "service.version": service_version})
        tracer_provider = TracerProvider(resource=resource)
        readers: list[MetricReader] = []
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        elif file is not None:
            tracer_provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(file)))
            metrics_file = file.with_name(file.stem + "-metrics.jsonl").open("a", encoding="utf-8")
            readers.append(PeriodicExportingMetricReader(
                ConsoleMetricExporter(out=metrics_file, formatter=lambda m: m.to_json(indent=None) + "\n")
            ))
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        _owned = (tracer_provider, meter_provider)


def flush() -> None:
    """Export what is buffered (a nightly run is a short-lived process)."""
    if _owned is not None:
        _owned[0].force_flush()
        _owned[1].force_flush()


def tracer() -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION)


def _meter() -> metrics.Meter:
    return metrics.get_meter(INSTRUMENTATION)


@contextmanager
def operation(name: str, optimization_type: str, **attributes: Any) -> Iterator[Span]:
    """A span for one step, counted in `llm.optimization.runs` and timed in `llm.optimization.duration`."""
    meter = _meter()
    runs = meter.create_counter("llm.optimization.runs", description="Number of optimization runs executed")
    duration = meter.create_histogram(
        "llm.optimization.duration", unit="ms", description="Duration of optimization operations"
    )
    started = time.perf_counter()
    status = "success"
    with tracer().start_as_current_span(
        name, attributes={"optimization.type": optimization_type, **attributes}
    ) as span:
        try:
            yield span
        except BaseException as exc:
            status = "failure"
            message = redact(str(exc))  # spans are exported and kept: no URL's credentials in them
            span.record_exception(exc, attributes={
                "exception.message": message, "exception.stacktrace": redact("".join(traceback.format_exception(exc))),
            })
            span.set_status(Status(StatusCode.ERROR, message))
            raise
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            runs.add(1, {"optimization.type": optimization_type, "optimization.status": status})
            duration.record(elapsed_ms, {"optimization.type": optimization_type})


def record_savings(*, optimization_type: str, application: str, cost_usd: float, tokens: float = 0.0) -> None:
    """Savings a recommendation promises, per month: `llm.optimization.cost_savings_usd` and
    `llm.optimization.token_savings`."""
    meter = _meter()
    labels = {"optimization.type": optimization_type, "application": application}
    meter.create_counter(
        "llm.optimization.cost_savings_usd", unit="USD", description="Estimated monthly savings of recommendations"
    ).add(max(cost_usd, 0.0), labels)
    if tokens:
        record_token_savings(optimization_type=optimization_type, application=application, tokens=tokens,
                             kind="forecast")


def record_token_savings(*, optimization_type: str, application: str, tokens: float, kind: str) -> None:
    """`llm.optimization.token_savings`: prompt tokens a month, `forecast` by an adopted
    recommendation or `realized` by a deployed change (attribute `savings.kind`)."""
    _meter().create_counter(
        "llm.optimization.token_savings", unit="tokens", description="Monthly prompt tokens saved"
    ).add(max(tokens, 0.0), {"optimization.type": optimization_type, "application": application,
                             "savings.kind": kind})
