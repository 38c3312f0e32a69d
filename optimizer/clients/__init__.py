"""Typed clients for the five platform services, all on one HTTP core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from optimizer.clients._http import RetryPolicy, ServiceClient
from optimizer.clients.governance import GovernanceClient
from optimizer.clients.observatory import ObservatoryClient
from optimizer.clients.orchestrator import OrchestratorClient
from optimizer.clients.registry import RegistryClient
from optimizer.clients.sentinel import SentinelClient
from optimizer.settings import Settings

ClientT = TypeVar("ClientT", bound=ServiceClient)


@dataclass
class PlatformClients:
    """One client per service, configured from the same settings."""

    observatory: ObservatoryClient
    governance: GovernanceClient
    registry: RegistryClient
    orchestrator: OrchestratorClient
    sentinel: SentinelClient

    @classmethod
    def from_settings(cls, settings: Settings) -> PlatformClients:
        token = settings.api_token.get_secret_value() or None
        retry = RetryPolicy(
            max_attempts=settings.http_max_attempts,
            backoff_s=settings.http_backoff_s,
            max_backoff_s=settings.http_max_backoff_s,
        )

        def make(kind: type[ClientT], url: str) -> ClientT:
            return kind(url, token, timeout_s=settings.http_timeout_s, retry=retry)

        return cls(
            observatory=make(ObservatoryClient, settings.observatory_url),
            governance=make(GovernanceClient, settings.governance_url),
            registry=make(RegistryClient, settings.registry_url),
            orchestrator=make(OrchestratorClient, settings.orchestrator_url),
            sentinel=make(SentinelClient, settings.sentinel_url),
        )

    def close(self) -> None:
        for client in (
            self.observatory, self.governance, self.registry, self.orchestrator, self.sentinel
        ):
            client.close()

    def __enter__(self) -> PlatformClients:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


__all__ = [
    "GovernanceClient",
    "ObservatoryClient",
    "OrchestratorClient",
    "PlatformClients",
    "RegistryClient",
    "RetryPolicy",
    "SentinelClient",
    "ServiceClient",
]
