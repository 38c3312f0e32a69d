"""The upstream policy engine: `POST /api/evaluate`, a decision about one LLM call's context."""

from __future__ import annotations

from optimizer.clients._http import ServiceClient
from optimizer.schemas.governance import PolicyDecision, PolicyEngineRequest


class PolicyEngineClient(ServiceClient):
    service = "policy-engine"

    def evaluate(self, request: PolicyEngineRequest, *, attempts: int | None = None) -> PolicyDecision:
        response = self.request("POST", "evaluate", json=request.to_wire(), attempts=attempts)
        return self.parse(response, PolicyDecision, "POST evaluate")
