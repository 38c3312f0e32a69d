"""What lets a burst of webhook events get its flow runs quickly on a local Prefect server:
the starter sends concurrent starts to Prefect in batches, one request at a time, resending
what a batch refused; the embedded server runs without its late-runs service. (How quickly is
measured by `python -m bench.receiver`, not here.)"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import Settings

from flows.respond import anomaly_response
from optimizer import embedded_prefect
from optimizer.webhook.routes import ANOMALY_RESPONSE
from optimizer.webhook.starter import REFUSALS_RESENT, PrefectStarter, RunNotCreatedError

ALERT = {"alert_id": "burst-alert", "severity": "high", "category": "performance", "alert_type": "latency_anomaly"}


def alert_parameters(event_id: str) -> dict[str, Any]:
    return {"alert": ALERT, "event_type": "io.llm-platform.sentinel.alert", "event_id": event_id}


async def existing(run_ids: list[str]) -> set[str]:
    async with get_client() as client:
        return {str(run.id) for run in await client.read_flow_runs(limit=len(run_ids) + 1, flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[UUID(run_id) for run_id in run_ids])))}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_concurrent_starts_reach_prefect_in_batches_each_with_its_own_run() -> None:
    """30 starts at once are 3 requests of 10; each start gets its own run, except that the
    same idempotency key twice in a batch is one run."""
    anomaly_response.to_deployment(name="anomaly-response").apply()

    async def burst() -> tuple[list[str], int]:
        starter = PrefectStarter(batch=10)
        try:
            keys = [f"/bench/burst:b-{n}" for n in range(29)] + ["/bench/burst:b-0"]
            runs = await asyncio.gather(*(starter.start(ANOMALY_RESPONSE, alert_parameters(key), key)
                                          for key in keys))
            return runs, starter.requests
        finally:
            await starter.close()

    runs, requests = asyncio.run(burst())
    assert requests == 3
    assert runs[-1] == runs[0] and len(set(runs)) == 29
    assert asyncio.run(existing(runs)) == set(runs)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_run_a_batch_refuses_is_resent_then_fails_alone() -> None:
    """Parameters that do not fit the deployment's schema: Prefect refuses that run within its
    batch and creates the others; the refused one is sent again a few times, then its start
    fails (the dispatcher's backoff takes over), and no run of it exists."""
    anomaly_response.to_deployment(name="anomaly-response").apply()

    async def batch() -> tuple[list[str | BaseException], int]:
        starter = PrefectStarter()
        try:
            outcomes = await asyncio.gather(
                starter.start(ANOMALY_RESPONSE, alert_parameters("good-1"), "/bench/refused:good-1"),
                starter.start(ANOMALY_RESPONSE, {"alert": "not an object", "event_id": "bad"}, "/bench/refused:bad"),
                starter.start(ANOMALY_RESPONSE, alert_parameters("good-2"), "/bench/refused:good-2"),
                return_exceptions=True)
            return outcomes, starter.requests
        finally:
            await starter.close()

    (good_1, bad, good_2), requests = asyncio.run(batch())
    assert isinstance(bad, RunNotCreatedError) and "alert" in str(bad)
    assert isinstance(good_1, str) and isinstance(good_2, str)
    assert asyncio.run(existing([good_1, good_2])) == {good_1, good_2}
    assert requests == 1 + REFUSALS_RESENT


def test_the_embedded_prefect_server_runs_without_its_late_runs_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make serve`'s server (and a flow's temporary one) get the setting from `prepare`, under
    the name Prefect reads; a user's own value wins."""
    environ = {"PREFECT_API_URL": "http://127.0.0.1:1/api"}  # nothing to migrate
    embedded_prefect.prepare(environ)
    assert environ["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] == "false"
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED", environ["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"])
    assert Settings().server.services.late_runs.enabled is False

    chosen = {"PREFECT_API_URL": "http://127.0.0.1:1/api", "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "true"}
    embedded_prefect.prepare(chosen)
    assert chosen["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] == "true"
