"""Orchestrator: the routing configuration the optimizer proposes changes to."""

from __future__ import annotations

from optimizer.clients._http import ServiceClient
from optimizer.schemas.routing import (
    RoutingConfigApplied,
    RoutingConfigHistory,
    RoutingConfigState,
    RoutingConfigUpdate,
    StrategyRegistered,
    StrategyRegistration,
)


class OrchestratorClient(ServiceClient):
    service = "orchestrator"

    def routing(self) -> RoutingConfigState:
        return self.call("GET", "config/routing", RoutingConfigState)

    def update_routing(self, update: RoutingConfigUpdate) -> RoutingConfigApplied:
        return self.call("PUT", "config/routing", RoutingConfigApplied, json=update.to_wire())

    def routing_history(self) -> list[RoutingConfigState]:
        return self.call("GET", "config/routing/history", RoutingConfigHistory).versions

    def register_strategy(self, registration: StrategyRegistration) -> StrategyRegistered:
        """Tell the Orchestrator where to ask for the optimizer's strategies."""
        return self.call("POST", "optimization/strategies", StrategyRegistered, json=registration.to_wire())
