"""Choosing a model: the Registry says which models qualify, the warehouse's traffic ranks them.

Served to alert responses (a faster or a better model) and to the optimizer's API
(`POST /optimize/model-selection`) by the same function. Capabilities, compliance, data
residency and regions go to the Registry's `POST /models/search`; cost and latency limits are
judged on the figures the ranking uses, since the Registry's per-request estimates are for
its own typical request, not this traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

from optimizer.analysis import models
from optimizer.clients import PlatformClients
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.schemas.registry import (
    ModelSearchRequest,
    RequiredCapabilities,
    SearchConstraints,
    SearchPreferences,
)
from optimizer.schemas.selection import (
    Alternative,
    EstimatedMetrics,
    ModelRanking,
    ModelSelectionRequest,
    ModelSelectionResponse,
    TrafficCell,
)

# The task types that need the Registry's strongest reasoning.
_REASONING_TASKS = {"reasoning": "advanced"}


def search_request(request: ModelSelectionRequest) -> ModelSearchRequest:
    """The Registry search that finds the models a selection may choose from."""
    needs, limits = request.requirements, request.constraints
    return ModelSearchRequest(
        required_capabilities=RequiredCapabilities(
            min_context_window=needs.context_needed, features=needs.features,
            reasoning_capability=_REASONING_TASKS.get(needs.task_type or ""),
        ),
        constraints=SearchConstraints(
            required_compliance=limits.compliance_requirements, allowed_regions=limits.allowed_regions,
            data_residency=limits.data_residency,
        ),
        preferences=SearchPreferences(optimize_for=request.preferences.optimize_for),
    )


def rank_with(
    clients: PlatformClients, request: ModelSelectionRequest, traffic: Sequence[TrafficCell]
) -> ModelRanking:
    """The ranking, with clients the caller already holds."""
    needs, limits = request.requirements, request.constraints
    matches = clients.registry.search_models(search_request(request)).matches
    catalog = {m.model_id: m for m in clients.registry.list_models().models}
    scope = models.scope_of(traffic, needs.applications, needs.task_type)
    listed = []
    for match in matches:
        if match.model_id in limits.exclude_models:
            continue
        summary = catalog.get(match.model_id)
        cost = match.estimated_cost_per_request
        if summary is not None and scope.prompt_tokens is not None and scope.completion_tokens is not None:
            prices = summary.cost_summary
            cost = (scope.prompt_tokens * prices.input_cost_per_1k
                    + scope.completion_tokens * prices.output_cost_per_1k) / 1000
        listed.append(models.ListedModel(
            model_id=match.model_id,
            benchmark_quality=summary.performance_summary.quality_score if summary else None,
            p95_latency_ms=match.estimated_latency_p95_ms
            or (summary.performance_summary.p95_latency_ms if summary else None),
            cost_per_request_usd=cost,
        ))
    criteria = models.SelectionCriteria(
        optimize_for=request.preferences.optimize_for, max_cost_per_request_usd=limits.max_cost_per_request,
        max_latency_p95_ms=limits.max_latency_ms, min_quality=limits.min_quality_score,
        anchor_model=request.current_model,
    )
    return models.rank(listed, models.measure(traffic, needs.applications, needs.task_type), criteria)


def select_models(
    runtime: Runtime, request: ModelSelectionRequest, traffic: Sequence[TrafficCell], *, log: Log = LOG
) -> ModelRanking:
    """Every model the Registry finds for `request`, best first, on `traffic` (the warehouse's
    cells, or the published snapshot's)."""
    with runtime.clients() as clients:
        ranking = rank_with(clients, request, traffic)
    best = ranking.ranked[0] if ranking.ranked else None
    log.info("model selection: %s of %d candidate(s)", best.model_id if best else "none",
             len(ranking.ranked) + len(ranking.excluded))
    return ranking


def selection_response(ranking: ModelRanking) -> ModelSelectionResponse:
    """The specification's answer: the best model, the others, and the best one's figures."""
    if not ranking.ranked:
        return ModelSelectionResponse(recommended_model=None, excluded=ranking.excluded,
                                      rationale="no model meets the requirements and constraints")
    best, *others = ranking.ranked
    return ModelSelectionResponse(
        recommended_model=best.model_id,
        alternatives=[Alternative(model_id=r.model_id, score=r.score, rationale=r.rationale, source=r.source)
                      for r in others],
        estimated_metrics=EstimatedMetrics(
            cost_per_request_usd=best.cost_per_request_usd,
            latency_p95_ms=round(best.latency_p95_ms) if best.latency_p95_ms is not None else None,
            quality_score=best.quality_score,
        ),
        rationale=best.rationale, source=best.source, excluded=ranking.excluded,
    )
