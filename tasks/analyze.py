"""Analysis tasks: sufficient statistics from SQL, decisions from the pure analyses.

Cascades and compression fan out one task per application over Parquet exported from
the warehouse, so they can run on any worker; experiments read the warehouse directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from optimizer import telemetry
from optimizer.analysis import cascade, compression
from optimizer.analysis.experiments import CONTROL, analyse_experiment
from optimizer.analysis.partitions import merge_reports
from optimizer.schemas.analysis import CascadeReport, CompressionReport, ExperimentAnalysis
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.registry import StoredExperiment
from optimizer.warehouse import Warehouse
from optimizer.warehouse.analytics import RequestSource

Window = tuple[datetime, datetime]


class ExperimentFinding(BaseModel):
    definition: StoredExperiment
    analysis: ExperimentAnalysis


class AnalysisInputs(BaseModel):
    """The analysis window, exported for workers: one Parquet folder per application."""

    partitions: dict[str, Path]
    input_prices: dict[str, float]


class ApplicationAnalysis(BaseModel):
    cascades: CascadeReport
    compression: CompressionReport
    profiles: list[ApplicationProfile]


@task(name="export-for-analysis", cache_policy=NO_CACHE)
def export_for_analysis(warehouse: Path, window: Window, directory: Path) -> AnalysisInputs:
    with Warehouse(warehouse) as store:
        partitions = store.export.by_application(window, directory)
        prices = store.reference.input_prices()
    get_run_logger().info("analysis window exported: %d applications", len(partitions))
    return AnalysisInputs(partitions=partitions, input_prices=prices)


@task(name="analyze-application", task_run_name="analyze-{application}", cache_policy=NO_CACHE)
def analyze_application(
    application: str, partition: Path, input_prices: dict[str, float], max_quality_drop: float, alpha: float
) -> ApplicationAnalysis:
    """Cascade, compression and usage profile of one application, from its Parquet folder alone."""
    about = {"optimization.application_id": application}
    source = RequestSource.from_parquet(sorted(partition.glob("*.parquet")), label=f"application {application}")
    with telemetry.operation("analyze.cascade", "model_cascade", **about):
        cascades = cascade.recommend(source.cascade_pairs(), max_quality_drop=max_quality_drop, alpha=alpha)
    with telemetry.operation("analyze.compression", "prompt_compression", **about):
        compressed = compression.recommend(
            source.compression_data(input_prices), max_quality_drop=max_quality_drop, alpha=alpha
        )
    profiles = source.application_profiles()
    get_run_logger().info(
        "%s: %d requests; cascade %s, compression %s", application, source.summary.rows,
        [r.decision for r in cascades.recommendations] or "-", [r.decision for r in compressed.recommendations] or "-",
    )
    return ApplicationAnalysis(
        cascades=cascades.model_copy(update={"input": source.summary}),
        compression=compressed.model_copy(update={"input": source.summary}),
        profiles=profiles,
    )


@task(name="analyze-experiments", cache_policy=NO_CACHE)
def analyze_experiments(warehouse: Path, alpha: float) -> list[ExperimentFinding]:
    """Every running experiment over all its data, against its planned allocation."""
    logger = get_run_logger()
    findings = []
    with telemetry.operation("analyze.experiments", "ab_test"), Warehouse(warehouse) as store:
        source = store.request_source()
        for definition in store.reference.running_experiments():
            variants = source.experiment_variants(definition.experiment_id)
            if CONTROL not in {v.variant_id for v in variants}:
                logger.warning("experiment %s: no '%s' traffic yet", definition.experiment_id, CONTROL)
                continue
            analysis = analyse_experiment(definition.experiment_id, variants, definition.traffic_allocation(), alpha)
            logger.info("experiment %s: %s", definition.experiment_id, analysis.recommendation)
            findings.append(ExperimentFinding(definition=definition, analysis=analysis))
    return findings


def combine(
    analyses: Sequence[ApplicationAnalysis], *, max_quality_drop: float, alpha: float
) -> tuple[CascadeReport, CompressionReport, list[ApplicationProfile]]:
    """The per-application analyses as the nightly reports (see `optimizer.analysis.partitions`)."""
    return (
        merge_reports(CascadeReport, [a.cascades for a in analyses], max_quality_drop=max_quality_drop, alpha=alpha),
        merge_reports(CompressionReport, [a.compression for a in analyses],
                      max_quality_drop=max_quality_drop, alpha=alpha),
        [profile for a in analyses for profile in a.profiles],
    )
