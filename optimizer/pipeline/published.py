"""What the nightly run publishes for the optimizer's API, and what the API answers from it.

The API never opens the warehouse: a reader there would wait for the nightly run's write
lock, or hold the nightly run off. The run writes one JSON file instead (`api_snapshot`),
atomically (a temporary file beside it, then `os.replace`), so a reader sees the last
night's file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from optimizer import recommendations as build
from optimizer.errors import BadInputError
from optimizer.experiment_records import CONCLUDED
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.report import NightlySummary, ReportData
from optimizer.schemas.analysis import ExperimentAnalysis
from optimizer.schemas.api import (
    ExperimentSummaries,
    ExperimentSummary,
    PublishedNight,
    Strategy,
    StrategyRecommendations,
)
from optimizer.schemas.routing import StrategyRegistered, StrategyRegistration
from optimizer.warehouse import Warehouse

# How the optimizer is known at the Orchestrator: registering again replaces the entry.
STRATEGY_ID = "llm-auto-optimizer"
# The context keys `GET /strategies` narrows by; others (user, environment) do not change them.
CONTEXT_KEYS = ("application_id", "team_id", "model")


def _improvement_pct(analysis: ExperimentAnalysis) -> float | None:
    """The winner's cost reduction against control, in percent."""
    if analysis.winner is None or analysis.winner == "control":
        return None
    cost = next((c for c in analysis.comparisons if c.variant_id == analysis.winner and c.metric == "cost_usd"), None)
    return None if cost is None or cost.relative_diff is None else round(-100 * cost.relative_diff, 2)


def build_night(store: Warehouse, data: ReportData, summary: NightlySummary) -> PublishedNight:
    """The night's adopted strategies, its experiments and the traffic of its analysis window."""
    if data.profiles is not None and data.traffic is not None:  # read by the analysis, from the same rows
        window_profiles, traffic = data.profiles, data.traffic
    else:
        source = store.request_source((data.analysis_start, summary.window_end))
        window_profiles, traffic = source.application_profiles(), source.traffic_cells()
    profiles = {p.application_id: p for p in window_profiles}
    teams = store.reference.application_teams()
    strategies = []
    for recorded in store.results.latest_adopted(summary.run_id):
        app = recorded.entry.application_id
        found = build.registry_recommendation(recorded.entry, profiles.get(app), run_id=summary.run_id,
                                              alpha=data.cascades.alpha)
        if found is None:
            continue
        strategies.append(Strategy(
            strategy_type=found.type, confidence=found.confidence, estimated_impact=found.estimated_impact.to_wire(),
            implementation=found.implementation, application_id=app, team_id=teams.get(app),
            model=profiles[app].model if app in profiles else None, description=found.description,
            recommendation_id=recorded.recommendation_id, monthly_savings_usd=recorded.monthly_savings_usd,
        ))
    analyses = {a.experiment_id: a for a in data.experiments}
    experiments = []
    for experiment in store.reference.running_experiments():
        analysis = analyses.get(experiment.experiment_id)
        experiments.append(ExperimentSummary(
            experiment_id=experiment.experiment_id,
            name=str(experiment.metadata.get("name") or experiment.hypothesis or experiment.experiment_type),
            status=CONCLUDED.get(analysis.recommendation, "running") if analysis else experiment.status,
            winning_variant=analysis.winner if analysis else None,
            improvement_percentage=_improvement_pct(analysis) if analysis else None,
            application_id=experiment.metadata.get("application_id"),
            recommendation=analysis.recommendation if analysis else None,
        ))
    return PublishedNight(
        run_id=summary.run_id, window_end=summary.window_end, published_at=datetime.now(UTC), strategies=strategies,
        experiments=experiments, serving={a: p.model for a, p in profiles.items()}, traffic=traffic,
    )


def write_atomically(path: Path, text: str) -> None:
    """`text` in `path`, replacing what was there in one step (readers see old or new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                     suffix=".tmp", delete=False) as temporary:
        temporary.write(text)
        temporary.flush()
        os.fsync(temporary.fileno())
    os.chmod(temporary.name, 0o644)  # as an ordinary file: a temporary one starts private
    os.replace(temporary.name, path)


def publish_night(runtime: Runtime, store: Warehouse, data: ReportData, summary: NightlySummary,
                  *, log: Log = LOG) -> Path:
    night = build_night(store, data, summary)
    path = runtime.settings.api_snapshot
    write_atomically(path, night.model_dump_json())
    log.info("published %d strategies, %d experiment(s) and %d traffic cells for the API to %s",
             len(night.strategies), len(night.experiments), len(night.traffic), path)
    return path


def read_night(path: Path) -> PublishedNight | None:
    """The latest published night; None before the first. Raises BadInputError on a file
    that is not one (a file written by another version, say)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return PublishedNight.model_validate_json(text)
    except ValidationError as exc:
        raise BadInputError(f"{path} is not a published night: {exc.errors()[0]['msg']}") from exc


def parse_context(text: str) -> dict[str, Any]:
    """The JSON-encoded context of `GET /strategies`; raises BadInputError if it is not an object."""
    try:
        context = json.loads(text)
    except ValueError as exc:
        raise BadInputError(f"context is not JSON: {exc}") from exc
    if not isinstance(context, dict):
        raise BadInputError("context must be a JSON object, such as {\"application_id\": \"support-bot\"}")
    return context


def strategies_for(night: PublishedNight, context: Mapping[str, Any]) -> StrategyRecommendations:
    """The night's strategies for the application, team or model the context names (all of
    them if it names none of these)."""
    wanted = {key: str(context[key]) for key in CONTEXT_KEYS if context.get(key) is not None}
    chosen = [s for s in night.strategies if all(getattr(s, key) == value for key, value in wanted.items())]
    return StrategyRecommendations(recommendations=chosen, run_id=night.run_id, window_end=night.window_end)


def experiment_summaries(night: PublishedNight, status: str | None, limit: int) -> ExperimentSummaries:
    chosen = [e for e in night.experiments if status is None or e.status == status]
    return ExperimentSummaries(experiments=chosen[:limit])


def strategy_registration(base_url: str, night: PublishedNight | None) -> StrategyRegistration:
    """The optimizer as a strategy the Orchestrator may consult, at `base_url` (its API's root)."""
    strategies = night.strategies if night else []
    return StrategyRegistration(
        strategy_id=STRATEGY_ID, name="LLM Auto-Optimizer",
        description="Evidence-based strategies from the nightly analysis (model cascades, prompt compression), "
                    "model selection on measured traffic, and approval-gated A/B experiments",
        enabled=True,
        configuration={
            "strategies_url": f"{base_url}/strategies", "model_selection_url": f"{base_url}/optimize/model-selection",
            "experiments_url": f"{base_url}/experiments", "run_id": night.run_id if night else None,
            "strategy_types": sorted({s.strategy_type for s in strategies}),
        },
        applicable_models=sorted({s.model for s in strategies if s.model}),
        webhook_url=f"{base_url}/strategies",
    )


def register_api(runtime: Runtime, base_url: str, night: PublishedNight | None, *, log: Log = LOG) -> StrategyRegistered:
    with runtime.clients() as clients:
        registered = clients.orchestrator.register_strategy(strategy_registration(base_url, night))
    log.info("registered at the Orchestrator as %s: %s", registered.strategy_id, registered.status)
    return registered
