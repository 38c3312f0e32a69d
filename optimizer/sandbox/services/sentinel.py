"""Sentinel: anomaly reports and insights over seeded incidents and reported anomalies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from optimizer.sandbox.services._common import as_utc, problem, reply, state_of
from optimizer.sandbox.state import SandboxState
from optimizer.schemas.sentinel import AnomalyReport

router = APIRouter(prefix="/sentinel/api/v1", tags=["sentinel"])
SEVERITY_SCORE = {"low": 0.25, "medium": 0.5, "high": 0.8, "critical": 0.95}
ACTIONS = {
    "optimization_failure": ("disable_optimization", "Quality threshold violated"),
    "optimization_side_effect": ("rollback_optimization", "Optimization degraded guardrail metrics"),
}


def _severity_label(score: float) -> str:
    if score >= 0.9:
        return "critical"
    if score >= 0.7:
        return "high"
    if score >= 0.4:
        return "medium"
    return "low"


def _known_anomalies(state: SandboxState) -> list[dict[str, Any]]:
    anomalies = []
    for incident in state.traffic.incidents:
        if incident.start > state.now():
            continue
        frame = state.traffic.between(incident.start, min(incident.end, state.now()))
        if incident.model:
            frame = frame[frame["model"] == incident.model]
        if incident.application_id:
            frame = frame[frame["application_id"] == incident.application_id]
        anomalies.append({
            "anomaly_id": incident.incident_id, "type": incident.anomaly_type,
            "category": incident.category, "severity": incident.severity, "timestamp": incident.start,
            "affected_requests": len(frame), "model": incident.model,
        })
    for reported in state.anomalies:
        anomalies.append(reported)
    return anomalies


@router.post("/anomalies")
def report_anomaly(body: AnomalyReport, request: Request) -> Response:
    state = state_of(request)
    anomaly_id = f"anom-{uuid.uuid4().hex[:8]}"
    triggered = body.severity != "low"
    alert_id = f"alert-{uuid.uuid4().hex[:6]}" if triggered else None
    category = "quality" if "quality" in body.type else "performance" if "latency" in body.type else "operations"
    with state.lock:
        state.anomalies.append({
            "anomaly_id": anomaly_id, "type": body.type, "category": category,
            "severity": SEVERITY_SCORE.get(body.severity, 0.5), "timestamp": as_utc(body.timestamp),
            "affected_requests": body.details.get("affected_requests"), "model": body.context.get("model"),
            "report": body.model_dump(mode="json"),
        })
    actions = []
    if body.type in ACTIONS:
        action, reason = ACTIONS[body.type]
        actions.append({
            "action": action, "reason": reason,
            "parameters": {k: body.context[k] for k in ("optimization_type", "model") if k in body.context}
            | {"duration_minutes": 30},
        })
    return reply({
        "anomaly_id": anomaly_id, "status": "recorded", "alert_triggered": triggered,
        **({"alert_id": alert_id} if alert_id else {}), "recommended_actions": actions,
    })


@router.get("/anomalies/insights")
def insights(
    request: Request,
    start_time: datetime,
    end_time: datetime,
    category: str | None = None,
    severity_min: float = 0.0,
) -> Response:
    state = state_of(request)
    start, end = as_utc(start_time), as_utc(end_time)
    if end <= start:
        return problem(400, "end_time must be after start_time")
    found = [
        a for a in _known_anomalies(state)
        if start <= a["timestamp"] < end and a["severity"] >= severity_min
        and (category is None or a["category"] == category)
    ]
    by_category: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for anomaly in found:
        by_category[anomaly["category"]] = by_category.get(anomaly["category"], 0) + 1
        label = _severity_label(anomaly["severity"])
        by_severity[label] = by_severity.get(label, 0) + 1
    top = sorted(found, key=lambda a: -a["severity"])[:10]
    return reply({
        "time_range": {"start": start.isoformat(), "end": end.isoformat()},
        "summary": {"total_anomalies": len(found), "by_category": by_category, "by_severity": by_severity},
        "top_anomalies": [
            {k: a[k] for k in ("anomaly_id", "type", "severity", "timestamp", "affected_requests", "model")
             if a.get(k) is not None}
            for a in top
        ],
        "patterns": [{
            "pattern_type": "recurring_cost_spike", "frequency": "daily", "time_of_day": "13:00-16:00",
            "correlation": {"correlated_with": "user_traffic_spike", "confidence": 0.87},
        }],
    })
