"""Reporting tasks: the report file and the artifact people read in the Prefect UI."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from optimizer.report import NightlySummary, render_markdown, write_report


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(summary: NightlySummary, reports_dir: Path) -> NightlySummary:
    path = write_report(summary, reports_dir)
    published = summary.model_copy(update={"report": str(path)})
    create_markdown_artifact(
        key="nightly-optimization",
        markdown=render_markdown(published),
        description="What the nightly run loaded and quarantined",
    )
    get_run_logger().info("report written to %s", path)
    return published
