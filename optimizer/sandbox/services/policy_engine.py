"""The upstream policy engine's `POST /api/evaluate`, deciding over Governance's policies.

It answers as the service does: the decision nested under `decision`, names in camelCase.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from optimizer.sandbox.services._common import problem, reply, state_of
from optimizer.sandbox.services.governance import evaluate_policies
from optimizer.schemas.governance import LLMRequestSpec, PolicyEvaluationRequest, RequestContext

router = APIRouter(prefix="/policy-engine/api", tags=["policy engine (upstream)"])


def _id(part: Any) -> str | None:
    return str(part["id"]) if isinstance(part, dict) and part.get("id") else None


@router.post("/evaluate")
async def evaluate(request: Request) -> Response:
    started = time.perf_counter()
    try:
        body = await request.json()
    except ValueError:
        return problem(400, "body is not JSON")
    context = body.get("context") if isinstance(body, dict) else None
    if not isinstance(context, dict) or not isinstance(context.get("llm"), dict) or not context["llm"].get("model"):
        return reply({"error": "MISSING_CONTEXT", "message": "Evaluation context with llm.model is required"}, 400)
    llm, call = context["llm"], context.get("request") or {}
    verdict = evaluate_policies(state_of(request), PolicyEvaluationRequest(
        request_id=str(call.get("id") or uuid.uuid4()),
        context=RequestContext(user_id=_id(context.get("user")), team_id=_id(context.get("team")),
                               application_id=_id(context.get("project")), environment=call.get("environment")),
        llm_request=LLMRequestSpec(model=str(llm["model"])),
    ))
    blocking = [v for v in verdict.violations if v.severity == "blocking"]
    warning = [v for v in verdict.violations if v.severity != "blocking"]
    matched = blocking or warning
    decision = "deny" if blocking else "warn" if warning else "allow"
    return reply({
        "requestId": str(uuid.uuid4()),
        "decision": {
            "decision": decision,
            "allowed": not blocking,
            "reason": "; ".join(f"{v.policy_name}: {v.description}" for v in matched) or "no policy matched",
            "matchedPolicies": [v.policy_id for v in matched],
            "matchedRules": [f"{v.policy_id}:{v.violation_type}" for v in matched],
            "modifications": None,
        },
        "evaluationTimeMs": round(1000 * (time.perf_counter() - started), 2),
        "dryRun": bool(body.get("dryRun", False)),
    })
