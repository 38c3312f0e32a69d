"""Sentinel payloads: anomaly reports, insights, and the alert event's data."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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


class AnomalyResolvedData(WireModel):
    """`data` of the `io.llm-platform.sentinel.anomaly-resolved` event. The specification
    lists the type without a schema: the alert's `alert_id` is what ties it to the alert."""

    alert_id: str
    resolved_at: datetime | None = None
    resolution: str | None = None
    alert_type: str | None = None
    anomaly_details: dict[str, Any] = Field(default_factory=dict)


# ---- Sentinel's own webhook (the upstream service) ------------------------------------

AnomalyType = Literal[
    "latency_spike", "throughput_degradation", "error_rate_increase", "token_usage_spike", "cost_anomaly",
    "input_drift", "output_drift", "concept_drift", "embedding_drift", "hallucination", "quality_degradation",
    "security_threat", "custom",
]


class AnomalyMeasure(WireModel):
    metric: str
    value: float
    baseline: float | None = None
    threshold: float | None = None
    deviation_sigma: float | None = None
    additional: dict[str, Any] = Field(default_factory=dict)


class AnomalyContext(WireModel):
    trace_id: str | None = None
    user_id: str | None = None
    region: str | None = None
    time_window: str | None = None
    sample_count: int | None = None
    additional: dict[str, Any] = Field(default_factory=dict)


class AnomalyEvent(WireModel):
    """An anomaly as upstream Sentinel describes it (`data` of its webhook)."""

    alert_id: str
    timestamp: datetime
    service_name: str
    model: str
    severity: Literal["low", "medium", "high", "critical"]
    anomaly_type: AnomalyType
    detection_method: str
    confidence: float
    details: AnomalyMeasure
    context: AnomalyContext = Field(default_factory=AnomalyContext)
    root_cause: str | None = None
    remediation: list[str] = Field(default_factory=list)
    related_alerts: list[str] = Field(default_factory=list)
    runbook_url: str | None = None

    def as_alert(self) -> SentinelAlertData:
        """The same anomaly as the specification's alert, which the response flows answer.

        Sentinel's `service_name` is the application whose traffic it watched; a latency
        spike's value is the degraded latency the faster-model strategy has to beat.
        """
        details: dict[str, Any] = {
            "affected_model": self.model, "application_id": self.service_name, "metric": self.details.metric,
            "actual_value": self.details.value, "baseline_value": self.details.baseline,
            "threshold": self.details.threshold, "deviation_sigma": self.details.deviation_sigma,
            "detection_method": self.detection_method, "confidence": self.confidence,
        }
        if self.anomaly_type == "latency_spike":
            details["current_p95_ms"] = self.details.value
        return SentinelAlertData(
            alert_id=self.alert_id, severity=self.severity, category=self.anomaly_type,
            alert_type=self.anomaly_type, title=f"{self.anomaly_type} on {self.service_name} ({self.model})",
            description=self.root_cause, detection_time=self.timestamp,
            anomaly_details={k: v for k, v in details.items() if v is not None},
            root_cause_analysis=RootCauseAnalysis(likely_cause=self.root_cause) if self.root_cause else None,
            recommended_actions=[AlertAction(action_type="remediation", description=step) for step in self.remediation],
            affected_services=[self.service_name],
        )


class SentinelWebhook(WireModel):
    """Body of Sentinel's webhook; `signature` repeats the header's HMAC when present."""

    event_type: str
    timestamp: datetime
    data: AnomalyEvent
    signature: str | None = None
