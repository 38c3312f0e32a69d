"""Telling the platform: results into the warehouse with their events, the Registry, the event sink."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from optimizer import recommendations as build
from optimizer import telemetry
from optimizer.clients import PlatformClients, RetryPolicy
from optimizer.errors import PlatformError
from optimizer.events import EventSinkClient
from optimizer.report import (
    EventDelivery,
    ExperimentOutcome,
    RecordedResults,
)
from optimizer.schemas.analysis import (
    AdoptedRecommendation,
    CascadeRecommendation,
    CascadeReport,
    CompressionRecommendation,
    CompressionReport,
)
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.events import OutgoingEvent
from optimizer.schemas.registry import Recommendation
from optimizer.warehouse import Warehouse
from tasks._common import retry_if_transient, settings
from tasks.analyze import ExperimentFinding


@task(name="record-results", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_if_transient,
      cache_policy=NO_CACHE)
def record_results(
    warehouse: Path,
    run_id: str,
    cascades: CascadeReport,
    compression: CompressionReport,
    experiments: Sequence[ExperimentFinding],
    profiles: Sequence[ApplicationProfile],
    alpha: float,
    max_quality_drop: float,
) -> RecordedResults:
    """Store every result with the events announcing it (one transaction), then record the
    experiments and adopted recommendations in the Registry. Safe to repeat."""
    logger = get_run_logger()
    now = datetime.now(UTC)
    by_app = {p.application_id: p for p in profiles}
    adopted: dict[str, list[Recommendation]] = {}
    summary: list[AdoptedRecommendation] = []
    savings: dict[str, float] = {}
    events: list[OutgoingEvent] = []
    entries: list[CascadeRecommendation | CompressionRecommendation] = [
        *cascades.recommendations, *compression.recommendations
    ]
    for entry in entries:
        profile = by_app.get(entry.application_id)
        recommendation = build.registry_recommendation(entry, profile, run_id=run_id, alpha=alpha)
        if recommendation is None:
            continue
        monthly = build.monthly_savings_usd(entry, profile)
        savings[f"{recommendation.type}:{entry.application_id}"] = monthly
        adopted.setdefault(entry.application_id, []).append(recommendation)
        summary.append(AdoptedRecommendation(
            recommendation_id=recommendation.recommendation_id, kind=recommendation.type,
            application_id=entry.application_id, description=recommendation.description, monthly_savings_usd=monthly,
        ))
        events.append(build.recommendation_event(recommendation, entry.application_id, now))
        telemetry.record_savings(optimization_type=recommendation.type, application=entry.application_id,
                                 cost_usd=monthly)
    for finding in experiments:
        event = build.experiment_event(finding.analysis, finding.definition, alpha=alpha, now=now)
        if event is not None:
            events.append(event)
    with telemetry.operation("record.results", "recording"), Warehouse(warehouse) as store:
        store.results.record(run_id, cascades=cascades, compression=compression,
                             experiments=[f.analysis for f in experiments], adopted=summary, events=events)
    with telemetry.operation("record.registry", "recording"), PlatformClients.from_settings(settings()) as clients:
        for finding in experiments:
            clients.registry.record_experiment(
                build.stored_experiment(finding.analysis, finding.definition, alpha=alpha, now=now)
            )
        for application, recs in sorted(adopted.items()):
            clients.registry.recommendations(build.recommendation_request(by_app[application], recs, max_quality_drop))
    by_team: dict[str, float] = {}
    for item in summary:
        team = by_app[item.application_id].team_id if item.application_id in by_app else None
        if team:
            by_team[team] = by_team.get(team, 0.0) + item.monthly_savings_usd
    logger.info("recorded %d experiment(s) and %d adopted recommendation(s); %d event(s) queued",
                len(experiments), len(summary), len(events))
    return RecordedResults(
        recommendations=summary, monthly_savings=savings, savings_by_team=by_team,
        experiment_outcomes=[ExperimentOutcome(experiment_id=f.analysis.experiment_id,
                                               recommendation=f.analysis.recommendation, winner=f.analysis.winner)
                             for f in experiments],
        events_queued=len(events),
    )


@task(name="deliver-events", cache_policy=NO_CACHE)
def deliver_events(warehouse: Path) -> EventDelivery:
    """Send every undelivered event, oldest first. When the sink stays down, the rest wait in
    the outbox for the next run: nothing is dropped."""
    logger = get_run_logger()
    config = settings()
    delivered, last_error = 0, None
    with Warehouse(warehouse) as store, telemetry.operation("deliver.events", "events"):
        pending = store.outbox.pending()
        sink = EventSinkClient(
            config.events_url, config.api_token.get_secret_value() or None, timeout_s=config.http_timeout_s,
            retry=RetryPolicy(max_attempts=3, backoff_s=config.http_backoff_s, max_backoff_s=config.http_max_backoff_s),
        )
        with sink:
            for event in pending:
                try:
                    sink.deliver(event)
                except PlatformError as exc:
                    last_error = str(exc)
                    store.outbox.mark_failed(event.id, last_error)
                    logger.warning("event sink unavailable (%s); %d event(s) wait for the next run",
                                   last_error, len(pending) - delivered)
                    break
                store.outbox.mark_delivered(event.id)
                delivered += 1
        remaining = len(pending) - delivered
    logger.info("events: %d delivered, %d pending", delivered, remaining)
    return EventDelivery(emitted=len(pending), delivered=delivered, pending=remaining, last_error=last_error)
