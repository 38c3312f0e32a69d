"""The sandbox as one ASGI app: five services and an event sink, bearer auth, faults, idempotent writes."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from optimizer.sandbox import emitter
from optimizer.sandbox.faults import FaultSettings
from optimizer.sandbox.services import (
    analytics,
    events,
    governance,
    observatory,
    orchestrator,
    policy_engine,
    registry,
    sentinel,
)
from optimizer.sandbox.services._common import problem, reply, state_of
from optimizer.sandbox.state import SandboxConfig, SandboxState
from optimizer.sandbox.truth import MAX_P95_LATENCY_INCREASE_PCT, verdicts
from optimizer.sandbox.world import Incident
from optimizer.settings import SERVICES

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})
FAULTY_PREFIXES = frozenset({*SERVICES, "policy-engine", "events"})  # what faults apply to; admin routes stay healthy
ADMIN_PREFIX = "/_sandbox"
EVENT_SINK = "/events"  # not a platform service: it checks its own token, not the platform's
# Where the specification and the upstream services differ: each side's routes, which a
# sandbox serving one style only leaves out.
SPEC_ROUTES = frozenset({
    ("GET", "/observatory/api/v1/metrics/query"), ("GET", "/governance/api/v1/costs/summary"),
    ("POST", "/governance/api/v1/policies/evaluate"), ("POST", "/sentinel/api/v1/anomalies"),
    ("GET", "/sentinel/api/v1/anomalies/insights"),
})
UPSTREAM_ROUTES = frozenset({
    ("POST", "/observatory/api/v1/metrics/query"), ("GET", "/observatory/api/v1/costs/summary"),
    ("POST", "/policy-engine/api/evaluate"),
})


class ClockSetting(BaseModel):
    now: datetime | None = None


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    app = FastAPI(
        title="LLM platform sandbox",
        description="Local stand-in for the Observatory, Governance, Registry, Orchestrator and Sentinel APIs, "
                    "in the platform specification's shapes and the upstream services' (analytics API, policy engine).",
        version="1.0",
    )
    app.state.sandbox = SandboxState(config or SandboxConfig())
    left_out = {"spec": UPSTREAM_ROUTES, "upstream": SPEC_ROUTES, "both": frozenset()}[app.state.sandbox.config.api_style]
    served = APIRouter()
    for module in (observatory, analytics, governance, registry, orchestrator, sentinel, policy_engine, events):
        served.routes.extend(
            route for route in module.router.routes
            if not any((method, getattr(route, "path", "")) in left_out for method in getattr(route, "methods", ()))
        )
    app.include_router(served)
    app.include_router(emitter.router)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": ".".join(str(p) for p in error.get("loc", ())), "message": error.get("msg")}
            for error in exc.errors()
        ]
        return problem(400, "request does not match the API's schema", errors=errors)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return problem(exc.status_code, str(exc.detail))

    @app.middleware("http")
    async def gatekeeper(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        state: SandboxState = app.state.sandbox
        path = request.url.path
        if path == f"{ADMIN_PREFIX}/health":
            return await call_next(request)
        token = state.config.events_token if path == EVENT_SINK else state.config.token
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                response = problem(401, "missing or invalid bearer token")
                response.headers["WWW-Authenticate"] = 'Bearer realm="llm-platform"'
                return response
        service = path.split("/", 2)[1]  # paths start with "/"
        if service not in FAULTY_PREFIXES:
            return await call_next(request)
        with state.lock:
            state.request_counts[f"{request.method} {path}"] += 1
        fault = state.faults.next_fault()
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.status:
            response = problem(
                fault.status,
                "rate limit exceeded" if fault.status == 429 else "injected server error",
                **({"retry_after_seconds": fault.retry_after_s} if fault.retry_after_s is not None else {}),
            )
            if fault.retry_after_s is not None:
                response.headers["Retry-After"] = f"{fault.retry_after_s:g}"
            return response
        key = request.headers.get("Idempotency-Key")
        if not key or request.method not in WRITE_METHODS:
            return await call_next(request)
        remembered = state.idempotent_replies.get((request.method, path, key))
        if remembered:
            return Response(remembered[1], status_code=remembered[0], media_type="application/json")
        response = await call_next(request)
        body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        if response.status_code < 500:
            with state.lock:
                state.idempotent_replies[(request.method, path, key)] = (response.status_code, body)
        return Response(body, status_code=response.status_code, media_type="application/json")

    @app.get(f"{ADMIN_PREFIX}/health", tags=["sandbox"])
    def health(request: Request) -> Response:
        state = state_of(request)
        return reply({"status": "ok", "now": state.now(), "anchor": state.anchor.isoformat(), "seed": state.config.seed})

    @app.get(f"{ADMIN_PREFIX}/stats", tags=["sandbox"])
    def stats(request: Request) -> Response:
        """How many requests each route received, faults included (tests count retries here)."""
        state = state_of(request)
        return reply({"requests": dict(state.request_counts), "faults": dict(state.faults.served)})

    @app.get(f"{ADMIN_PREFIX}/truth", tags=["sandbox"])
    def truth(request: Request, day: date, margin: float = 0.02,
              max_p95_latency_increase_pct: float = MAX_P95_LATENCY_INCREASE_PCT) -> Response:
        """What the world knows and no optimizer sees: per application, the true quality, cost
        and latency of its own model, of the routing in force at noon of `day`, and of the
        cheapest routing within `margin` of its own model's quality and within
        `max_p95_latency_increase_pct` of its p95 latency (the oracle)."""
        state = state_of(request)
        with state.lock:
            routing = state.routing_at(datetime(day.year, day.month, day.day, 12, tzinfo=UTC))
            found = verdicts(state.traffic, routing, day, margin, max_p95_latency_increase_pct)
        return reply({"day": day.isoformat(), "margin": margin,
                      "max_p95_latency_increase_pct": max_p95_latency_increase_pct,
                      "applications": [v.as_dict() for v in found]})

    @app.put(f"{ADMIN_PREFIX}/faults", tags=["sandbox"])
    def set_faults(body: FaultSettings, request: Request) -> Response:
        state_of(request).faults.configure(body)
        return reply(body)

    @app.post(f"{ADMIN_PREFIX}/incidents", tags=["sandbox"])
    def add_incident(body: Incident, request: Request) -> Response:
        """Start a disturbance (an error spike for an application, say) from now on."""
        state = state_of(request)
        with state.lock:
            state.traffic.add_incident(body)
        return reply(body, 201)

    @app.put(f"{ADMIN_PREFIX}/clock", tags=["sandbox"])
    def set_clock(body: ClockSetting, request: Request) -> Response:
        state = state_of(request)
        state.set_now(body.now)
        return reply({"now": state.now()})

    return app
