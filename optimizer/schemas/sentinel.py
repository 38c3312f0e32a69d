"""Sentinel payloads: anomaly reports, insights, and the alert event's data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from optimizer.schemas._base import WireModel


class AnomalyReport(WireModel):
    """Body of `POST /anomalies`."""

    source: str
    type: str
    severity: str
    timestamp: datetime
    context: dict[str, Any] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)


class SuggestedAction(WireModel):
    action: str
    reason: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class AnomalyReported(WireModel):
    anomaly_id: str
    status: str
    alert_triggered: bool
    alert_id: str | None = None
    recommended_actions: list[SuggestedAction] = Field(default_factory=list)


class InsightsSummary(WireModel):
    total_anomalies: int
    by_category: dict[str, int] = Field(default_factory=dict)
    by_severity: dict[str, int] = Field(default_factory=dict)


class TopAnomaly(WireModel):
    anomaly_id: str
    type: str
    severity: float
    timestamp: datetime
    affected_requests: int | None = None
    model: str | None = None


class AnomalyPattern(WireModel):
    pattern_type: str
    frequency: str | None = None
    time_of_day: str | None = None
    correlation: dict[str, Any] = Field(default_factory=dict)


class InsightsTimeRange(WireModel):
    start: datetime
    end: datetime


class AnomalyInsights(WireModel):
    """Answer to `GET /anomalies/insights`."""

    time_range: InsightsTimeRange
    summary: InsightsSummary
    top_anomalies: list[TopAnomaly] = Field(default_factory=list)
    patterns: list[AnomalyPattern] = Field(default_factory=list)


class RootCauseAnalysis(WireModel):
    likely_cause: str | None = None
    confidence: float | None = None
    contributing_factors: list[str] = Field(default_factory=list)


class AlertAction(WireModel):
    action_type: str
    description: str | None = None
    priority: int | None = None
    estimated_impact: str | None = None


class SentinelAlertData(WireModel):
    """`data` of the `io.llm-platform.sentinel.alert` event."""

    alert_id: str
    severity: str
    category: str
    alert_type: str
    title: str | None = None
    description: str | None = None
    detection_time: datetime | None = None
    anomaly_details: dict[str, Any] = Field(default_factory=dict)
    root_cause_analysis: RootCauseAnalysis | None = None
    recommended_actions: list[AlertAction] = Field(default_factory=list)
    affected_services: list[str] = Field(default_factory=list)
    notification_targets: list[str] = Field(default_factory=list)
