"""The Orchestrator's routing configuration: versioned, validated, with history."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from optimizer.sandbox.services._common import problem, reply, state_of
from optimizer.sandbox.state import SandboxState
from optimizer.schemas.routing import (
    RoutingConfigApplied,
    RoutingConfigState,
    RoutingConfigUpdate,
    StrategyRegistered,
    StrategyRegistration,
    ValidationResult,
)

router = APIRouter(prefix="/orchestrator/api/v1", tags=["orchestrator"])


def _current(versions: list[RoutingConfigState]) -> RoutingConfigState:
    return next(v for v in reversed(versions) if v.status == "active")


@router.get("/config/routing")
def get_routing(request: Request) -> Response:
    state = state_of(request)
    with state.lock:
        _activate_due(state)
        return reply(_current(state.routing_versions))


@router.get("/config/routing/history")
def routing_history(request: Request) -> Response:
    state = state_of(request)
    with state.lock:
        _activate_due(state)
        return reply({"versions": [v.model_dump(mode="json") for v in reversed(state.routing_versions)]})


def _activate_due(state: SandboxState) -> None:
    """Scheduled versions whose effective time has come become the active one."""
    now = state.now()
    due = [v for v in state.routing_versions if v.status == "scheduled" and v.last_updated <= now]
    if due:
        for version in state.routing_versions:
            if version.status == "active":
                version.status = "superseded"
        for version in due[:-1]:
            version.status = "superseded"
        due[-1].status = "active"


@router.put("/config/routing")
def put_routing(body: RoutingConfigUpdate, request: Request) -> Response:
    state = state_of(request)
    errors, warnings = [], []
    for rule in body.routing_rules:
        for model in rule.target_selection.models():
            if model not in state.catalog:
                errors.append(f"rule {rule.id}: unknown model {model}")
    if body.default_policy:
        errors += [f"default_policy: unknown model {m}" for m in body.default_policy.models if m not in state.catalog]
    priorities = [rule.priority for rule in body.routing_rules]
    if len(priorities) != len(set(priorities)):
        warnings.append("several rules share a priority; their order is undefined")
    if len({rule.id for rule in body.routing_rules}) != len(body.routing_rules):
        errors.append("rule ids must be unique")
    validation = ValidationResult(valid=not errors, warnings=warnings, errors=errors)
    with state.lock:
        if any(v.version == body.version for v in state.routing_versions):
            return problem(409, f"version {body.version} already exists; versions are immutable")
        config_id = f"cfg-{len(state.routing_versions) + 1:06d}"
        if errors:
            return reply(
                RoutingConfigApplied(config_id=config_id, version=body.version, status="rejected",
                                     effective_time=body.effective_time or state.now(), validation_result=validation),
                422,
            )
        now = state.now()
        default_policy = body.default_policy or _current(state.routing_versions).default_policy
        scheduled = body.effective_time is not None and body.effective_time > now
        effective = body.effective_time if scheduled and body.effective_time else now
        if not scheduled:
            for version in state.routing_versions:
                if version.status == "active":
                    version.status = "superseded"
        state.routing_versions.append(
            RoutingConfigState(
                config_id=config_id, version=body.version, routing_rules=body.routing_rules,
                default_policy=default_policy,
                last_updated=effective, status="scheduled" if scheduled else "active",
            )
        )
        state.routing_changed(effective)
    applied = RoutingConfigApplied(
        config_id=config_id, version=body.version, status="scheduled" if scheduled else "active",
        effective_time=effective, validation_result=validation,
    )
    return reply(applied)


@router.post("/optimization/strategies")
def register_strategy(body: StrategyRegistration, request: Request) -> Response:
    """Kept by id: registering again replaces the earlier registration."""
    state = state_of(request)
    unknown = [m for m in body.applicable_models if m not in state.catalog]
    if unknown:
        return problem(422, f"unknown model(s): {', '.join(unknown)}")
    with state.lock:
        state.strategies[body.strategy_id] = body
    return reply(StrategyRegistered(strategy_id=body.strategy_id, status="registered", validation="passed"), 201)
