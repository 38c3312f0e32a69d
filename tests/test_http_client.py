"""The client core against the sandbox over loopback: retries, Retry-After, auth, errors."""

from __future__ import annotations

import httpx
import pytest

from optimizer.clients import RetryPolicy
from optimizer.clients.registry import RegistryClient
from optimizer.errors import AuthenticationError, PlatformRequestError, PlatformUnavailableError
from optimizer.sandbox import FaultSettings, SandboxServer
from optimizer.settings import SANDBOX_DEFAULT_TOKEN
from tests.conftest import closed_port_url


class SleepLog:
    """Records the waits the client asks for instead of waiting them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def registry(sandbox: SandboxServer, sleeps: SleepLog, *, attempts: int = 6, token: str = SANDBOX_DEFAULT_TOKEN) -> RegistryClient:
    return RegistryClient(
        f"{sandbox.url}/registry/api/v1",
        token,
        retry=RetryPolicy(max_attempts=attempts, backoff_s=0.2, max_backoff_s=5),
        sleep=sleeps,
    )


def requests_seen(sandbox: SandboxServer, route: str) -> int:
    return int(sandbox.state.request_counts[route])


def test_rate_limited_request_waits_as_told_then_succeeds(sandbox: SandboxServer) -> None:
    sandbox.state.faults.configure(FaultSettings(queued=[429, 429], retry_after_seconds=3))
    sleeps = SleepLog()
    with registry(sandbox, sleeps) as client:
        models = client.list_models()
    assert models.total == 5
    assert sleeps.waits == [3.0, 3.0]
    assert requests_seen(sandbox, "GET /registry/api/v1/models") == 3


def test_server_errors_are_retried_with_growing_jittered_backoff(sandbox: SandboxServer) -> None:
    sandbox.state.faults.configure(FaultSettings(queued=[500, 503, 502]))
    sleeps = SleepLog()
    with registry(sandbox, sleeps) as client:
        assert client.get_model("gpt-4o-2024-08-06").provider == "openai"
    assert len(sleeps.waits) == 3
    for attempt, wait in enumerate(sleeps.waits, start=1):
        assert 0 <= wait <= 0.2 * 2 ** (attempt - 1)


def test_persistent_failure_raises_unavailable_after_the_last_attempt(sandbox: SandboxServer) -> None:
    sandbox.state.faults.configure(FaultSettings(server_error_share=1.0))
    sleeps = SleepLog()
    with registry(sandbox, sleeps, attempts=4) as client, pytest.raises(PlatformUnavailableError, match="4 attempts"):
        client.list_models()
    assert requests_seen(sandbox, "GET /registry/api/v1/models") == 4
    assert len(sleeps.waits) == 3


def test_wrong_token_is_refused_without_retrying(sandbox: SandboxServer) -> None:
    sleeps = SleepLog()
    with registry(sandbox, sleeps, token="not-the-token") as client, pytest.raises(AuthenticationError) as caught:
        client.list_models()
    assert caught.value.status_code == 401
    assert sleeps.waits == []


def test_unknown_model_is_a_request_error_not_an_outage(sandbox: SandboxServer) -> None:
    with registry(sandbox, SleepLog()) as client, pytest.raises(PlatformRequestError) as caught:
        client.get_model("no-such-model")
    assert caught.value.status_code == 404


def test_unreachable_service_is_unavailable() -> None:
    sleeps = SleepLog()
    client = RegistryClient(closed_port_url("/registry/api/v1"), "t",
                            retry=RetryPolicy(max_attempts=3), sleep=sleeps)
    with client, pytest.raises(PlatformUnavailableError, match="ConnectError"):
        client.list_models()
    assert len(sleeps.waits) == 2


def test_retried_write_is_applied_once(sandbox: SandboxServer) -> None:
    """The same Idempotency-Key replays the first answer instead of writing again."""
    record = {
        "request_id": "req-x", "timestamp": "2026-11-24T10:00:00Z", "model": "gpt-4o-2024-08-06",
        "tokens": {"input": 10, "output": 5, "total": 15}, "cost_usd": 0.5,
        "context": {"team_id": "team-support"},
    }
    headers = {"Authorization": f"Bearer {SANDBOX_DEFAULT_TOKEN}", "Idempotency-Key": "k-1"}
    url = f"{sandbox.url}/governance/api/v1/costs/record"
    first = httpx.post(url, json=record, headers=headers)
    second = httpx.post(url, json=record, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["record_id"] == second.json()["record_id"]
    assert len(sandbox.state.cost_records) == 1


def test_slow_answers_time_out_and_count_as_unavailable(sandbox: SandboxServer) -> None:
    sandbox.state.faults.configure(FaultSettings(slow_share=1.0, slow_seconds=1.0))
    sleeps = SleepLog()
    client = RegistryClient(f"{sandbox.url}/registry/api/v1", SANDBOX_DEFAULT_TOKEN, timeout_s=0.2,
                            retry=RetryPolicy(max_attempts=2), sleep=sleeps)
    with client, pytest.raises(PlatformUnavailableError, match="ReadTimeout"):
        client.list_models()
    assert len(sleeps.waits) == 1
