"""`auto-optimizer api serve`: the optimizer's own API, as the specification's OpenAPI writes it
(docs/api.md), under /api/v1 with its OpenAPI document at /openapi.json.

It answers from what the latest nightly run published (`optimizer.pipeline.published`), never
from the warehouse, so it never holds the nightly run off. `POST /experiments` starts an
approval-gated `rollout` run; `POST /optimize/model-selection` ranks the Registry's matches on
the published traffic; `POST /optimize/prompt` is answered 501: per-request optimization is
out of scope. On start it registers at the Orchestrator (`POST /optimization/strategies`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prefect.exceptions import ObjectNotFound

from optimizer.errors import BadInputError, OptimizerError, PlatformError
from optimizer.pipeline import published
from optimizer.pipeline.models import select_models, selection_response
from optimizer.pipeline.runtime import Runtime
from optimizer.rollout.requests import experiment_rollout
from optimizer.schemas.api import (
    ApiError,
    ExperimentSummaries,
    PublishedNight,
    StrategyRecommendations,
)
from optimizer.schemas.registry import ExperimentRequest, ExperimentResponse
from optimizer.schemas.selection import ModelSelectionRequest, ModelSelectionResponse
from optimizer.webhook.starter import FlowStarter

logger = logging.getLogger(__name__)
PREFIX = "/api/v1"
ROLLOUT_DEPLOYMENT = "rollout/rollout"
PROMPT_OUT_OF_SCOPE = (
    "per-request prompt optimization is out of scope: the optimizer works in nightly batches over "
    "recorded traffic, and a prompt is compressed by the platform where a night certified compression "
    "for its application (GET /strategies)"
)


class ApiProblem(Exception):
    """An answer other than 2xx, in the specification's error shape."""

    def __init__(self, status: int, error: str, **details: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.details = status, error, details


class _NightCache:
    """The published night, read again only when its file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._night: PublishedNight | None = None

    def current(self) -> PublishedNight | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        if (stat.st_mtime_ns, stat.st_size) != self._seen:
            self._night, self._seen = published.read_night(self.path), (stat.st_mtime_ns, stat.st_size)
        return self._night

    def required(self) -> PublishedNight:
        night = self.current()
        if night is None:
            raise ApiProblem(503, "no nightly run has published its results yet: run the nightly optimization first")
        return night


def create_api(runtime: Runtime, *, token: str | None, starter: FlowStarter, register: bool = True) -> FastAPI:
    """The API; `token` None only when authentication is explicitly disabled. With `register`,
    it registers at the Orchestrator once started (a failure is logged, the API serves on)."""
    nights = _NightCache(runtime.settings.api_snapshot)
    bearer = HTTPBearer(scheme_name="bearerAuth", auto_error=False)

    # A default, not `Annotated`: the annotation is a string resolved in the module's globals,
    # where `bearer` is not.
    def authenticated(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if token is None:
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiProblem(401, "missing or invalid bearer token")

    async def register_at_orchestrator() -> None:
        try:
            await asyncio.to_thread(published.register_api, runtime, runtime.settings.api_base_url, nights.current())
        except OptimizerError as exc:
            logger.warning("could not register at the Orchestrator: %s", runtime.redact(str(exc)))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        registration = asyncio.create_task(register_at_orchestrator()) if register else None
        yield
        if registration is not None:
            registration.cancel()
        await starter.close()

    api = APIRouter(dependencies=[Depends(authenticated)])
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": ApiError, "description": what}
        for status, what in ((400, "Bad request"), (401, "Missing or invalid bearer token"),
                             (503, "Not available yet"))
    }

    @api.post("/optimize/prompt", operation_id="optimizePrompt", tags=["Optimization"], status_code=501,
              responses={501: {"model": ApiError, "description": "Not implemented: out of scope"}})
    def optimize_prompt() -> JSONResponse:
        raise ApiProblem(501, "not implemented", reason=PROMPT_OUT_OF_SCOPE)

    @api.post("/optimize/model-selection", operation_id="selectOptimalModel", tags=["Optimization"],
              response_model=ModelSelectionResponse, response_model_exclude_none=True, responses=errors)
    def select_optimal_model(body: ModelSelectionRequest) -> ModelSelectionResponse:
        night = nights.required()
        return selection_response(select_models(runtime, body, night.traffic))

    @api.post("/experiments", operation_id="createExperiment", tags=["Experiments"], status_code=201,
              response_model=ExperimentResponse, response_model_exclude_none=True, responses=errors)
    async def create_experiment(body: ExperimentRequest) -> ExperimentResponse:
        planned = experiment_rollout(body)
        try:
            run_id = await starter.start(ROLLOUT_DEPLOYMENT, planned.parameters(f"api:{body.name}"),
                                         planned.experiment_id)
        except ObjectNotFound:
            raise ApiProblem(503, f"the {ROLLOUT_DEPLOYMENT} deployment is not served: start it (make serve)") from None
        return ExperimentResponse.model_validate({
            "experiment_id": planned.experiment_id, "status": "created", "flow_run_id": run_id,
            "approval": "pending", "treatment_percent": planned.treatment_percent,
        })

    @api.get("/experiments", operation_id="listExperiments", tags=["Experiments"],
             response_model=ExperimentSummaries, response_model_exclude_none=True, responses=errors)
    def list_experiments(status: Literal["running", "completed", "failed"] | None = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 50) -> ExperimentSummaries:
        return published.experiment_summaries(nights.required(), status, limit)

    @api.get("/strategies", operation_id="getStrategies", tags=["Strategies"],
             response_model=StrategyRecommendations, response_model_exclude_none=True, responses=errors)
    def get_strategies(context: Annotated[str, Query(description="JSON-encoded context")]) -> StrategyRecommendations:
        return published.strategies_for(nights.required(), published.parse_context(context))

    app = FastAPI(title="LLM Auto-Optimizer API", version="1.0.0", lifespan=lifespan, openapi_url=None,
                  docs_url=None, redoc_url=None,
                  description="Strategies, experiments and model selection from the optimizer's nightly evidence")
    app.include_router(api, prefix=PREFIX)

    def problem(status: int, error: str, details: dict[str, Any]) -> JSONResponse:
        body = ApiError(error=runtime.redact(error), details=jsonable_encoder(details))
        response = JSONResponse(body.to_wire() | {"details": body.details}, status_code=status)
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(ApiProblem)
    async def api_problem(_: Request, exc: ApiProblem) -> JSONResponse:
        return problem(exc.status, exc.error, exc.details)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(400, "invalid request", {"errors": [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]})

    @app.exception_handler(BadInputError)
    async def bad_input(_: Request, exc: BadInputError) -> JSONResponse:
        return problem(400, str(exc), {})

    @app.exception_handler(PlatformError)
    async def platform_failed(_: Request, exc: PlatformError) -> JSONResponse:
        return problem(502, f"the {exc.service} answered in a way the optimizer cannot use: {exc}", {})

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        night = nights.current()
        return {"status": "ok", "run_id": night.run_id if night else None}

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        document = dict(app.openapi())
        document["servers"] = [{"url": PREFIX}]
        document["paths"] = {path.removeprefix(PREFIX): item for path, item in document.get("paths", {}).items()}
        document["security"] = [{"bearerAuth": []}]
        return JSONResponse(document)

    return app
