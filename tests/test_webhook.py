"""The webhook receiver over loopback, with a real Prefect API: CloudEvents in every HTTP mode
start response flow runs, once per event, under concurrent load; bad input is refused. An
event is answered once it is in the inbox; its run starts afterwards, several at a time, and
one that cannot start is tried again with a growing backoff."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
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
from optimizer.clients import RetryPolicy
from optimizer.webhook.app import ReceiverConfig, create_receiver
from optimizer.webhook.deadlines import head_deadline_protocol
from optimizer.webhook.dispatcher import Dispatcher
from optimizer.webhook.inbox import Inbox
from optimizer.webhook.starter import FlowStarter, PrefectStarter

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


def serving(config: ReceiverConfig, inbox: Path, starter: FlowStarter | None = None) -> BackgroundServer:
    """The receiver on a loopback port, served as `webhook serve` serves it (its deadlines too)."""
    app = create_receiver(config, Inbox(inbox), starter or PrefectStarter())
    return BackgroundServer(app, lifespan="on", http=head_deadline_protocol(config.read_timeout_s))


def started_run(inbox: Path, source: str, event_id: str, timeout_s: float = 120) -> str:
    """The flow run id the receiver recorded for an event, once its run has started."""
    deadline = time.monotonic() + timeout_s
    while (entry := Inbox(inbox).get(source, event_id)) is None or entry.flow_run_id is None:
        assert time.monotonic() < deadline, f"no run started for {source} {event_id} within {timeout_s:.0f} s"
        time.sleep(0.1)
    return entry.flow_run_id


def drop_deployment(name: str) -> None:
    async def drop() -> None:
        async with get_client() as client:
            for deployment in await client.read_deployments():
                if deployment.name == name:
                    await client.delete_deployment(deployment.id)

    asyncio.run(drop())


QUICK_RETRIES = {"first_retry_s": 0.1, "max_retry_s": 0.5}


@pytest.fixture
def receiver_inbox(tmp_path: Path) -> Path:
    return tmp_path / "inbox.sqlite"


@pytest.fixture
def receiver(receiver_inbox: Path) -> Iterator[BackgroundServer]:
    register_deployments()
    with serving(ReceiverConfig(token=TOKEN, max_body_bytes=64 * 1024, **QUICK_RETRIES), receiver_inbox) as server:
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


def run_count(deployment_name: str) -> int:
    """Flow runs of the deployments of that name, on the test API."""
    return asyncio.run(_runs_of(deployment_name))


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_an_alert_in_either_mode_starts_the_anomaly_response(
    receiver: BackgroundServer, receiver_inbox: Path, mode: str
) -> None:
    event = sentinel_event(f"alert-{mode}")
    message = ce_http.to_structured_event(event) if mode == "structured" else ce_http.to_binary_event(event)
    response = post(receiver, message)
    assert response.status_code == 202, response.text
    (accepted,) = response.json()["accepted"]
    assert accepted == {"id": f"alert-{mode}", "source": "/sentinel/anomaly-detector", "flow_run_id": None}
    run = flow_run(started_run(receiver_inbox, accepted["source"], accepted["id"]))
    assert run.parameters["alert"]["alert_id"] == "alert-789"
    assert run.parameters["event_type"] == "io.llm-platform.sentinel.alert"
    assert run.parameters["event_id"] == f"alert-{mode}"


def test_a_batch_starts_one_run_per_actionable_event(receiver: BackgroundServer, receiver_inbox: Path) -> None:
    budget = CloudEvent(attributes={"type": "io.llm-platform.governance.budget-alert", "id": "budget-1",
                                    "source": "/governance/cost-tracker"}, data=BUDGET)
    other = CloudEvent(attributes={"type": "io.llm-platform.request.routed", "id": "req-1",
                                   "source": "/orchestrator/router"}, data={"request_id": "req-abc123"})
    batch = [json.loads(ce_http.to_structured_event(e).body) for e in (sentinel_event("batch-1"), budget, other)]
    response = httpx.post(f"{receiver.url}/events", content=json.dumps(batch),
                          headers={"Content-Type": "application/cloudevents-batch+json", **AUTH})
    assert response.status_code == 202
    body = response.json()
    assert {a["id"] for a in body["accepted"]} == {"batch-1", "budget-1"}
    assert body["ignored"] == [{"id": "req-1", "type": "io.llm-platform.request.routed", "reason": (
        "per-request traffic: the optimizer reads requests in bulk from the Observatory's telemetry, "
        "not one event at a time")}]
    budget_run = flow_run(started_run(receiver_inbox, "/governance/cost-tracker", "budget-1"))
    assert budget_run.parameters["alert"]["team_id"] == "team-marketing"


def test_the_same_event_twice_starts_one_run(receiver: BackgroundServer, receiver_inbox: Path) -> None:
    message = ce_http.to_structured_event(sentinel_event("once"))
    first, second = post(receiver, message), post(receiver, message)
    assert first.status_code == 202 and second.status_code == 200
    assert second.json()["duplicate"] is True
    run_id = started_run(receiver_inbox, "/sentinel/anomaly-detector", "once")
    assert second.json()["duplicates"][0]["flow_run_id"] in (None, run_id)  # null until the run has started
    third = post(receiver, message)
    assert third.status_code == 200 and third.json()["duplicates"][0]["flow_run_id"] == run_id


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
    budget = CloudEvent(attributes={"type": "io.llm-platform.governance.budget-alert", "id": "early",
                                    "source": "/governance/cost-tracker"}, data=BUDGET)
    drop_deployment("budget-response")
    with serving(ReceiverConfig(token=None, **QUICK_RETRIES), tmp_path / "inbox.sqlite") as server:
        response = post(server, ce_http.to_structured_event(budget), headers={})
        assert response.status_code == 202 and response.json()["accepted"][0]["flow_run_id"] is None
        register_deployments()
        run_id = started_run(tmp_path / "inbox.sqlite", "/governance/cost-tracker", "early", timeout_s=30)
        assert flow_run(run_id).parameters["alert"]["team_id"] == "team-marketing"


SENDERS, EVENTS_EACH = 20, 5
STALL_S = 90  # the runs' starting may crawl on a busy machine; it must not stop


def test_a_hundred_events_from_twenty_concurrent_senders_are_each_accepted_once(
    receiver: BackgroundServer, receiver_inbox: Path
) -> None:
    before = run_count("anomaly-response")

    def send(sender: int) -> list[int]:
        statuses = []
        with httpx.Client(timeout=60) as client:
            for n in range(EVENTS_EACH):
                message = ce_http.to_structured_event(sentinel_event(f"load-{sender}-{n}"))
                reply = client.post(f"{receiver.url}/events", content=message.body, headers={**message.headers, **AUTH})
                statuses.append(reply.status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        statuses = [s for batch in pool.map(send, range(SENDERS)) for s in batch]
    events = SENDERS * EVENTS_EACH
    assert statuses == [202] * events
    inbox = Inbox(receiver_inbox)
    assert inbox.count() == events
    waiting, progress_at = len(inbox.unstarted()), time.monotonic()
    while waiting:  # runs not started before answering, each started since
        time.sleep(0.5)
        now_waiting = len(inbox.unstarted())
        if now_waiting < waiting:
            waiting, progress_at = now_waiting, time.monotonic()
        assert time.monotonic() - progress_at < STALL_S, f"{waiting} runs not started, none for {STALL_S} s"
    assert run_count("anomaly-response") - before == events


class WatchedStarter:
    """The real starter, watched: how many starts are in progress at once, when each was
    tried, and (while `held`) starts wait before reaching Prefect."""

    def __init__(self) -> None:
        self._starter = PrefectStarter()
        self.held = threading.Event()
        self.in_progress = 0
        self.most_at_once = 0
        self.tried_at: list[float] = []

    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        self.tried_at.append(time.monotonic())
        self.in_progress += 1
        self.most_at_once = max(self.most_at_once, self.in_progress)
        try:
            while self.held.is_set():
                await asyncio.sleep(0.02)
            return await self._starter.start(deployment, parameters, idempotency_key)
        finally:
            self.in_progress -= 1

    async def close(self) -> None:
        await self._starter.close()


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.05)


def test_events_are_answered_before_their_runs_start_and_runs_start_a_few_at_a_time(receiver_inbox: Path) -> None:
    """While no run can reach Prefect, a batch is still answered at once; then exactly
    `start_concurrency` starts are in progress together, never more, and every event gets
    its one run."""
    register_deployments()
    before = run_count("anomaly-response")
    starter = WatchedStarter()
    starter.held.set()
    batch = [json.loads(ce_http.to_structured_event(sentinel_event(f"together-{n}")).body) for n in range(12)]
    with serving(ReceiverConfig(token=None, start_concurrency=4), receiver_inbox, starter) as server:
        # The receiver this replaced waited up to 5 s per event for its run: a minute for this batch.
        response = httpx.post(f"{server.url}/events", content=json.dumps(batch), timeout=30,
                              headers={"Content-Type": "application/cloudevents-batch+json"})
        assert response.status_code == 202
        assert [a["flow_run_id"] for a in response.json()["accepted"]] == [None] * 12
        wait_until(lambda: starter.in_progress == 4, "four starts in progress together")
        starter.held.clear()
        runs = {started_run(receiver_inbox, "/sentinel/anomaly-detector", f"together-{n}") for n in range(12)}
    assert starter.most_at_once == 4 and len(runs) == 12
    assert run_count("anomaly-response") - before == 12


def test_a_run_that_cannot_start_is_tried_again_after_a_growing_backoff(tmp_path: Path) -> None:
    """With the deployment missing, each attempt comes no sooner than the backoff drawn for it,
    which doubles (with jitter) up to its ceiling; once the deployment exists the run starts."""
    drop_deployment("budget-response")
    inbox = Inbox(tmp_path / "inbox.sqlite")
    event = {"specversion": "1.0", "id": "patient", "source": "/governance/cost-tracker",
             "type": "io.llm-platform.governance.budget-alert", "data": BUDGET}
    _, entry = inbox.accept(event, "budget-response/budget-response", {"alert": BUDGET, "event_id": "patient",
                                                                       "event_type": event["type"]})
    retry = RetryPolicy(backoff_s=0.2, max_backoff_s=1.6)
    # The draws the dispatcher makes with its own Random(178): each near its ceiling (0.2 s
    # doubling to 1.6 s), so a backoff that did not grow could not leave these gaps.
    delays = [retry.delay(attempt, None, planned) for planned in [random.Random(178)] for attempt in range(1, 6)]
    assert delays[0] < 0.2 and delays[-1] > 1.0
    starter = WatchedStarter()

    async def scenario() -> str | None:
        dispatcher = Dispatcher(inbox, starter, concurrency=2, retry=retry, rng=random.Random(178))
        running = asyncio.create_task(dispatcher.run())
        while len(starter.tried_at) < 6:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(register_deployments)
        while (started := inbox.get(entry.source, entry.id)) is not None and started.flow_run_id is None:
            await asyncio.sleep(0.05)
        running.cancel()
        return started.flow_run_id if started else None

    run_id = asyncio.run(asyncio.wait_for(scenario(), timeout=120))
    gaps = [later - earlier for earlier, later in zip(starter.tried_at[:5], starter.tried_at[1:6], strict=True)]
    assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=True)), (gaps, delays)
    assert run_id is not None and flow_run(run_id).parameters["alert"]["team_id"] == "team-marketing"


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
def sentinel_receiver(receiver_inbox: Path) -> Iterator[BackgroundServer]:
    register_deployments()
    with serving(ReceiverConfig(token=TOKEN, sentinel_secret=SECRET, **QUICK_RETRIES), receiver_inbox) as server:
        yield server


def test_a_signed_sentinel_webhook_starts_the_anomaly_response_once(
    sentinel_receiver: BackgroundServer, receiver_inbox: Path
) -> None:
    body, headers = sentinel_webhook()
    first = httpx.post(f"{sentinel_receiver.url}/events", content=body, headers=headers, timeout=30)
    assert first.status_code == 202, first.text
    (accepted,) = first.json()["accepted"]
    assert accepted["id"] == ANOMALY["alert_id"] and accepted["source"] == "llm-sentinel"
    run_id = started_run(receiver_inbox, "llm-sentinel", accepted["id"])
    run = flow_run(run_id)
    assert run.parameters["event_type"] == "io.llm-platform.sentinel.alert"
    alert = run.parameters["alert"]
    assert alert["alert_type"] == "latency_spike" and alert["severity"] == "high"
    assert alert["anomaly_details"]["affected_model"] == "gpt-4o-2024-08-06"
    assert alert["anomaly_details"]["application_id"] == "support-bot"
    assert alert["anomaly_details"]["current_p95_ms"] == 6850.0
    replay = httpx.post(f"{sentinel_receiver.url}/events", content=body, headers=headers, timeout=30)
    assert replay.status_code == 200 and replay.json()["duplicates"][0]["flow_run_id"] == run_id


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
