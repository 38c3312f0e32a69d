"""Reporting: the HTML and Markdown files, and the artifacts people read in the Prefect UI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from optimizer import telemetry
from optimizer.report import NightlySummary, ReportData, spend_lines, write_report
from optimizer.warehouse import Warehouse


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(data: ReportData, warehouse: Path, reports_dir: Path) -> NightlySummary:
    with telemetry.operation("report", "reporting"), Warehouse(warehouse) as store:
        first, last = data.analysis_start.date(), (data.summary.window_end - timedelta(days=1)).date()
        spend = {dimension: store.reference.daily_spend(dimension, first, last) for dimension in ("team", "application", "model")}
        data = data.model_copy(update={
            "spend_by_model": spend["model"],
            "spend_totals": {dimension: spend_lines(daily, store.reference.spend_labels(dimension))
                             for dimension, daily in spend.items()},
        })
        html_path, markdown_path = write_report(data, reports_dir)
        summary = data.summary.model_copy(update={"report": str(html_path), "report_markdown": str(markdown_path)})
        store.runs.save(summary.run_id, summary.started_at or summary.window_end,
                       (summary.window_start, summary.window_end), summary.model_dump_json())
    create_markdown_artifact(key="nightly-optimization", markdown=markdown_path.read_text(encoding="utf-8"),
                             description="What the nightly optimization found and recommends")
    create_table_artifact(
        key="nightly-recommendations",
        table=[r.model_dump() for r in summary.recommendations] or [{"recommendation": "none adopted"}],
        description="Recommendations adopted tonight, with their monthly savings",
    )
    if data.budgets:
        create_table_artifact(key="team-budgets", table=[b.model_dump() for b in data.budgets],
                              description="Month-to-date spend against each team's budget")
    get_run_logger().info("report written to %s", html_path)
    return summary
