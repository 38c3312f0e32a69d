"""The Registry: the model catalog, experiments and recommendations."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query, Request, Response

from optimizer.sandbox.services._common import problem, reply, split_list, state_of
from optimizer.schemas.registry import (
    Compliance,
    EstimatedImpact,
    ExperimentRecorded,
    ModelMatch,
    ModelProfile,
    ModelSearchRequest,
    Recommendation,
    RecommendationRequest,
    StoredExperiment,
)

router = APIRouter(prefix="/registry/api/v1", tags=["registry"])
REASONING_RANK = {"basic": 0, "intermediate": 1, "advanced": 2}
# A typical request for per-request estimates: 1,000 tokens in, 300 out.
TYPICAL_PROMPT, TYPICAL_COMPLETION = 1000, 300


def _quality(profile: ModelProfile) -> float | None:
    scores = profile.performance_characteristics.quality_scores
    return scores.get("mmlu_score") or next(iter(scores.values()), None)


def _complies(compliance: Compliance, need: str) -> bool:
    """`gdpr` and `hipaa` by the profile's flags, anything else by its certifications."""
    flags = {"gdpr": compliance.gdpr_compliant, "hipaa": compliance.hipaa_eligible}
    if need.lower() in flags:
        return flags[need.lower()]
    return need.upper() in {c.upper() for c in compliance.certifications}


def _summary(profile: ModelProfile) -> dict[str, object]:
    return {
        "model_id": profile.model_id,
        "model_name": profile.model_name,
        "provider": profile.provider,
        "status": profile.status,
        "capabilities_summary": {
            "context_window": profile.capabilities.context_window,
            "features": profile.capabilities.supported_features,
        },
        "cost_summary": {
            "input_cost_per_1k": profile.cost_structure.input_cost_per_1k_tokens,
            "output_cost_per_1k": profile.cost_structure.output_cost_per_1k_tokens,
        },
        "performance_summary": {
            "p95_latency_ms": profile.performance_characteristics.latency.p95_ms,
            "quality_score": _quality(profile),
        },
    }


@router.get("/models")
def list_models(
    request: Request,
    status: str | None = None,
    provider: str | None = None,
    capability: list[str] = Query(default=[]),  # noqa: B008
    min_quality_score: float | None = None,
    max_cost_per_1k_tokens: float | None = None,
    tags: str | None = None,
) -> Response:
    state = state_of(request)
    wanted_tags = split_list([tags]) if tags else []
    models = []
    for profile in state.catalog.values():
        quality = _quality(profile)
        if (
            (status and profile.status != status)
            or (provider and profile.provider != provider)
            or any(c not in profile.capabilities.supported_features for c in capability)
            or (min_quality_score is not None and (quality or 0) < min_quality_score)
            or (max_cost_per_1k_tokens is not None
                and profile.cost_structure.input_cost_per_1k_tokens > max_cost_per_1k_tokens)
            or any(t not in profile.metadata.get("tags", []) for t in wanted_tags)
        ):
            continue
        models.append(_summary(profile))
    applied = {
        k: v for k, v in {
            "status": status, "provider": provider, "capability": capability or None,
            "min_quality_score": min_quality_score, "max_cost_per_1k_tokens": max_cost_per_1k_tokens,
            "tags": wanted_tags or None,
        }.items() if v is not None
    }
    return reply({"total": len(models), "models": models, "filters_applied": applied})


@router.get("/models/{model_id}")
def get_model(model_id: str, request: Request) -> Response:
    profile = state_of(request).catalog.get(model_id)
    if profile is None:
        return problem(404, f"model {model_id} not found")
    return reply(profile.model_dump(mode="json"))


@router.post("/models/search")
def search_models(body: ModelSearchRequest, request: Request) -> Response:
    state = state_of(request)
    needs, limits, prefs = body.required_capabilities, body.constraints, body.preferences
    candidates = []
    for profile in state.catalog.values():
        caps = profile.capabilities
        cost = profile.cost_structure.cost_usd(TYPICAL_PROMPT, TYPICAL_COMPLETION)
        p95 = profile.performance_characteristics.latency.p95_ms
        compliance = profile.compliance
        regions = profile.deployment_info.regions if profile.deployment_info else []
        if (
            profile.status != "active"
            or profile.provider in prefs.exclude_providers
            or (needs.min_context_window and caps.context_window < needs.min_context_window)
            or any(f not in caps.supported_features for f in needs.features)
            or (needs.reasoning_capability and REASONING_RANK.get(caps.reasoning_capability or "basic", 0)
                < REASONING_RANK.get(needs.reasoning_capability, 0))
            or (limits.max_cost_per_request_usd is not None and cost > limits.max_cost_per_request_usd)
            or (limits.max_latency_p95_ms is not None and p95 > limits.max_latency_p95_ms)
            or any(not _complies(compliance, need) for need in limits.required_compliance)
            or (limits.data_residency and limits.data_residency.upper()
                not in {o.upper() for o in compliance.data_residency_options})
            or (limits.allowed_regions and not set(limits.allowed_regions) & set(regions))
        ):
            continue
        candidates.append((profile, cost, p95))
    if not candidates:
        return reply({"matches": [], "total_matches": 0})
    worst_cost = max(c for _, c, _ in candidates)
    worst_p95 = max(p for _, _, p in candidates)
    matches = []
    for profile, cost, p95 in candidates:
        scores = {
            "cost": 1 - 0.5 * cost / worst_cost,
            "latency": 1 - 0.5 * p95 / worst_p95,
            "quality": _quality(profile) or 0.5,
        }
        reasons = ["Meets all required capabilities"]
        if limits.max_cost_per_request_usd:
            reasons.append(f"{100 * (1 - cost / limits.max_cost_per_request_usd):.0f}% lower cost than requested maximum")
        if limits.max_latency_p95_ms:
            reasons.append(f"{100 * (1 - p95 / limits.max_latency_p95_ms):.0f}% faster than latency constraint")
        if limits.required_compliance:
            reasons.append(f"Meets {', '.join(limits.required_compliance)} compliance")
        if limits.data_residency:
            reasons.append(f"Offers {limits.data_residency.upper()} data residency")
        matches.append(ModelMatch(
            model_id=profile.model_id, match_score=round(scores.get(prefs.optimize_for, scores["cost"]), 3),
            match_reasons=reasons, estimated_cost_per_request=round(cost, 6), estimated_latency_p95_ms=p95,
        ))
    matches.sort(key=lambda m: -m.match_score)
    return reply({"matches": [m.to_wire() for m in matches], "total_matches": len(matches)})


@router.post("/experiments")
def record_experiment(body: StoredExperiment, request: Request) -> Response:
    state = state_of(request)
    with state.lock:
        state.experiments[body.experiment_id] = body
        if body.status != "running":  # a concluded experiment enrols no more requests
            state.traffic.end_experiment(body.experiment_id, state.now())
    recorded = ExperimentRecorded(experiment_id=body.experiment_id, status="recorded", created_at=state.now())
    return reply(recorded, 201)


@router.get("/experiments")
def list_experiments(request: Request, status: str | None = None, limit: int = 50) -> Response:
    experiments = [
        e for e in state_of(request).experiments.values() if status is None or e.status == status
    ][: max(1, min(limit, 500))]
    return reply({"total": len(experiments), "experiments": [e.model_dump(mode="json") for e in experiments]})


@router.post("/recommendations")
def recommend(body: RecommendationRequest, request: Request) -> Response:
    """Catalog-based suggestions: a cheaper primary in a cascade, and compression of long prompts."""
    state = state_of(request)
    current = body.current_configuration
    profile = state.catalog.get(current.model)
    if profile is None:
        return problem(404, f"model {current.model} not found")
    prices = profile.cost_structure
    per_request = prices.cost_usd(round(current.average_prompt_tokens), round(current.average_completion_tokens))
    recommendations = []
    cheaper = sorted(
        (p for p in state.catalog.values()
         if p.model_id != profile.model_id and p.provider == profile.provider and p.status == "active"
         and p.cost_structure.cost_usd(1000, 300) < prices.cost_usd(1000, 300)),
        key=lambda p: p.cost_structure.cost_usd(1000, 300),
    )
    escalation_rate = 0.2
    if cheaper:
        primary = cheaper[0].cost_structure.cost_usd(
            round(current.average_prompt_tokens), round(current.average_completion_tokens))
        cascade = primary + escalation_rate * per_request
        reduction = 1 - cascade / per_request
        recommendations.append(Recommendation(
            recommendation_id="rec-cascade", type="model_cascade",
            description=f"Implement model cascading with {cheaper[0].model_id} as primary",
            estimated_impact=EstimatedImpact(
                cost_reduction_percentage=round(100 * reduction, 1),
                cost_savings_daily_usd=round(current.current_daily_cost_usd * reduction, 2),
                quality_impact=-0.03, latency_impact_ms=50,
            ),
            implementation={
                "primary_model": cheaper[0].model_id, "escalation_model": profile.model_id,
                "escalation_criteria": {"confidence_threshold": 0.8},
                "estimated_escalation_rate": escalation_rate,
            },
            confidence=0.6,
        ))
    if current.average_prompt_tokens > 500:
        share = prices.cost_usd(round(current.average_prompt_tokens), 0) / per_request if per_request else 0
        reduction = 0.5 * share
        recommendations.append(Recommendation(
            recommendation_id="rec-compression", type="prompt_compression",
            description="Enable prompt compression for requests >500 tokens",
            estimated_impact=EstimatedImpact(
                cost_reduction_percentage=round(100 * reduction, 1),
                cost_savings_daily_usd=round(current.current_daily_cost_usd * reduction, 2),
                quality_impact=-0.02, latency_impact_ms=-100,
            ),
            implementation={"technique": "llmlingua", "compression_ratio": 0.5, "min_prompt_length": 500},
            confidence=0.5,
        ))
    goal = body.goals.acceptable_quality_drop
    if goal is not None:
        recommendations = [r for r in recommendations if -r.estimated_impact.quality_impact <= goal]
    with state.lock:
        for recorded in body.recommendations:
            state.recommendations[recorded.recommendation_id] = recorded.to_wire() | (
                {"application_id": body.application_id} if body.application_id else {}
            )
    return reply({
        "recommendations": [r.to_wire() for r in recommendations],
        "recorded": [r.recommendation_id for r in body.recommendations],
        "generated_at": datetime.now(UTC).isoformat(),
    })


@router.get("/recommendations")
def recorded_recommendations(request: Request) -> Response:
    recorded = list(state_of(request).recommendations.values())
    return reply({"total": len(recorded), "recommendations": recorded})
