"""The nightly run's report: what was loaded, what was quarantined and why."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from optimizer.ingest.windows import Window
from optimizer.warehouse import LoadResult


class NightlySummary(BaseModel):
    """What one nightly run did; the demo's `--json` output is this object."""

    requests_loaded: int
    requests_total: int
    quarantined: int
    quarantined_total: int
    duplicates_skipped: int
    quarantine_reasons: dict[str, int] = Field(default_factory=dict)
    windows: int
    window_start: datetime | None = None
    window_end: datetime
    models: int
    cost_days: int
    experiments: int
    load_id: str
    report: str = ""


def summarize(loaded: LoadResult, windows: list[Window], window_end: datetime) -> NightlySummary:
    return NightlySummary(
        requests_loaded=loaded.loaded,
        requests_total=loaded.requests_total,
        quarantined=loaded.quarantined,
        quarantined_total=loaded.quarantined_total,
        duplicates_skipped=loaded.duplicates,
        quarantine_reasons=loaded.quarantine_reasons,
        windows=len(windows),
        window_start=windows[0].start if windows else None,
        window_end=window_end,
        models=loaded.models,
        cost_days=loaded.cost_days,
        experiments=loaded.experiments,
        load_id=loaded.load_id,
    )


def render_markdown(summary: NightlySummary) -> str:
    span = (
        f"{summary.window_start:%Y-%m-%d %H:%M} to {summary.window_end:%Y-%m-%d %H:%M} UTC"
        if summary.window_start
        else f"up to {summary.window_end:%Y-%m-%d %H:%M} UTC"
    )
    lines = [
        "# Nightly optimization run",
        "",
        f"Extraction window: {span} ({summary.windows} window(s)).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| requests loaded this run | {summary.requests_loaded:,} |",
        f"| requests in the warehouse | {summary.requests_total:,} |",
        f"| already present (skipped) | {summary.duplicates_skipped:,} |",
        f"| quarantined this run | {summary.quarantined:,} |",
        f"| quarantined in total | {summary.quarantined_total:,} |",
        f"| models in the catalog | {summary.models} |",
        f"| days of cost summaries | {summary.cost_days} |",
        f"| experiments known | {summary.experiments} |",
    ]
    if summary.quarantine_reasons:
        lines += ["", "## Why rows were quarantined", "", "| rule broken | rows |", "|---|---:|"]
        lines += [
            f"| {reason} | {count:,} |"
            for reason, count in sorted(summary.quarantine_reasons.items(), key=lambda kv: -kv[1])
        ]
    return "\n".join(lines) + "\n"


def write_report(summary: NightlySummary, reports_dir: Path) -> Path:
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"nightly-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.md"
    path.write_text(render_markdown(summary), encoding="utf-8")
    return path
