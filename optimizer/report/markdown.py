"""The run summary as Markdown: the Prefect artifact people read in the UI."""

from __future__ import annotations

from optimizer.report.summary import ReportData


def _money(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def render_markdown(data: ReportData) -> str:
    s = data.summary
    span = f"{s.window_start:%Y-%m-%d %H:%M}" if s.window_start else "the watermark"
    lines = [
        "# Nightly optimization",
        "",
        f"Loaded {s.requests_loaded:,} new requests from {span} to {s.window_end:%Y-%m-%d %H:%M} UTC "
        f"({s.requests_total:,} in the warehouse); {s.quarantined:,} malformed rows quarantined.",
        "",
        f"**Potential savings: {_money(s.potential_monthly_savings_usd)} a month** from "
        f"{len(s.recommendations)} adopted recommendation(s).",
        "",
    ]
    if s.recommendations:
        lines += ["| application | recommendation | monthly savings |", "|---|---|---:|"]
        lines += [
            f"| {r.application_id} | {r.description} | {_money(r.monthly_savings_usd)} |"
            for r in sorted(s.recommendations, key=lambda r: -r.monthly_savings_usd)
        ]
        lines.append("")
    if data.realized:
        lines += ["## Deployed changes: forecast and realized", "",
                  "| application | optimization | forecast / month | realized / month | 95% CI | forecast error |",
                  "|---|---|---:|---:|---|---:|"]
        lines += [f"| {r.application_id} | {r.optimization_id} | {_money(r.forecast_monthly_savings_usd)} | "
                  f"{_money(r.realized_monthly_savings_usd)} | {_money(r.realized_monthly_savings_ci[0])} to "
                  f"{_money(r.realized_monthly_savings_ci[1])} | {_money(r.forecast_error_usd)} |" for r in data.realized]
        lines.append("")
    if s.loop.proposed or s.loop.decided:
        lines += [f"Approval asked for {len(s.loop.proposed)} change(s)."]
        lines += [f"- {o}: {what}" for o, what in sorted(s.loop.decided.items())]
        lines.append("")
    limit = data.cascades.max_latency_increase_ms
    lines += ["## Cascades", "", f"Latency limit (max_latency_increase_ms): {'none' if limit is None else f'{limit:g} ms'}.",
              "", "| application | decision | levels | latency_impact_ms (bound) | why |", "|---|---|---|---:|---|"]
    lines += [f"| {r.application_id} | {r.decision} | {_levels(r.complexity_levels, r.complexity_threshold)} | "
              f"{_ms(r.latency_impact_ms, r.latency_increase_bound_ms)} | {r.reason} |"
              for r in data.cascades.recommendations]
    lines += ["", "## Compression", "", "| application | decision | latency_impact_ms (bound) | why |", "|---|---|---:|---|"]
    lines += [f"| {r.application_id} | {r.decision} | {_ms(r.latency_impact_ms, r.latency_increase_bound_ms)} | "
              f"{r.reason} |" for r in data.compression.recommendations]
    for title, found in (("Caching", data.caching), ("Batch pricing", data.batching)):
        if found is not None:
            lines += ["", f"## {title}", "", "| application | decision | why |", "|---|---|---|"]
            lines += [f"| {r.application_id} | {r.decision} | {r.reason} |" for r in found.recommendations]
    lines += ["", "## Experiments", "", "| experiment | recommendation | winner |", "|---|---|---|"]
    lines += [f"| {e.experiment_id} | {e.recommendation} | {e.winner or '-'} |" for e in data.experiments]
    if data.budgets:
        lines += ["", "## Budgets", "", "| team | month to date | budget | projected | flagged | savings found |",
                  "|---|---:|---:|---:|---|---:|"]
        lines += [
            f"| {b.team_name} | {_money(b.month_to_date_usd)} | {_money(b.limit_usd)} | "
            f"{b.projected_utilization_pct:.0f}% | {'**yes**' if b.flagged else 'no'} | "
            f"{_money(b.recommended_monthly_savings_usd)} |"
            for b in data.budgets
        ]
    lines += ["", f"Events: {s.events.emitted} emitted, {s.events.delivered} delivered, {s.events.pending} pending."]
    if s.quarantine_reasons:
        lines += ["", "## Quarantined rows", "", "| rule broken | rows |", "|---|---:|"]
        lines += [f"| {reason} | {n:,} |" for reason, n in sorted(s.quarantine_reasons.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines) + "\n"


def _ms(mean: float | None, bound: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:+.0f}" + ("" if bound is None else f" (≤ {bound:+.0f})")


def _levels(levels: list[str] | None, threshold: float | None) -> str:
    return "all (no complexity)" if levels is None else f"{'/'.join(levels)} ({threshold:.2f})"
