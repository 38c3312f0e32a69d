"""`auto-optimizer analyze ...` on Parquet files: read, check, summarise in DuckDB, decide.

Each function mirrors a command; the statistics themselves are the pure functions of
`optimizer.analysis`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from optimizer.analysis import cascade, compression
from optimizer.analysis.experiments import CONTROL, analyse_experiment
from optimizer.catalog import load_catalog
from optimizer.errors import BadInputError
from optimizer.ingest.files import parquet_inputs
from optimizer.schemas.analysis import CascadeReport, CompressionReport, ExperimentReport
from optimizer.warehouse.analytics import RequestSource

CASCADE_COLUMNS = ("pair_id", "confidence_score", "quality_score", "shadow")
COMPRESSION_COLUMNS = ("quality_score", "compression_technique", "original_prompt_tokens", "shadow")
EXPERIMENT_COLUMNS = ("experiment_id", "variant_id", "quality_score", "shadow")


def _check_level(alpha: float, max_quality_drop: float | None = None) -> None:
    if not 0 < alpha < 1:
        raise BadInputError(f"--alpha must be between 0 and 1, got {alpha}")
    if max_quality_drop is not None and not 0 <= max_quality_drop < 1:
        raise BadInputError(f"--max-quality-drop must be in [0, 1), got {max_quality_drop}")


def _source(path: Path, needs: tuple[str, ...]) -> RequestSource:
    return RequestSource.from_parquet(parquet_inputs(path), label=str(path), needs=needs)


def analyze_cascade(path: Path, *, max_quality_drop: float = 0.02, alpha: float = 0.05) -> CascadeReport:
    _check_level(alpha, max_quality_drop)
    source = _source(path, CASCADE_COLUMNS)
    report = cascade.recommend(source.cascade_pairs(), max_quality_drop=max_quality_drop, alpha=alpha)
    return report.model_copy(update={"input": source.summary})


def analyze_compression(
    path: Path, *, catalog: Path, max_quality_drop: float = 0.02, alpha: float = 0.05
) -> CompressionReport:
    _check_level(alpha, max_quality_drop)
    source = _source(path, COMPRESSION_COLUMNS)
    prices = {m.model_id: m.cost_structure.input_cost_per_1k_tokens for m in load_catalog(catalog)}
    report = compression.recommend(
        source.compression_data(prices), max_quality_drop=max_quality_drop, alpha=alpha
    )
    return report.model_copy(update={"input": source.summary})


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
    path: Path,
    *,
    experiment_id: str | None = None,
    allocation: Mapping[str, float] | None = None,
    alpha: float = 0.05,
) -> ExperimentReport:
    _check_level(alpha)
    source = _source(path, EXPERIMENT_COLUMNS)
    known = source.experiment_ids()
    if experiment_id is not None and experiment_id not in known:
        raise BadInputError(f"{path}: no experiment {experiment_id!r} (found: {', '.join(known) or 'none'})")
    if not known:
        raise BadInputError(f"{path}: no rows with an experiment_id")
    analyses = []
    for current in [experiment_id] if experiment_id else known:
        variants = source.experiment_variants(current)
        names = [v.variant_id for v in variants]
        if CONTROL not in names:
            raise BadInputError(f"{path}: experiment {current} has no '{CONTROL}' variant (found {', '.join(names)})")
        shares = dict(allocation) if allocation else {name: 1 / len(names) for name in names}
        unplanned = [name for name in names if name not in shares]
        if unplanned:
            raise BadInputError(f"experiment {current}: variant(s) {', '.join(unplanned)} not in --allocation")
        analyses.append(analyse_experiment(current, variants, shares, alpha))
    return ExperimentReport(experiments=analyses, alpha=alpha, input=source.summary)
