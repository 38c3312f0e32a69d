"""The nightly report: a Markdown summary for the Prefect UI and a self-contained HTML file."""

from __future__ import annotations

from pathlib import Path

from optimizer.report.html import render_html
from optimizer.report.markdown import render_markdown
from optimizer.report.summary import (
    EventDelivery,
    ExperimentOutcome,
    NightlySummary,
    RecordedResults,
    ReportData,
    SpendLine,
    complete,
    spend_lines,
    summarize,
)


def write_report(data: ReportData, reports_dir: Path) -> tuple[Path, Path]:
    """Write the HTML and Markdown reports; returns their paths (HTML first)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    stem = f"optimization-{data.summary.window_end:%Y%m%d}-{data.summary.run_id or 'run'}"
    html_path, markdown_path = reports_dir / f"{stem}.html", reports_dir / f"{stem}.md"
    html_path.write_text(render_html(data), encoding="utf-8")
    markdown_path.write_text(render_markdown(data), encoding="utf-8")
    return html_path, markdown_path


__all__ = [
    "EventDelivery",
    "ExperimentOutcome",
    "NightlySummary",
    "RecordedResults",
    "ReportData",
    "SpendLine",
    "complete",
    "render_html",
    "render_markdown",
    "spend_lines",
    "summarize",
    "write_report",
]
