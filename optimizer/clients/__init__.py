"""Typed clients for the platform services, all on one HTTP core.

Where a service exists in two shapes (the platform specification's and the upstream
service's), `PlatformClients` answers the optimizer's question in whichever the settings
name: spend from Governance or from the Observatory's analytics API, policy verdicts from
Governance or from the policy engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from optimizer.clients._http import RetryPolicy, ServiceClient, Style, StyleChoice
from optimizer.clients.governance import GovernanceClient
from optimizer.clients.observatory import ObservatoryClient
from optimizer.clients.orchestrator import OrchestratorClient
from optimizer.clients.policy_engine import PolicyEngineClient
from optimizer.clients.registry import RegistryClient
from optimizer.clients.sentinel import SentinelClient
from optimizer.errors import PlatformRequestError, PlatformUnavailableError
from optimizer.schemas.governance import (
    CostSummary,
    PolicyEngineRequest,
    PolicyEvaluation,
    PolicyEvaluationRequest,
)
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
    policy_engine: PolicyEngineClient
    policy_style: StyleChoice

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

        policy_engine = make(PolicyEngineClient, settings.policy_engine_url)

        def detect_policy_style() -> Style:
            """Upstream if the policy engine answers a dry run, else Governance's evaluation."""
            probe = PolicyEngineRequest.model_validate({"context": {"llm": {"model": "probe"}}, "dryRun": True})
            try:
                policy_engine.evaluate(probe, attempts=1)
            except (PlatformRequestError, PlatformUnavailableError):
                return "spec"
            return "upstream"

        return cls(
            observatory=make(ObservatoryClient, settings.observatory_url).speaking(settings.observatory_api_style),
            governance=make(GovernanceClient, settings.governance_url),
            registry=make(RegistryClient, settings.registry_url),
            orchestrator=make(OrchestratorClient, settings.orchestrator_url),
            sentinel=make(SentinelClient, settings.sentinel_url).speaking(settings.sentinel_api_style),
            policy_engine=policy_engine,
            policy_style=StyleChoice("policy engine", settings.policy_api_style, detect_policy_style),
        )

    def cost_summary(
        self, first_day: date, last_day: date, group_by: Sequence[str] = ("team", "application", "model", "environment")
    ) -> CostSummary:
        """Spend over whole days, both inclusive: Governance's summary, or the Observatory's
        where it speaks the analytics API (which has no team or application breakdown)."""
        if self.observatory.style.upstream:
            return self.observatory.cost_summary_upstream(first_day, last_day).as_cost_summary(first_day, last_day)
        return self.governance.cost_summary(first_day, last_day, group_by=group_by)

    def evaluate_policy(self, request: PolicyEvaluationRequest, provider: str | None = None) -> PolicyEvaluation:
        """Governance's verdict on an LLM call, or the policy engine's in Governance's terms."""
        if self.policy_style.upstream:
            decision = self.policy_engine.evaluate(PolicyEngineRequest.for_request(request, provider))
            return decision.as_evaluation(request.request_id)
        return self.governance.evaluate(request)

    def close(self) -> None:
        for client in (
            self.observatory, self.governance, self.registry, self.orchestrator, self.sentinel, self.policy_engine
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
    "PolicyEngineClient",
    "RegistryClient",
    "RetryPolicy",
    "SentinelClient",
    "ServiceClient",
]
