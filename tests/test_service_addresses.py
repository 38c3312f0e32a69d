"""Where the bundled services listen comes from settings, and each can be moved or replaced
on its own: the platform URLs follow the sandbox's address unless set one by one."""

from __future__ import annotations

import os

import pytest
from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY, temporary_settings

from deployments.runner import runner_poll_seconds
from optimizer.settings import Settings, sandbox_endpoints


@pytest.fixture(autouse=True)
def no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("AUTO_OPTIMIZER_"):
            monkeypatch.delenv(name)


def test_platform_urls_follow_the_sandbox_wherever_its_settings_put_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTO_OPTIMIZER_SANDBOX_PORT", "9123")
    settings = Settings()
    assert settings.sandbox_url == "http://127.0.0.1:9123"
    assert settings.observatory_url == "http://127.0.0.1:9123/observatory/api/v1"
    assert settings.events_url == "http://127.0.0.1:9123/events"
    assert settings.policy_engine_url == "http://127.0.0.1:9123/policy-engine/api"
    assert settings.uses_sandbox()


def test_one_service_set_elsewhere_leaves_the_others_on_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTO_OPTIMIZER_OBSERVATORY_URL", "https://observatory.example/api/v1")
    settings = Settings()
    assert settings.observatory_url == "https://observatory.example/api/v1"
    assert settings.registry_url == "http://127.0.0.1:8700/registry/api/v1"
    assert settings.uses_sandbox(), "the other services still need the sandbox"


def test_the_sandbox_is_not_needed_once_every_url_points_elsewhere() -> None:
    assert not Settings(**sandbox_endpoints("https://platform.example")).uses_sandbox()
    moved = Settings(sandbox_host="::1", sandbox_port=9000, **sandbox_endpoints("http://127.0.0.1:8700"))
    assert moved.sandbox_url == "http://[::1]:9000" and not moved.uses_sandbox()


def test_the_receiver_listens_where_its_settings_say(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTO_OPTIMIZER_WEBHOOK_HOST", "0.0.0.0")
    monkeypatch.setenv("AUTO_OPTIMIZER_WEBHOOK_PORT", "9710")
    monkeypatch.setenv("AUTO_OPTIMIZER_SERVE_RECEIVER", "false")
    settings = Settings()
    assert settings.webhook_url == "http://0.0.0.0:9710" and not settings.serve_receiver


def test_the_runner_polls_for_runs_every_two_seconds_unless_prefect_is_told_otherwise() -> None:
    """A run started from the UI or by the receiver is picked up within ~2 s, not Prefect's 10 s."""
    assert runner_poll_seconds() == 2
    with temporary_settings({PREFECT_RUNNER_POLL_FREQUENCY: 15}):
        assert runner_poll_seconds() == 15
