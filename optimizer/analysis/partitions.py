"""Reports of analyses run one application at a time, put back together.

Cascade and compression decisions are made per application, each with its own error
budget, so analysing applications apart (on different workers, say) and concatenating
their recommendations gives the report that analysing them together gives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

from optimizer.schemas.analysis import CascadeReport, CompressionReport, InputSummary

ReportT = TypeVar("ReportT", CascadeReport, CompressionReport)


def merge_inputs(inputs: Sequence[InputSummary | None]) -> InputSummary:
    present = [summary for summary in inputs if summary is not None]
    reasons: Counter[str] = Counter()
    for summary in present:
        reasons.update(summary.exclusion_reasons)
    return InputSummary(
        rows=sum(s.rows for s in present),
        rows_excluded=sum(s.rows_excluded for s in present),
        exclusion_reasons=dict(sorted(reasons.items())),
    )


def merge_reports(
    kind: type[ReportT], parts: Sequence[ReportT], *, max_quality_drop: float, alpha: float,
    max_latency_increase_ms: float | None = None,
) -> ReportT:
    """One report from per-application ones, recommendations in application order."""
    mismatched = [p for p in parts if (p.max_quality_drop, p.alpha) != (max_quality_drop, alpha)]
    if mismatched:
        raise ValueError("reports analysed with different max_quality_drop or alpha cannot be merged")
    recommendations = sorted((r for part in parts for r in part.recommendations), key=lambda r: r.application_id)
    return kind(
        recommendations=recommendations,
        max_quality_drop=max_quality_drop,
        alpha=alpha,
        max_latency_increase_ms=max_latency_increase_ms,
        input=merge_inputs([part.input for part in parts]),
    )
