"""Telling the platform: results into the warehouse with their events, the Registry, the
event sink."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from optimizer import experiment_records, telemetry
from optimizer import recommendations as build
from optimizer.errors import PlatformError
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.report import EventDelivery, ExperimentOutcome, RecordedResults
from optimizer.schemas.analysis import (
    BatchingReport,
    CachingReport,
    CascadeReport,
    CompressionReport,
    ExperimentFinding,
)
from optimizer.schemas.applications import ApplicationProfile


def record_results(
    runtime: Runtime,
    run_id: str,
    cascades: CascadeReport,
    compression: CompressionReport,
    experiments: Sequence[ExperimentFinding],
    profiles: Sequence[ApplicationProfile],
    alpha: float,
    max_quality_drop: float,
    *,
    caching: CachingReport | None = None,
    batching: BatchingReport | None = None,
    log: Log = LOG,
) -> RecordedResults:
    """Store every result with the events announcing it (one transaction), then record the
    experiments and adopted recommendations in the Registry. Safe to repeat."""
    now = datetime.now(UTC)
    by_app = {p.application_id: p for p in profiles}
    savings: list[build.Finding] = [*(caching.recommendations if caching else []),
                                    *(batching.recommendations if batching else [])]
    adoption = build.adopt([*cascades.recommendations, *compression.recommendations, *savings], by_app,
                           run_id=run_id, alpha=alpha, now=now)
    with runtime.warehouse() as store:
        prices = store.reference.input_prices()
    compressions = {e.application_id: e for e in compression.recommendations}
    for item in adoption.adopted:
        entry = compressions.get(item.application_id) if item.kind == "prompt_compression" else None
        telemetry.record_savings(optimization_type=item.kind, application=item.application_id,
                                 cost_usd=item.monthly_savings_usd,
                                 tokens=build.monthly_tokens_saved(entry, prices) if entry else 0.0)
    events = list(adoption.events)
    events += [event for finding in experiments
               if (event := experiment_records.experiment_event(finding.analysis, finding.definition, alpha=alpha, now=now,
                                                   usage=finding.usage))]
    with telemetry.operation("record.results", "recording"), runtime.warehouse() as store:
        store.results.record(run_id, cascades=cascades, compression=compression,
                             experiments=[f.analysis for f in experiments], adopted=adoption.adopted, events=events,
                             caching=caching, batching=batching)
    with telemetry.operation("record.registry", "recording"), runtime.clients() as clients:
        for finding in experiments:
            clients.registry.record_experiment(
                experiment_records.stored_experiment(finding.analysis, finding.definition, alpha=alpha, now=now,
                                        usage=finding.usage))
        for application, recommended in sorted(adoption.recommendations.items()):
            clients.registry.recommendations(
                build.recommendation_request(by_app[application], recommended, max_quality_drop))
    log.info("recorded %d experiment(s) and %d adopted recommendation(s); %d event(s) queued",
             len(experiments), len(adoption.adopted), len(events))
    return RecordedResults(
        recommendations=adoption.adopted, monthly_savings=adoption.monthly_savings,
        savings_by_team=adoption.savings_by_team(by_app),
        experiment_outcomes=[ExperimentOutcome(experiment_id=f.analysis.experiment_id,
                                               recommendation=f.analysis.recommendation, winner=f.analysis.winner)
                             for f in experiments],
        events_queued=len(events),
    )


def deliver_events(runtime: Runtime, *, log: Log = LOG) -> EventDelivery:
    """Send every undelivered event, oldest first. When the sink stays down, the rest wait in
    the outbox for the next run: nothing is dropped."""
    delivered, last_error = 0, None
    with (runtime.warehouse() as store, telemetry.operation("deliver.events", "events"),
          runtime.event_sink() as sink, store.outbox.sending()):
        pending = store.outbox.pending()
        for event in pending:
            try:
                sink.deliver(event)
            except PlatformError as exc:
                last_error = runtime.redact(str(exc))
                store.outbox.mark_failed(event.id, last_error)
                log.warning("event sink unavailable (%s); %d event(s) wait for the next run",
                            last_error, len(pending) - delivered)
                break
            store.outbox.mark_delivered(event.id)
            delivered += 1
    remaining = len(pending) - delivered
    log.info("events: %d delivered, %d pending", delivered, remaining)
    return EventDelivery(emitted=len(pending), delivered=delivered, pending=remaining, last_error=last_error)
