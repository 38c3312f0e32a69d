"""The HTML report renders in a real browser (headless Chromium), and its charts are valid SVG."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ElementTree
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from optimizer.report import NightlySummary, ReportData, render_html, spend_lines
from optimizer.report.charts import forest_plot, frontier_chart, line_chart
from optimizer.schemas.analysis import CascadeRecommendation, CascadeReport, CompressionReport
from tests.conftest import CHROMIUM_FLAGS


def sample_report() -> ReportData:
    end = datetime(2026, 11, 25, tzinfo=UTC)
    days = [date(2026, 11, 11) + timedelta(days=i) for i in range(14)]
    rows = [(d, model, cost * (1 + 0.1 * (d.weekday() < 5))) for d in days
            for model, cost in (("gpt-4o", 20.0), ("claude-3-5-sonnet", 70.0))]
    summary = NightlySummary(run_id="r1", requests_loaded=1234, requests_total=5678, quarantined=3, quarantined_total=3,
                             duplicates_skipped=0, windows=1, window_end=end, models=2, cost_days=14, experiments=0,
                             load_id="l")
    return ReportData(summary=summary, analysis_start=end - timedelta(days=14), spend_by_model=rows,
                      spend_totals={"model": spend_lines(rows, {})},
                      cascades=CascadeReport(recommendations=[], max_quality_drop=0.02, alpha=0.05),
                      compression=CompressionReport(recommendations=[], max_quality_drop=0.02, alpha=0.05))


def test_charts_are_well_formed_svg() -> None:
    svgs = [
        line_chart({"a": [(date(2026, 1, 1), 1.0), (date(2026, 1, 2), 3.0)]}, title="t", y_label="y"),
        frontier_chart([(0.0, 0.0, 0.0, 0.0), (30.0, -0.01, -0.02, 0.0)], chosen=(30.0, -0.01), margin=0.02, title="f"),
        forest_plot([("x", -5.0, -7.0, -3.0), ("y & <z>", 1.0, -1.0, 3.0)], title="e", x_label="%"),
    ]
    for svg in svgs:
        root = ElementTree.fromstring(svg)
        assert root.tag.endswith("svg")


def test_week_over_week_trend_needs_two_weeks() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(14)]
    rows = [(d, "m", 10.0 if i < 7 else 12.0) for i, d in enumerate(days)]
    (line,) = spend_lines(rows, {"m": "model m"})
    assert line.change_pct == pytest.approx(20.0) and line.label == "model m" and line.cost_usd == 154.0
    (short,) = spend_lines(rows[7:], {})
    assert short.change_pct is None


def test_report_renders_in_headless_chromium(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_report()), encoding="utf-8")
    profile = tmp_path / "profile"
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "LLM optimization report" in dom and dom.count("<svg") >= 1 and "<polyline" in dom
    screenshot = tmp_path / "report.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1100,1400",
                    f"--screenshot={screenshot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert screenshot.stat().st_size > 20_000  # a page with text and a chart, not a blank one


def test_a_cascade_rejected_for_its_latency_shows_why() -> None:
    slow = CascadeRecommendation(
        application_id="support-bot", decision="reject", primary_model="mini", fallback_model="big",
        confidence_threshold=0.89, escalation_rate=0.44, cost_reduction_pct=44.8, quality_change=-0.016,
        quality_change_ci=(-0.018, -0.014), n_pairs=2221, latency_change_ms=246.6, p95_latency_change_pct=32.7,
        reason="mini keeps quality when it escalates below confidence 0.89, but requests that escalate wait for "
               "both models: p95 latency would rise 33%, beyond the 20% budget")
    data = sample_report()
    html = render_html(data.model_copy(update={"cascades": data.cascades.model_copy(update={"recommendations": [slow]})}))
    row = html[html.index("<td>support-bot</td>"):]
    row = row[:row.index("</tr>")]
    assert "reject" in row and "+32.7%" in row and "-44.8%" in row
    assert "latency budget" in html


def test_latency_limits_and_complexity_levels_are_shown_in_html_and_markdown() -> None:
    from optimizer.report import render_markdown
    from optimizer.schemas.analysis import CompressionRecommendation

    cascade = CascadeRecommendation(
        application_id="support-bot", decision="adopt", primary_model="mini", fallback_model="big",
        confidence_threshold=0.87, escalation_rate=0.5, cost_reduction_pct=40.0, quality_change=-0.01,
        quality_change_ci=(-0.015, -0.005), n_pairs=2000, latency_change_ms=-156.0, latency_impact_ms=-156.0,
        latency_impact_ms_ci=(-230.0, -82.0), latency_increase_bound_ms=-94.0, complexity_threshold=0.33,
        complexity_levels=["simple"], reason="mini answers simple requests")
    compressed = CompressionRecommendation(
        application_id="doc-qa", decision="reject", technique="llmlingua", model="big", token_reduction_pct=50.0,
        quality_change=-0.002, quality_change_ci=(-0.01, 0.006), estimated_monthly_savings_usd=100.0,
        min_prompt_tokens=0, n_compressed=1000, n_uncompressed=1000, latency_impact_ms=148.0,
        latency_impact_ms_ci=(-28.0, 325.0), latency_increase_bound_ms=296.0,
        reason="latency could rise beyond the 200 ms limit (max_latency_increase_ms)")
    data = sample_report()
    data = data.model_copy(update={
        "cascades": CascadeReport(recommendations=[cascade], max_quality_drop=0.02, alpha=0.05,
                                  max_latency_increase_ms=200.0),
        "compression": CompressionReport(recommendations=[compressed], max_quality_drop=0.02, alpha=0.05,
                                         max_latency_increase_ms=200.0)})
    html = render_html(data)
    row = html[html.index("<td>support-bot</td>"):]
    row = row[:row.index("</tr>")]
    assert "simple (0.33)" in row and "-156 (-230, -82); &le; -94" in row
    assert "mean latency beyond 200 ms" in html
    row = html[html.index("<td>doc-qa</td>"):]
    assert "+148 (-28, +325); &le; +296" in row[:row.index("</tr>")]
    markdown = render_markdown(data)
    assert "max_latency_increase_ms): 200 ms" in markdown
    assert "| support-bot | adopt | simple (0.33) | -156 (≤ -94) |" in markdown
    assert "| doc-qa | reject | +148 (≤ +296) |" in markdown
