"""Analysis tasks: sufficient statistics from the warehouse, decisions from the pure analyses."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from optimizer import telemetry
from optimizer.analysis import cascade, compression
from optimizer.analysis.experiments import CONTROL, analyse_experiment
from optimizer.schemas.analysis import CascadeReport, CompressionReport, ExperimentAnalysis
from optimizer.schemas.registry import StoredExperiment
from optimizer.warehouse import Warehouse
from optimizer.warehouse.analytics import ApplicationProfile, RequestSource

Window = tuple[datetime, datetime]


class ExperimentFinding(BaseModel):
    definition: StoredExperiment
    analysis: ExperimentAnalysis


@task(name="analyze-cascades", cache_policy=NO_CACHE)
def analyze_cascades(warehouse: Path, window: Window, max_quality_drop: float, alpha: float) -> CascadeReport:
    with telemetry.operation("analyze.cascade", "model_cascade"), Warehouse(warehouse) as store:
        source = RequestSource.from_warehouse(store, window)
        report = cascade.recommend(source.cascade_pairs(), max_quality_drop=max_quality_drop, alpha=alpha)
    adopted = [r.application_id for r in report.recommendations if r.decision == "adopt"]
    get_run_logger().info("cascades: %d applications, adopt for %s", len(report.recommendations), adopted or "none")
    return report.model_copy(update={"input": source.summary})


@task(name="analyze-compression", cache_policy=NO_CACHE)
def analyze_compression(warehouse: Path, window: Window, max_quality_drop: float, alpha: float) -> CompressionReport:
    with telemetry.operation("analyze.compression", "prompt_compression"), Warehouse(warehouse) as store:
        source = RequestSource.from_warehouse(store, window)
        report = compression.recommend(
            source.compression_data(store.input_prices()), max_quality_drop=max_quality_drop, alpha=alpha
        )
    get_run_logger().info("compression: %s", [(r.application_id, r.decision) for r in report.recommendations])
    return report.model_copy(update={"input": source.summary})


@task(name="analyze-experiments", cache_policy=NO_CACHE)
def analyze_experiments(warehouse: Path, alpha: float) -> list[ExperimentFinding]:
    """Every running experiment over all its data, against its planned allocation."""
    logger = get_run_logger()
    findings = []
    with telemetry.operation("analyze.experiments", "ab_test"), Warehouse(warehouse) as store:
        source = RequestSource.from_warehouse(store)
        for definition in store.running_experiments():
            variants = source.experiment_variants(definition.experiment_id)
            if CONTROL not in {v.variant_id for v in variants}:
                logger.warning("experiment %s: no '%s' traffic yet", definition.experiment_id, CONTROL)
                continue
            analysis = analyse_experiment(definition.experiment_id, variants, definition.traffic_allocation(), alpha)
            logger.info("experiment %s: %s", definition.experiment_id, analysis.recommendation)
            findings.append(ExperimentFinding(definition=definition, analysis=analysis))
    return findings


@task(name="profile-applications", cache_policy=NO_CACHE)
def profile_applications(warehouse: Path, window: Window) -> list[ApplicationProfile]:
    with Warehouse(warehouse) as store:
        return RequestSource.from_warehouse(store, window).application_profiles()
