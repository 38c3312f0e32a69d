"""The self-contained HTML report: inline CSS and SVG charts, readable offline."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from html import escape

from optimizer.report.charts import forest_plot, frontier_chart, line_chart
from optimizer.report.summary import ReportData, SpendLine

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827; margin: 0; background: #f9fafb; }
main { max-width: 1040px; margin: 0 auto; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 32px 0 8px; } h3 { font-size: 16px; margin: 20px 0 6px; }
.muted { color: #6b7280; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin: 20px 0; }
.kpi { background: white; border: 1px solid #e5e7eb; border-radius: 8px; padding: 12px 16px; }
.kpi b { display: block; font-size: 22px; }
table { border-collapse: collapse; width: 100%; background: white; margin: 8px 0; font-size: 14px; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.adopt, .deploy_to_production { color: #15803d; font-weight: 600; } .reject, .keep_control, .invalid_srm { color: #b91c1c; font-weight: 600; }
.insufficient_data, .continue { color: #92400e; }
.chart { width: 100%; height: auto; background: white; border: 1px solid #e5e7eb; border-radius: 8px; }
.chart text { font-size: 11px; fill: #374151; } .chart .label { font-size: 12px; fill: #111827; }
.chart .grid { stroke: #e5e7eb; } .chart .axis { stroke: #9ca3af; }
.flag { color: #b91c1c; font-weight: 700; }
"""


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}%" if signed else f"{value:.1f}%"


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _money_interval(ci: tuple[float, float] | None) -> str:
    return "-" if ci is None else f"{_money(ci[0])} to {_money(ci[1])}"


def _caching_and_batching(data: ReportData) -> list[str]:
    """The two analyses that change no model, when the run made them."""
    parts = []
    if data.caching is not None:
        parts.append('<h2 id="caching">Response caching</h2>')
        parts.append('<p class="muted">From exact repeats of prompt hashes; recommended when the savings\' '
                     "interval over days clears the minimum. A cached answer repeats the earlier answer to the "
                     "same prompt: assumed as good as a new one.</p>")
        parts.append(_table(
            ["application", "decision", "TTL", "hit rate (CI)", "savings / month", "interval"],
            [[escape(r.application_id), _decision(r.decision), "-" if r.ttl_seconds is None else f"{r.ttl_seconds:,} s",
              "-" if r.hit_rate is None or r.hit_rate_ci is None else
              f"{100 * r.hit_rate:.1f}% ({100 * r.hit_rate_ci[0]:.1f}, {100 * r.hit_rate_ci[1]:.1f})",
              _money(r.monthly_savings_usd), _money_interval(r.monthly_savings_ci)] for r in data.caching.recommendations],
            numeric={2, 3, 4},
        ))
    if data.batching is not None:
        parts.append('<h2 id="batching">Batch pricing</h2>')
        parts.append(f'<p class="muted">Latency-tolerant traffic (task types '
                     f"{escape(', '.join(data.batching.latency_tolerant_task_types))}) at the catalog's batch prices; "
                     "a batch API answers within hours, not seconds.</p>")
        parts.append(_table(
            ["application", "decision", "models", "requests", "cost cut", "savings / month", "interval", "why"],
            [[escape(r.application_id), _decision(r.decision), escape(", ".join(r.models) or "-"),
              f"{r.tolerant_requests:,}", _pct(r.cost_reduction_pct), _money(r.monthly_savings_usd),
              _money_interval(r.monthly_savings_ci), escape(r.reason)] for r in data.batching.recommendations],
            numeric={3, 4, 5},
        ))
    return parts


def _spend_table(lines: list[SpendLine]) -> str:
    return _table(
        ["", "spend", "share", "trend"],
        [[escape(line.label), _money(line.cost_usd), _pct(line.share_pct), _pct(line.change_pct, signed=True)]
         for line in lines],
        numeric={1, 2, 3},
    )


def _decision(value: str) -> str:
    return f'<span class="{escape(value)}">{escape(value)}</span>'


def _interval(pair: tuple[float, float] | None, spec: str) -> str:
    return "-" if pair is None else f"({format(pair[0], spec)}, {format(pair[1], spec)})"


def _latency(mean: float | None, ci: tuple[float, float] | None, bound: float | None) -> str:
    """Mean latency change, its interval and the one-sided bound held against the limit."""
    if mean is None:
        return "-"
    return f"{mean:+.0f} {_interval(ci, '+.0f')}" + ("" if bound is None else f"; &le; {bound:+.0f}")


def _limit_ms(limit: float | None) -> str:
    return "any amount" if limit is None else f"{limit:g} ms"


def _loop_section(data: ReportData) -> list[str]:
    """Deployed changes: forecast against what they really saved, per change and in total."""
    s = data.summary
    parts = ['<h2 id="realized">Deployed changes: forecast and realized</h2>']
    if s.loop.proposed or s.loop.decided:
        parts.append(f'<p class="muted">Tonight: approval asked for {len(s.loop.proposed)} change(s); '
                     + escape("; ".join(f"{o} {what}" for o, what in sorted(s.loop.decided.items())) or "no experiment decided")
                     + ".</p>")
    if data.realized:
        parts.append(_table(
            ["application", "optimization", "forecast / month", "realized / month (CI)", "forecast error",
             "quality change (CI)", "latency change ms (CI)", "days"],
            [[escape(r.application_id), escape(r.optimization_id), _money(r.forecast_monthly_savings_usd),
              f"{_money(r.realized_monthly_savings_usd)} ({_money(r.realized_monthly_savings_ci[0])} to "
              f"{_money(r.realized_monthly_savings_ci[1])})",
              f"{_money(r.forecast_error_usd)}" + (f" ({r.forecast_error_pct:+.0f}%)" if r.forecast_error_pct is not None
                                                  else ""),
              "-" if r.quality_change is None else f"{r.quality_change:+.4f} {_interval(r.quality_change_ci, '+.4f')}",
              "-" if r.latency_change_ms is None else f"{r.latency_change_ms:+.0f} {_interval(r.latency_change_ci, '+.0f')}",
              f"{r.days_after:.1f}"] for r in data.realized],
            numeric={2, 3, 4, 7},
        ))
    if data.realized_history:
        parts.append(line_chart({"realized": [(day, realized) for day, realized, _ in data.realized_history],
                                 "forecast": [(day, forecast) for day, _, forecast in data.realized_history]},
                                title="Monthly savings of deployed changes: realized and forecast (USD)",
                                y_label="USD a month"))
    return parts


def render_html(data: ReportData) -> str:
    s = data.summary
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>LLM optimization report - {s.window_end:%Y-%m-%d}</title>",
        f"<style>{STYLE}</style></head><body><main>",
        "<h1>LLM optimization report</h1>",
        f'<p class="muted">Run {escape(s.run_id)}: traffic up to {s.window_end:%Y-%m-%d %H:%M} UTC, '
        f"analyses over {data.analysis_start:%Y-%m-%d} to {s.window_end:%Y-%m-%d}.</p>",
        '<div class="kpis">',
        f'<div class="kpi"><span class="muted">potential savings / month</span><b>{_money(s.potential_monthly_savings_usd)}</b></div>',
        f'<div class="kpi"><span class="muted">recommendations adopted</span><b>{len(s.recommendations)}</b></div>',
        f'<div class="kpi"><span class="muted">teams over budget threshold</span><b>{len(s.budgets_flagged)}</b></div>',
        f'<div class="kpi"><span class="muted">requests loaded / quarantined</span><b>{s.requests_loaded:,} / {s.quarantined:,}</b></div>',
        "</div>",
    ]
    if s.recommendations:
        parts.append('<h2 id="changes">What to change</h2>')
        parts.append(_table(
            ["application", "recommendation", "monthly savings"],
            [[escape(r.application_id), escape(r.description), _money(r.monthly_savings_usd)]
             for r in sorted(s.recommendations, key=lambda r: -r.monthly_savings_usd)],
            numeric={2},
        ))

    if data.realized or data.realized_history or s.loop.decided or s.loop.proposed:
        parts += _loop_section(data)

    parts.append('<h2 id="spend">Spend</h2>')
    series: dict[str, list[tuple[date, float]]] = defaultdict(list)
    for day, model, cost in data.spend_by_model:
        series[model].append((day, cost))
    parts.append(line_chart(series, title="Spend by model per day (USD)", y_label="USD per day"))
    for dimension in ("team", "application", "model"):
        if data.spend_totals.get(dimension):
            parts.append(f"<h3>By {dimension}</h3>")
            parts.append(_spend_table(data.spend_totals[dimension]))

    if data.budgets:
        parts.append('<h2 id="budgets">Budgets</h2>')
        parts.append(_table(
            ["team", "month to date", "budget", "used", "projected month", "alert at", "savings found / month"],
            [[escape(b.team_name) + (' <span class="flag">over threshold</span>' if b.flagged else ""),
              _money(b.month_to_date_usd), _money(b.limit_usd), _pct(b.utilization_pct),
              f"{_money(b.projected_month_usd)} ({_pct(b.projected_utilization_pct)})", _pct(b.alert_threshold_pct),
              _money(b.recommended_monthly_savings_usd)] for b in data.budgets],
            numeric={1, 2, 3, 4, 5, 6},
        ))

    parts.append('<h2 id="cascades">Model cascades</h2>')
    parts.append(f'<p class="muted">Cheapest confidence threshold whose quality change stays within '
                 f"{data.cascades.max_quality_drop} at {1 - data.cascades.alpha:.0%} confidence; a cascade whose "
                 "escalations (which wait for both models) would raise p95 latency beyond the latency budget, "
                 f"or mean latency beyond {_limit_ms(data.cascades.max_latency_increase_ms)} "
                 "(max_latency_increase_ms, one-sided bound), is rejected.</p>")
    parts.append(_table(
        ["application", "decision", "primary -> fallback", "threshold", "levels", "cost", "quality change (CI)",
         "latency ms (CI; bound)", "p95 latency", "savings / month"],
        [[escape(r.application_id), _decision(r.decision),
          escape(f"{r.primary_model or '-'} -> {r.fallback_model or '-'}"),
          "-" if r.confidence_threshold is None else f"{r.confidence_threshold:.2f}",
          "all (no complexity)" if r.complexity_levels is None
          else escape(f"{'/'.join(r.complexity_levels)} ({r.complexity_threshold:.2f})"),
          _pct(-r.cost_reduction_pct if r.cost_reduction_pct is not None else None, signed=True),
          "-" if r.quality_change is None or r.quality_change_ci is None
          else f"{r.quality_change:+.4f} ({r.quality_change_ci[0]:+.4f}, {r.quality_change_ci[1]:+.4f})",
          _latency(r.latency_impact_ms, r.latency_impact_ms_ci, r.latency_increase_bound_ms),
          _pct(r.p95_latency_change_pct, signed=True),
          _money(data.monthly_savings.get(f"model_cascade:{r.application_id}"))]
         for r in data.cascades.recommendations],
        numeric={3, 5, 7, 8, 9},
    ))
    for r in data.cascades.recommendations:
        if r.frontier and r.decision in {"adopt", "reject"}:
            chosen = (r.cost_reduction_pct or 0.0, r.quality_change or 0.0) if r.decision == "adopt" else None
            parts.append(f"<h3>{escape(r.application_id)}: {escape(r.primary_model or '')} first</h3>")
            parts.append(frontier_chart(
                [(p.cost_reduction_pct, p.quality_change, *p.quality_change_ci) for p in r.frontier],
                chosen=chosen, margin=data.cascades.max_quality_drop,
                title=f"Cost and quality across thresholds for {r.application_id}",
            ))
            parts.append(f'<p class="muted">{escape(r.reason)}</p>')

    parts.append('<h2 id="compression">Prompt compression</h2>')
    parts.append(_table(
        ["application", "decision", "technique", "token reduction", "quality change (CI)", "latency ms (CI; bound)",
         "min prompt", "savings / month"],
        [[escape(r.application_id), _decision(r.decision), escape(r.technique or "-"), _pct(r.token_reduction_pct),
          "-" if r.quality_change is None or r.quality_change_ci is None
          else f"{r.quality_change:+.4f} ({r.quality_change_ci[0]:+.4f}, {r.quality_change_ci[1]:+.4f})",
          _latency(r.latency_impact_ms, r.latency_impact_ms_ci, r.latency_increase_bound_ms),
          "-" if r.min_prompt_tokens is None else f"{r.min_prompt_tokens:,}",
          _money(r.estimated_monthly_savings_usd)] for r in data.compression.recommendations],
        numeric={3, 5, 6, 7},
    ))
    parts += [f'<p class="muted">{escape(r.application_id)}: {escape(r.reason)}</p>'
              for r in data.compression.recommendations]
    parts += _caching_and_batching(data)

    parts.append('<h2 id="experiments">Experiments</h2>')
    for experiment in data.experiments:
        parts.append(f"<h3>{escape(experiment.experiment_id)}: {_decision(experiment.recommendation)}"
                     + (f" (winner {escape(experiment.winner)})" if experiment.winner else "") + "</h3>")
        rows = [
            (f"{c.variant_id} {c.metric}", 100 * (c.relative_diff or 0.0),
             100 * (c.relative_ci or (0.0, 0.0))[0], 100 * (c.relative_ci or (0.0, 0.0))[1])
            for c in experiment.comparisons if c.relative_ci is not None
        ]
        parts.append(forest_plot(rows, title=f"Effects in {experiment.experiment_id}",
                                 x_label="change against control (%), with 95% interval"))
        parts.append(_table(
            ["variant", "metric", "control", "variant", "difference (CI)", "p (Holm)", "always-valid p"],
            [[escape(c.variant_id), escape(c.metric), f"{c.control_mean:.5g}", f"{c.treatment_mean:.5g}",
              f"{c.absolute_diff:+.4g} ({c.ci[0]:+.4g}, {c.ci[1]:+.4g})", f"{c.p_value_adjusted:.3g}",
              f"{c.sequential_p_value_adjusted:.3g}"] for c in experiment.comparisons],
            numeric={2, 3, 5, 6},
        ))
        parts += [f'<p class="muted">{escape(reason)}</p>' for reason in experiment.reasons]
        parts.append(f'<p class="muted">Sample ratio check p = {experiment.srm_p_value:.3g}.</p>')

    parts.append('<h2 id="data-quality">Data quality</h2>')
    parts.append(f"<p>{s.requests_loaded:,} requests loaded, {s.duplicates_skipped:,} already present, "
                 f"{s.quarantined:,} quarantined this run ({s.quarantined_total:,} in total).</p>")
    if s.quarantine_reasons:
        parts.append(_table(["rule broken", "rows"],
                            [[escape(k), f"{v:,}"] for k, v in sorted(s.quarantine_reasons.items(), key=lambda kv: -kv[1])],
                            numeric={1}))
    parts.append(f"<p>Events: {s.events.emitted} emitted, {s.events.delivered} delivered, {s.events.pending} pending"
                 + (f" (last error: {escape(s.events.last_error)})" if s.events.last_error else "") + ".</p>")
    parts.append("</main></body></html>")
    return "\n".join(parts)
