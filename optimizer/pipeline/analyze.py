"""The analyses as use cases: Parquet or the warehouse in, reports out.

The ad-hoc `analyze` commands and the nightly run share these functions: a file checked
and summarised in DuckDB, then the pure statistics of `optimizer.analysis`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from optimizer.analysis import batching, caching, cascade, compression
from optimizer.analysis.experiments import (
    CONTROL,
    MAX_QUALITY_DROP,
    VariantStatistics,
    analyse_experiment,
)
from optimizer.analysis.partitions import merge_reports
from optimizer.catalog import load_catalog
from optimizer.errors import BadInputError
from optimizer.ingest.files import parquet_inputs
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.schemas.analysis import (
    MAX_LATENCY_INCREASE_MS,
    MAX_P95_LATENCY_INCREASE_PCT,
    AnalysisInputs,
    ApplicationAnalysis,
    BatchingReport,
    CachingReport,
    CascadeReport,
    CompressionReport,
    ExperimentAnalysis,
    ExperimentFinding,
    ExperimentReport,
)
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.registry import TokenPrices
from optimizer.warehouse.analytics import (
    CASCADE_READS,
    COMPRESSION_READS,
    EXPERIMENT_READS,
    RequestSource,
)

CASCADE_COLUMNS = ("pair_id", "confidence_score", "quality_score", "shadow")
COMPRESSION_COLUMNS = ("quality_score", "compression_technique", "original_prompt_tokens", "shadow")
EXPERIMENT_COLUMNS = ("experiment_id", "variant_id", "quality_score", "shadow")


def cascade_report(
    source: RequestSource, *, max_quality_drop: float, alpha: float,
    max_p95_latency_increase_pct: float | None = MAX_P95_LATENCY_INCREASE_PCT,
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS,
) -> CascadeReport:
    report = cascade.recommend(source.cascade_pairs(), max_quality_drop=max_quality_drop, alpha=alpha,
                               max_p95_latency_increase_pct=max_p95_latency_increase_pct,
                               max_latency_increase_ms=max_latency_increase_ms)
    return report.model_copy(update={"input": source.summary})


def compression_report(
    source: RequestSource, input_prices: Mapping[str, float], *, max_quality_drop: float, alpha: float,
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS,
) -> CompressionReport:
    report = compression.recommend(source.compression_data(dict(input_prices)), max_quality_drop=max_quality_drop,
                                   alpha=alpha, max_latency_increase_ms=max_latency_increase_ms)
    return report.model_copy(update={"input": source.summary})


def caching_report(source: RequestSource, *, alpha: float) -> CachingReport:
    return caching.recommend(source.caching_data(), alpha=alpha).model_copy(update={"input": source.summary})


def batching_report(source: RequestSource, batch_prices: Mapping[str, TokenPrices], *, alpha: float) -> BatchingReport:
    types = batching.LATENCY_TOLERANT_TASK_TYPES
    report = batching.recommend(source.batching_data(types), batch_prices, alpha=alpha, task_types=types)
    return report.model_copy(update={"input": source.summary})


def experiment_analysis(
    experiment_id: str, variants: Sequence[VariantStatistics], allocation: Mapping[str, float] | None, alpha: float,
    max_quality_drop: float = MAX_QUALITY_DROP,
) -> ExperimentAnalysis | None:
    """Every variant of one experiment against control (planned shares: `allocation`, else
    equal); None when it has no control traffic yet."""
    names = [v.variant_id for v in variants]
    if CONTROL not in names:
        return None
    shares = dict(allocation) if allocation else {name: 1 / len(names) for name in names}
    return analyse_experiment(experiment_id, variants, shares, alpha, max_quality_drop)


# -- the ad-hoc commands: one Parquet file or folder -------------------------------------

def _check_level(alpha: float, max_quality_drop: float | None = None,
                 max_p95_latency_increase_pct: float | None = None, max_latency_increase_ms: float | None = None) -> None:
    if not 0 < alpha < 1:
        raise BadInputError(f"--alpha must be between 0 and 1, got {alpha}")
    if max_quality_drop is not None and not 0 <= max_quality_drop < 1:
        raise BadInputError(f"--max-quality-drop must be in [0, 1), got {max_quality_drop}")
    if max_p95_latency_increase_pct is not None and max_p95_latency_increase_pct < 0:
        raise BadInputError(f"--max-p95-latency-increase-pct must be at least 0, got {max_p95_latency_increase_pct}")
    if max_latency_increase_ms is not None and max_latency_increase_ms < 0:
        raise BadInputError(f"--max-latency-increase-ms must be at least 0, got {max_latency_increase_ms}")


def _file_source(path: Path, needs: tuple[str, ...], reads: tuple[str, ...]) -> RequestSource:
    return RequestSource.from_parquet(parquet_inputs(path), label=str(path), needs=needs, reads=reads)


def analyze_cascade(
    path: Path, *, max_quality_drop: float = 0.02, alpha: float = 0.05,
    max_p95_latency_increase_pct: float | None = MAX_P95_LATENCY_INCREASE_PCT,
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS,
) -> CascadeReport:
    _check_level(alpha, max_quality_drop, max_p95_latency_increase_pct, max_latency_increase_ms)
    return cascade_report(_file_source(path, CASCADE_COLUMNS, CASCADE_READS), max_quality_drop=max_quality_drop, alpha=alpha,
                          max_p95_latency_increase_pct=max_p95_latency_increase_pct,
                          max_latency_increase_ms=max_latency_increase_ms)


def analyze_compression(
    path: Path, *, catalog: Path, max_quality_drop: float = 0.02, alpha: float = 0.05,
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS,
) -> CompressionReport:
    _check_level(alpha, max_quality_drop, max_latency_increase_ms=max_latency_increase_ms)
    prices = {m.model_id: m.cost_structure.input_cost_per_1k_tokens for m in load_catalog(catalog)}
    return compression_report(_file_source(path, COMPRESSION_COLUMNS, COMPRESSION_READS), prices, max_quality_drop=max_quality_drop,
                              alpha=alpha, max_latency_increase_ms=max_latency_increase_ms)


def parse_allocation(text: str) -> dict[str, float]:
    """`control=0.5,treatment=0.5` -> shares; they must be positive and add up to 1."""
    shares: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            raise BadInputError(f"--allocation: cannot read {part!r}; use control=0.5,treatment=0.5") from None
    if any(not name or share <= 0 for name, share in shares.items()):
        raise BadInputError("--allocation: every variant needs a name and a positive share")
    if abs(sum(shares.values()) - 1) > 1e-6:
        raise BadInputError(f"--allocation: shares add up to {sum(shares.values()):g}, not 1")
    return shares


def analyze_experiments(
    path: Path, *, experiment_id: str | None = None, allocation: Mapping[str, float] | None = None,
    alpha: float = 0.05,
) -> ExperimentReport:
    _check_level(alpha)
    source = _file_source(path, EXPERIMENT_COLUMNS, EXPERIMENT_READS)
    known = source.experiment_ids()
    if experiment_id is not None and experiment_id not in known:
        raise BadInputError(f"{path}: no experiment {experiment_id!r} (found: {', '.join(known) or 'none'})")
    if not known:
        raise BadInputError(f"{path}: no rows with an experiment_id")
    analyses = []
    chosen = [experiment_id] if experiment_id else known
    by_experiment = source.variants_by_experiment(chosen)
    for current in chosen:
        variants = by_experiment.get(current, [])
        names = [v.variant_id for v in variants]
        unplanned = [name for name in names if allocation and name not in allocation]
        analysis = None if unplanned else experiment_analysis(current, variants, allocation, alpha)
        if analysis is None:
            raise BadInputError(
                f"{path}: experiment {current} has no '{CONTROL}' variant (found {', '.join(names)})"
                if CONTROL not in names else
                f"experiment {current}: variant(s) {', '.join(unplanned)} not in --allocation")
        analyses.append(analysis)
    return ExperimentReport(experiments=analyses, alpha=alpha, input=source.summary)


# -- the nightly run: the warehouse's analysis window ------------------------------------

def export_for_analysis(
    runtime: Runtime, window: tuple[datetime, datetime], directory: Path, *, log: Log = LOG
) -> AnalysisInputs:
    with runtime.warehouse() as store:
        partitions = store.export.by_application(window, directory)
        prices, batch = store.reference.input_prices(), store.reference.batch_prices()
    log.info("analysis window exported: %d applications", len(partitions))
    return AnalysisInputs(partitions=partitions, input_prices=prices, batch_prices=batch)


def analyze_application(
    application: str, partition: Path, input_prices: Mapping[str, float], max_quality_drop: float, alpha: float,
    max_p95_latency_increase_pct: float | None = MAX_P95_LATENCY_INCREASE_PCT,
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS, *, log: Log = LOG,
    batch_prices: Mapping[str, TokenPrices] | None = None,
) -> ApplicationAnalysis:
    """Cascade, compression, caching, batching and usage profile of one application, from its
    Parquet folder alone (so any worker can run it)."""
    source = RequestSource.from_parquet(sorted(partition.glob("*.parquet")), label=f"application {application}")
    return _analyse(source, application, input_prices, batch_prices or {}, max_quality_drop, alpha,
                    max_p95_latency_increase_pct, max_latency_increase_ms, log)


def analyze_window(
    runtime: Runtime, window: tuple[datetime, datetime], max_quality_drop: float, alpha: float,
    max_p95_latency_increase_pct: float | None = MAX_P95_LATENCY_INCREASE_PCT,
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS, *, log: Log = LOG,
) -> ApplicationAnalysis:
    """What `analyze_application` finds for each application, for all of them at once,
    straight from the warehouse: for steps that run in the process that may open it, no
    Parquet export and no second check of rows the load checked. Every query groups by
    application and every decision is made per application, so the reports are those of
    the applications analysed apart (`optimizer.analysis.partitions`)."""
    with runtime.warehouse() as store:
        prices, batch = store.reference.input_prices(), store.reference.batch_prices()
        source = store.request_source(window)
        analysis = _analyse(source, None, prices, batch, max_quality_drop, alpha, max_p95_latency_increase_pct,
                            max_latency_increase_ms, log)
        return analysis.model_copy(update={"traffic": source.traffic_cells()})


def _analyse(
    source: RequestSource, application: str | None, input_prices: Mapping[str, float],
    batch_prices: Mapping[str, TokenPrices], max_quality_drop: float, alpha: float,
    max_p95_latency_increase_pct: float | None, max_latency_increase_ms: float | None, log: Log,
) -> ApplicationAnalysis:
    # OpenTelemetry's SDK, loaded here: only the nightly run's analyses report spans.
    from optimizer import telemetry

    about = {"optimization.application_id": application} if application else {}
    with telemetry.operation("analyze.cascade", "model_cascade", **about):
        cascades = cascade_report(source, max_quality_drop=max_quality_drop, alpha=alpha,
                                  max_p95_latency_increase_pct=max_p95_latency_increase_pct,
                                  max_latency_increase_ms=max_latency_increase_ms)
    with telemetry.operation("analyze.compression", "prompt_compression", **about):
        compressed = compression_report(source, input_prices, max_quality_drop=max_quality_drop, alpha=alpha,
                                        max_latency_increase_ms=max_latency_increase_ms)
    with telemetry.operation("analyze.caching", "caching", **about):
        cached = caching_report(source, alpha=alpha)
    with telemetry.operation("analyze.batching", "batching", **about):
        batched = batching_report(source, batch_prices, alpha=alpha)
    log.info("%s: %d requests; cascade %s, compression %s, caching %s, batching %s",
             application or "all applications", source.summary.rows,
             *([r.decision for r in report.recommendations] or "-" for report in (cascades, compressed, cached, batched)))
    return ApplicationAnalysis(cascades=cascades, compression=compressed, profiles=source.application_profiles(),
                               caching=cached, batching=batched)


def analyze_running_experiments(runtime: Runtime, alpha: float, *, log: Log = LOG) -> list[ExperimentFinding]:
    """Every running experiment over all its data, against its planned allocation."""
    from optimizer import telemetry

    findings = []
    with telemetry.operation("analyze.experiments", "ab_test"), runtime.warehouse() as store:
        source = store.request_source()
        for definition in store.reference.running_experiments():
            # An optimization's experiment is judged by the margin its change was certified with.
            margin = float(definition.configuration.get("max_quality_drop", MAX_QUALITY_DROP))
            analysis = experiment_analysis(definition.experiment_id, source.experiment_variants(definition.experiment_id),
                                           definition.traffic_allocation(), alpha, margin)
            if analysis is None:
                log.warning("experiment %s: no '%s' traffic yet", definition.experiment_id, CONTROL)
                continue
            log.info("experiment %s: %s", definition.experiment_id, analysis.recommendation)
            findings.append(ExperimentFinding(definition=definition, analysis=analysis,
                                              usage=source.experiment_usage(definition.experiment_id)))
    return findings


def combine_savings(analyses: Sequence[ApplicationAnalysis], *, alpha: float) -> tuple[CachingReport, BatchingReport]:
    """The per-application caching and batching reports as one each, in application order."""
    cached = [a.caching for a in analyses if a.caching is not None]
    batched = [a.batching for a in analyses if a.batching is not None]
    return (
        CachingReport(recommendations=sorted((r for p in cached for r in p.recommendations),
                                             key=lambda r: r.application_id),
                      alpha=alpha, min_monthly_savings_usd=caching.MIN_MONTHLY_SAVINGS_USD),
        BatchingReport(recommendations=sorted((r for p in batched for r in p.recommendations),
                                              key=lambda r: r.application_id),
                       alpha=alpha, min_monthly_savings_usd=batching.MIN_MONTHLY_SAVINGS_USD,
                       latency_tolerant_task_types=list(batching.LATENCY_TOLERANT_TASK_TYPES)),
    )


def combine(
    analyses: Sequence[ApplicationAnalysis], *, max_quality_drop: float, alpha: float,
    max_latency_increase_ms: float | None = MAX_LATENCY_INCREASE_MS,
) -> tuple[CascadeReport, CompressionReport, list[ApplicationProfile]]:
    """The per-application analyses as the nightly reports (see `optimizer.analysis.partitions`)."""
    return (
        merge_reports(CascadeReport, [a.cascades for a in analyses], max_quality_drop=max_quality_drop, alpha=alpha,
                      max_latency_increase_ms=max_latency_increase_ms),
        merge_reports(CompressionReport, [a.compression for a in analyses], max_quality_drop=max_quality_drop,
                      alpha=alpha, max_latency_increase_ms=max_latency_increase_ms),
        [profile for a in analyses for profile in a.profiles],
    )
