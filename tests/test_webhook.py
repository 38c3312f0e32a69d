"""The webhook receiver over loopback, with a real Prefect API: CloudEvents in every HTTP mode
start response flow runs, once per event, under concurrent load; bad input is refused."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from flows.respond import anomaly_response, budget_response
from optimizer._serving import BackgroundServer
from optimizer.webhook.app import ReceiverConfig, create_receiver
from optimizer.webhook.inbox import Inbox
from optimizer.webhook.starter import PrefectStarter

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]
TOKEN = "receiver-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALERT = {
    "alert_id": "alert-789", "severity": "high", "category": "performance", "alert_type": "latency_anomaly",
    "title": "Sustained latency increase detected for GPT-4o", "detection_time": "2026-11-25T10:15:30Z",
    "anomaly_details": {"metric": "gen_ai.client.operation.duration", "baseline_p95_ms": 2100,
                        "current_p95_ms": 6850, "affected_model": "gpt-4o-2024-08-06"},
    "recommended_actions": [{"action_type": "route_to_alternative", "priority": 1}],
}
BUDGET = {
    "alert_id": "alert-budget-456", "alert_type": "threshold_exceeded", "severity": "warning",
    "team_id": "team-marketing", "period": "monthly", "budget_limit_usd": 5000.0, "current_spend_usd": 4250.3,
    "utilization_percentage": 85.0, "threshold_percentage": 80.0,
}


def sentinel_event(event_id: str, data: dict[str, Any] | None = None) -> CloudEvent:
    return CloudEvent(attributes={"type": "io.llm-platform.sentinel.alert", "source": "/sentinel/anomaly-detector",
                                  "id": event_id, "datacontenttype": "application/json"}, data=data or ALERT)


def register_deployments() -> None:
    anomaly_response.to_deployment(name="anomaly-response").apply()
    budget_response.to_deployment(name="budget-response").apply()


@pytest.fixture
def receiver_inbox(tmp_path: Path) -> Path:
    return tmp_path / "inbox.sqlite"


@pytest.fixture
def receiver(receiver_inbox: Path) -> Iterator[BackgroundServer]:
    register_deployments()
    app = create_receiver(ReceiverConfig(token=TOKEN, max_body_bytes=64 * 1024, retry_seconds=0.5),
                          Inbox(receiver_inbox), PrefectStarter())
    with BackgroundServer(app, lifespan="on") as server:
        yield server


def post(receiver: BackgroundServer, message: ce_http.HTTPMessage, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{receiver.url}/events", content=message.body,
                      headers={**message.headers, **(AUTH if headers is None else headers)}, timeout=30)


async def _flow_run(flow_run_id: str) -> Any:
    async with get_client() as client:
        return await client.read_flow_run(UUID(flow_run_id))


def flow_run(flow_run_id: str) -> Any:
    return asyncio.run(_flow_run(flow_run_id))


async def _runs_of(deployment_name: str) -> int:
    async with get_client() as client:
        deployments = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name])))
        return await client.count_flow_runs(deployment_filter=DeploymentFilter(
            id={"any_": [d.id for d in deployments]}))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_an_alert_in_either_mode_starts_the_anomaly_response(receiver: BackgroundServer, mode: str) -> None:
    event = sentinel_event(f"alert-{mode}")
    message = ce_http.to_structured_event(event) if mode == "structured" else ce_http.to_binary_event(event)
    response = post(receiver, message)
    assert response.status_code == 202, response.text
    (accepted,) = response.json()["accepted"]
    assert accepted["id"] == f"alert-{mode}"
    run = flow_run(accepted["flow_run_id"])
    assert run.parameters["alert"]["alert_id"] == "alert-789"
    assert run.parameters["event_type"] == "io.llm-platform.sentinel.alert"
    assert run.parameters["event_id"] == f"alert-{mode}"


def test_a_batch_starts_one_run_per_actionable_event(receiver: BackgroundServer) -> None:
    budget = CloudEvent(attributes={"type": "io.llm-platform.governance.budget-alert", "id": "budget-1",
                                    "source": "/governance/cost-tracker"}, data=BUDGET)
    other = CloudEvent(attributes={"type": "io.llm-platform.registry.model-updated", "id": "reg-1",
                                   "source": "/registry"}, data={"model_id": "gpt-4o"})
    batch = [json.loads(ce_http.to_structured_event(e).body) for e in (sentinel_event("batch-1"), budget, other)]
    response = httpx.post(f"{receiver.url}/events", content=json.dumps(batch),
                          headers={"Content-Type": "application/cloudevents-batch+json", **AUTH})
    assert response.status_code == 202
    body = response.json()
    assert {a["id"] for a in body["accepted"]} == {"batch-1", "budget-1"}
    assert body["ignored"] == [{"id": "reg-1", "type": "io.llm-platform.registry.model-updated"}]
    budget_run = flow_run(next(a["flow_run_id"] for a in body["accepted"] if a["id"] == "budget-1"))
    assert budget_run.parameters["alert"]["team_id"] == "team-marketing"


def test_the_same_event_twice_starts_one_run(receiver: BackgroundServer) -> None:
    message = ce_http.to_structured_event(sentinel_event("once"))
    first, second = post(receiver, message), post(receiver, message)
    assert first.status_code == 202 and second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["duplicates"][0]["flow_run_id"] == first.json()["accepted"][0]["flow_run_id"]


def test_other_event_types_are_ignored(receiver: BackgroundServer) -> None:
    event = CloudEvent(attributes={"type": "io.llm-platform.request.routed", "id": "r1", "source": "/orchestrator"},
                       data={"request_id": "req-1"})
    response = post(receiver, ce_http.to_structured_event(event))
    assert response.status_code == 200 and response.json()["ignored"] is True


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}], ids=["no-token", "wrong-token"])
def test_without_the_token_nothing_is_accepted(receiver: BackgroundServer, headers: dict[str, str]) -> None:
    response = post(receiver, ce_http.to_structured_event(sentinel_event("unauthorised")), headers)
    assert response.status_code == 401
    assert post(receiver, ce_http.to_structured_event(sentinel_event("unauthorised"))).status_code == 202


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/cloudevents+json", "not a valid CloudEvent"),
        (json.dumps({"specversion": "1.0", "type": "x", "id": "1"}).encode(), "application/cloudevents+json", "source"),
        (json.dumps({"specversion": "1.0", "type": "io.llm-platform.sentinel.alert", "id": "1", "source": "/s",
                     "data": {"alert_id": "a"}}).encode(), "application/cloudevents+json", "data.severity"),
        (b"[]", "application/cloudevents-batch+json", "non-empty"),
        (b"hello", "text/plain", "neither"),
        (json.dumps({"specversion": "1.0", "type": "io.llm-platform.sentinel.alert", "source": "/s",
                     "data": ALERT}).encode(), "application/cloudevents+json", "required attribute(s) id"),
        (json.dumps({"type": "io.llm-platform.sentinel.alert", "id": "1", "source": "/s",
                     "data": ALERT}).encode(), "application/cloudevents+json", "required attribute(s) specversion"),
        (json.dumps({"specversion": "0.3", "type": "io.llm-platform.sentinel.alert", "id": "1", "source": "/s",
                     "data": ALERT}).encode(), "application/cloudevents+json", "only 1.0"),
        (json.dumps([{"specversion": "1.0", "type": "io.llm-platform.sentinel.alert", "source": "/s",
                      "data": ALERT}]).encode(), "application/cloudevents-batch+json", "batch item 0 lacks"),
    ],
    ids=["not-json", "no-source", "bad-data", "empty-batch", "wrong-content-type", "no-id", "no-specversion",
         "specversion-0.3", "batch-item-without-id"],
)
def test_malformed_events_are_refused_with_a_reason(
    receiver: BackgroundServer, body: bytes, content_type: str, reason: str
) -> None:
    response = httpx.post(f"{receiver.url}/events", content=body, headers={"Content-Type": content_type, **AUTH})
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_a_binary_event_without_its_id_header_is_refused(receiver: BackgroundServer) -> None:
    headers = {"ce-specversion": "1.0", "ce-type": "io.llm-platform.sentinel.alert", "ce-source": "/s",
               "Content-Type": "application/json", **AUTH}
    response = httpx.post(f"{receiver.url}/events", content=json.dumps(ALERT).encode(), headers=headers)
    assert response.status_code == 400 and "required attribute(s) id" in response.json()["error"]


def test_oversized_bodies_are_refused(receiver: BackgroundServer) -> None:
    huge = sentinel_event("huge", ALERT | {"description": "x" * 70_000})
    assert post(receiver, ce_http.to_structured_event(huge)).status_code == 413


def test_an_event_accepted_while_its_deployment_is_missing_starts_later(tmp_path: Path) -> None:
    app = create_receiver(ReceiverConfig(token=None, retry_seconds=0.3), Inbox(tmp_path / "inbox.sqlite"),
                          PrefectStarter())
    budget = CloudEvent(attributes={"type": "io.llm-platform.governance.budget-alert", "id": "early",
                                    "source": "/governance/cost-tracker"}, data=BUDGET)

    async def drop_deployment() -> None:
        async with get_client() as client:
            for deployment in await client.read_deployments():
                if deployment.name == "budget-response":
                    await client.delete_deployment(deployment.id)

    asyncio.run(drop_deployment())
    with BackgroundServer(app, lifespan="on") as server:
        response = post(server, ce_http.to_structured_event(budget), headers={})
        assert response.status_code == 202 and response.json()["accepted"][0]["flow_run_id"] is None
        register_deployments()
        inbox = Inbox(tmp_path / "inbox.sqlite")
        for _ in range(100):
            entry = inbox.get("/governance/cost-tracker", "early")
            if entry is not None and entry.flow_run_id:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert entry is not None and entry.flow_run_id
        assert flow_run(entry.flow_run_id).parameters["alert"]["team_id"] == "team-marketing"


def test_three_hundred_events_from_thirty_concurrent_senders_are_each_accepted_once(
    receiver: BackgroundServer, receiver_inbox: Path
) -> None:
    before = asyncio.run(_runs_of("anomaly-response"))

    def send(sender: int) -> list[int]:
        statuses = []
        with httpx.Client(timeout=60) as client:
            for n in range(10):
                message = ce_http.to_structured_event(sentinel_event(f"load-{sender}-{n}"))
                reply = client.post(f"{receiver.url}/events", content=message.body, headers={**message.headers, **AUTH})
                statuses.append(reply.status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = [s for batch in pool.map(send, range(30)) for s in batch]
    assert statuses == [202] * 300
    inbox = Inbox(receiver_inbox)
    assert inbox.count() == 300
    deadline = time.monotonic() + 120
    while inbox.unstarted() and time.monotonic() < deadline:  # runs not started before answering
        time.sleep(0.5)
    assert inbox.unstarted() == []
    assert asyncio.run(_runs_of("anomaly-response")) - before == 300


SECRET = "sentinel-shared-secret"
ANOMALY = {
    "alert_id": "9f1c2d3e-0000-4000-8000-000000000001", "timestamp": "2026-11-25T10:15:30Z",
    "service_name": "support-bot", "model": "gpt-4o-2024-08-06", "severity": "high",
    "anomaly_type": "latency_spike", "detection_method": "zscore", "confidence": 0.97,
    "details": {"metric": "latency_ms", "value": 6850.0, "baseline": 2100.0, "threshold": 4000.0,
                "deviation_sigma": 4.2, "additional": {}},
    "context": {"trace_id": None, "user_id": None, "region": "eu-west-1", "time_window": "5m",
                "sample_count": 412, "additional": {}},
    "root_cause": "provider latency", "remediation": ["route to an alternative model"], "related_alerts": [],
    "runbook_url": None,
}


def sentinel_webhook(anomaly: dict[str, Any] | None = None, event_type: str = "anomaly.detected",
                     secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """A webhook as Sentinel sends it: signed before the `signature` member is added, which the
    body then carries too, and the signature repeated in X-Sentinel-Signature."""
    payload = {"event_type": event_type, "timestamp": "2026-11-25T10:15:31Z", "data": anomaly or ANOMALY}
    unsigned = json.dumps(payload, separators=(",", ":")).encode()
    signature = hmac.new(secret.encode(), unsigned, hashlib.sha256).hexdigest()
    body = json.dumps(payload | {"signature": signature}, separators=(",", ":")).encode()
    return body, {"Content-Type": "application/json", "X-Sentinel-Signature": signature}


@pytest.fixture
def sentinel_receiver(tmp_path: Path) -> Iterator[BackgroundServer]:
    register_deployments()
    app = create_receiver(ReceiverConfig(token=TOKEN, retry_seconds=0.5, sentinel_secret=SECRET),
                          Inbox(tmp_path / "inbox.sqlite"), PrefectStarter())
    with BackgroundServer(app, lifespan="on") as server:
        yield server


def test_a_signed_sentinel_webhook_starts_the_anomaly_response_once(sentinel_receiver: BackgroundServer) -> None:
    body, headers = sentinel_webhook()
    first = httpx.post(f"{sentinel_receiver.url}/events", content=body, headers=headers, timeout=30)
    assert first.status_code == 202, first.text
    (accepted,) = first.json()["accepted"]
    assert accepted["id"] == ANOMALY["alert_id"] and accepted["source"] == "llm-sentinel"
    run = flow_run(accepted["flow_run_id"])
    assert run.parameters["event_type"] == "io.llm-platform.sentinel.alert"
    alert = run.parameters["alert"]
    assert alert["alert_type"] == "latency_spike" and alert["severity"] == "high"
    assert alert["anomaly_details"]["affected_model"] == "gpt-4o-2024-08-06"
    assert alert["anomaly_details"]["application_id"] == "support-bot"
    assert alert["anomaly_details"]["current_p95_ms"] == 6850.0
    replay = httpx.post(f"{sentinel_receiver.url}/events", content=body, headers=headers, timeout=30)
    assert replay.status_code == 200 and replay.json()["duplicates"][0]["flow_run_id"] == accepted["flow_run_id"]


def test_a_webhook_signed_over_its_whole_body_is_accepted_too(sentinel_receiver: BackgroundServer) -> None:
    body = json.dumps({"event_type": "anomaly.detected", "timestamp": "2026-11-25T10:16:00Z",
                       "data": ANOMALY | {"alert_id": "whole-body"}}).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = httpx.post(f"{sentinel_receiver.url}/events", content=body,
                          headers={"Content-Type": "application/json", "X-Sentinel-Signature": signature})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("tamper", ["signature", "body", "unsigned", "unsigned-with-bearer-token", "other-secret"])
def test_a_webhook_that_does_not_prove_its_sender_is_refused(
    sentinel_receiver: BackgroundServer, tamper: str
) -> None:
    body, headers = sentinel_webhook(secret="not-the-secret" if tamper == "other-secret" else SECRET)
    if tamper == "signature":
        headers["X-Sentinel-Signature"] = "0" * 64
    elif tamper == "body":
        body = body.replace(b"6850.0", b"9999.0")
    elif tamper == "unsigned":
        del headers["X-Sentinel-Signature"]
    elif tamper == "unsigned-with-bearer-token":  # the receiver's token is not Sentinel's proof
        del headers["X-Sentinel-Signature"]
        headers |= AUTH
    response = httpx.post(f"{sentinel_receiver.url}/events", content=body, headers=headers)
    assert response.status_code == 401


def test_without_a_configured_secret_sentinel_webhooks_are_refused(receiver: BackgroundServer) -> None:
    body, headers = sentinel_webhook()
    response = httpx.post(f"{receiver.url}/events", content=body, headers=headers)
    assert response.status_code == 401 and "no signing secret" in response.json()["error"]


def test_sentinel_webhooks_that_are_not_anomalies_are_ignored(sentinel_receiver: BackgroundServer) -> None:
    body, headers = sentinel_webhook(ANOMALY | {"alert_id": "resolved-1"}, event_type="anomaly.resolved")
    response = httpx.post(f"{sentinel_receiver.url}/events", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["ignored"] is True


def test_a_malformed_sentinel_webhook_is_refused_with_its_field(sentinel_receiver: BackgroundServer) -> None:
    body, headers = sentinel_webhook(ANOMALY | {"alert_id": "bad", "anomaly_type": "solar_flare"})
    response = httpx.post(f"{sentinel_receiver.url}/events", content=body, headers=headers)
    assert response.status_code == 400 and "anomaly_type" in response.json()["error"]
