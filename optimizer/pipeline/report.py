"""The nightly report: spend from the warehouse added to what the run found, written as
HTML and Markdown, and the run's summary kept."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from optimizer import telemetry
from optimizer.pipeline.published import publish_night
from optimizer.pipeline.runtime import LOG, Log, Runtime
from optimizer.report import NightlySummary, ReportData, spend_lines, write_report


def write_nightly_report(
    runtime: Runtime, data: ReportData, *, log: Log = LOG
) -> tuple[NightlySummary, Path]:
    """(the run's summary, naming its report files; the Markdown file, for people in the UI).
    The night's results are published for the optimizer's API here too."""
    with telemetry.operation("report", "reporting"), runtime.warehouse() as store:
        first, last = data.analysis_start.date(), (data.summary.window_end - timedelta(days=1)).date()
        spend = {dimension: store.reference.daily_spend(dimension, first, last)
                 for dimension in ("team", "application", "model")}
        data = data.model_copy(update={
            "realized_history": store.realized.history(),
            "summary": data.summary.model_copy(update={
                "realized_monthly_savings_usd": sum(r.realized_monthly_savings_usd for r in data.realized)}),
            "spend_by_model": spend["model"],
            "spend_totals": {dimension: spend_lines(daily, store.reference.spend_labels(dimension))
                             for dimension, daily in spend.items()},
        })
        html_path, markdown_path = write_report(data, runtime.settings.reports_dir)
        summary = data.summary.model_copy(update={"report": str(html_path), "report_markdown": str(markdown_path)})
        store.runs.save(summary.run_id, summary.started_at or summary.window_end,
                        (summary.window_start, summary.window_end), summary.model_dump_json())
        publish_night(runtime, store, data, summary, log=log)  # what the optimizer's API answers from
    log.info("report written to %s", html_path)
    return summary, markdown_path
