"""What a nightly run did, as one object: the flow's result, the demo's JSON, the report's input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from pydantic import BaseModel, Field

from optimizer.schemas.analysis import (
    AdoptedRecommendation,
    BatchingReport,
    CachingReport,
    CascadeReport,
    CompressionReport,
    ExperimentAnalysis,
    TeamBudgetStatus,
)
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.loads import LoadResult, Window
from optimizer.schemas.optimizations import LoopSummary, RealizedSavings
from optimizer.schemas.selection import TrafficCell


class ExperimentOutcome(BaseModel):
    experiment_id: str
    recommendation: str
    winner: str | None


class EventDelivery(BaseModel):
    emitted: int = 0
    delivered: int = 0
    pending: int = 0
    last_error: str | None = None


class NightlySummary(BaseModel):
    """What one nightly run did; `auto-optimizer demo --json` and `run nightly --json` print it."""

    run_id: str = ""
    started_at: datetime | None = None
    requests_loaded: int
    requests_total: int
    quarantined: int
    quarantined_total: int
    duplicates_skipped: int
    quarantine_reasons: dict[str, int] = Field(default_factory=dict)
    windows: int
    window_start: datetime | None = None
    window_end: datetime
    models: int
    cost_days: int
    experiments: int
    load_id: str
    recommendations: list[AdoptedRecommendation] = Field(default_factory=list)
    potential_monthly_savings_usd: float = 0.0
    experiment_outcomes: list[ExperimentOutcome] = Field(default_factory=list)
    budgets_flagged: list[str] = Field(default_factory=list)
    events: EventDelivery = Field(default_factory=EventDelivery)
    loop: LoopSummary = Field(default_factory=LoopSummary)
    realized_monthly_savings_usd: float = 0.0  # what the deployed changes save, as measured tonight
    report: str = ""
    report_markdown: str = ""


class RecordedResults(BaseModel):
    """What the run told the platform: adopted recommendations and their savings, experiment
    outcomes, and how many events it queued."""

    recommendations: list[AdoptedRecommendation] = Field(default_factory=list)
    monthly_savings: dict[str, float] = Field(default_factory=dict)  # "<kind>:<application>" -> USD
    savings_by_team: dict[str, float] = Field(default_factory=dict)
    experiment_outcomes: list[ExperimentOutcome] = Field(default_factory=list)
    events_queued: int = 0


def summarize(
    loaded: LoadResult,
    windows: Sequence[Window],
    window_end: datetime,
    run_id: str = "",
    started_at: datetime | None = None,
) -> NightlySummary:
    return NightlySummary(
        run_id=run_id,
        started_at=started_at,
        requests_loaded=loaded.loaded,
        requests_total=loaded.requests_total,
        quarantined=loaded.quarantined,
        quarantined_total=loaded.quarantined_total,
        duplicates_skipped=loaded.duplicates,
        quarantine_reasons=loaded.quarantine_reasons,
        windows=len(windows),
        window_start=windows[0].start if windows else None,
        window_end=window_end,
        models=loaded.models,
        cost_days=loaded.cost_days,
        experiments=loaded.experiments,
        load_id=loaded.load_id,
    )


def complete(
    summary: NightlySummary,
    recorded: RecordedResults,
    delivery: EventDelivery,
    budgets: Sequence[TeamBudgetStatus],
    loop: LoopSummary | None = None,
) -> NightlySummary:
    """The load summary with what the analyses found and what the platform was told."""
    return summary.model_copy(
        update={
            "recommendations": recorded.recommendations,
            "potential_monthly_savings_usd": sum(r.monthly_savings_usd for r in recorded.recommendations),
            "experiment_outcomes": recorded.experiment_outcomes,
            "budgets_flagged": [b.team_id for b in budgets if b.flagged],
            "events": delivery,
            "loop": loop or LoopSummary(),
        }
    )


class SpendLine(BaseModel):
    key: str
    label: str
    cost_usd: float
    share_pct: float
    change_pct: float | None  # the last 7 days against the 7 before; None without two full weeks


def spend_lines(rows: Sequence[tuple[date, str, float]], labels: Mapping[str, str]) -> list[SpendLine]:
    """Totals per key over the period, largest first, with their week-over-week change.

    Weeks, not halves of the period: traffic is weekly, and a half that holds a weekend
    would show a trend that is only the calendar.
    """
    days = sorted({day for day, _, _ in rows})
    last_week = set(days[-7:]) if len(days) >= 14 else set()
    week_before = set(days[-14:-7]) if len(days) >= 14 else set()
    totals: dict[str, float] = {}
    weeks: dict[str, list[float]] = {}
    for day, key, cost in rows:
        totals[key] = totals.get(key, 0.0) + cost
        week = weeks.setdefault(key, [0.0, 0.0])
        if day in week_before:
            week[0] += cost
        elif day in last_week:
            week[1] += cost
    grand = sum(totals.values())
    return [
        SpendLine(
            key=key, label=labels.get(key, key), cost_usd=total,
            share_pct=100 * total / grand if grand else 0.0,
            change_pct=100 * (weeks[key][1] / weeks[key][0] - 1) if last_week and weeks[key][0] > 0 else None,
        )
        for key, total in sorted(totals.items(), key=lambda kv: -kv[1])
    ]


class ReportData(BaseModel):
    """Everything the report shows, gathered by the flow."""

    summary: NightlySummary
    analysis_start: datetime
    spend_by_model: list[tuple[date, str, float]] = Field(default_factory=list)
    spend_totals: dict[str, list[SpendLine]] = Field(default_factory=dict)
    budgets: list[TeamBudgetStatus] = Field(default_factory=list)
    cascades: CascadeReport
    compression: CompressionReport
    caching: CachingReport | None = None
    batching: BatchingReport | None = None
    experiments: list[ExperimentAnalysis] = Field(default_factory=list)
    monthly_savings: dict[str, float] = Field(default_factory=dict)  # "<kind>:<application>" -> USD
    realized: list[RealizedSavings] = Field(default_factory=list)  # tonight's measurement of deployed changes
    realized_history: list[tuple[date, float, float]] = Field(default_factory=list)  # (night, realized, forecast)
    # The analysis window's application profiles and traffic cells as its analysis read them from
    # the warehouse, for the API's snapshot; None: the snapshot reads them itself.
    profiles: list[ApplicationProfile] | None = None
    traffic: list[TrafficCell] | None = None
