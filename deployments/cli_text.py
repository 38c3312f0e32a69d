"""How the CLI prints results for people (without `--json`): a few lines per result."""

from __future__ import annotations

from typing import Any


def nightly_text(summary: Any) -> str:
    lines = [
        f"Loaded {summary.requests_loaded:,} new requests "
        f"({summary.requests_total:,} in the warehouse); "
        f"quarantined {summary.quarantined:,} malformed rows.",
    ]
    if summary.quarantine_reasons:
        top = sorted(summary.quarantine_reasons.items(), key=lambda kv: -kv[1])[:4]
        lines.append("Quarantine reasons: " + "; ".join(f"{r} ({n})" for r, n in top))
    lines.append(
        f"Recommendations: {len(summary.recommendations)} adopted, worth "
        f"${summary.potential_monthly_savings_usd:,.2f} a month"
        + "".join(f"\n  {r.application_id}: {r.description} (${r.monthly_savings_usd:,.2f}/month)"
                  for r in sorted(summary.recommendations, key=lambda r: -r.monthly_savings_usd))
    )
    if summary.experiment_outcomes:
        lines.append("Experiments: " + "; ".join(
            f"{o.experiment_id} {o.recommendation}" + (f" ({o.winner} wins)" if o.winner else "")
            for o in summary.experiment_outcomes))
    loop = summary.loop
    if loop.proposed or loop.waiting_for_deployment or loop.decided:
        lines.append(
            f"Approval asked for {len(loop.proposed)} change(s)"
            + (f"; {len(loop.waiting_for_deployment)} wait for a rollout deployment to ask through"
               if loop.waiting_for_deployment else "")
            + "".join(f"\n  {o}: {what}" for o, what in sorted(loop.decided.items())))
    if summary.budgets_flagged:
        lines.append("Over their budget alert threshold: " + ", ".join(summary.budgets_flagged))
    lines.append(f"Events: {summary.events.delivered} delivered, {summary.events.pending} pending")
    lines.append(f"Report: {summary.report}")
    return "\n".join(lines)


def ingest_text(summary: Any) -> str:
    text = (
        f"{summary.source}: {summary.rows_in:,} rows read, {summary.loaded:,} loaded, "
        f"{summary.duplicates_skipped:,} already present, {summary.quarantined:,} quarantined "
        f"({summary.requests_total:,} requests in the warehouse)"
    )
    if summary.quarantine_reasons:
        text += "\nQuarantine reasons: " + "; ".join(
            f"{r} ({n})" for r, n in sorted(summary.quarantine_reasons.items(), key=lambda kv: -kv[1])
        )
    return text


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def interval(pair: tuple[float, float] | None) -> str:
    return "-" if pair is None else f"[{pair[0]:+.4f}, {pair[1]:+.4f}]"


def cascade_text(report: Any) -> str:
    lines = [f"Cascades (max quality drop {report.max_quality_drop}, alpha {report.alpha}):"]
    for r in report.recommendations:
        lines.append(
            f"  {r.application_id}: {r.decision}"
            + (f" - {r.primary_model} first, {r.fallback_model} below confidence {r.confidence_threshold:.2f}; "
               f"cost {pct(-r.cost_reduction_pct if r.cost_reduction_pct is not None else None)}, "
               f"quality {r.quality_change:+.4f} {interval(r.quality_change_ci)}"
               if r.decision == "adopt" else "")
        )
        lines.append(f"      {r.reason}")
    return "\n".join(lines)


def compression_text(report: Any) -> str:
    lines = [f"Compression (max quality drop {report.max_quality_drop}, alpha {report.alpha}):"]
    for r in report.recommendations:
        lines.append(f"  {r.application_id} ({r.technique} on {r.model}): {r.decision}")
        lines.append(f"      {r.reason}")
    return "\n".join(lines)


def experiment_text(report: Any) -> str:
    lines = []
    for e in report.experiments:
        lines.append(
            f"{e.experiment_id}: {e.recommendation}"
            + (f" (winner {e.winner})" if e.winner else "")
            + f"; sample ratio p = {e.srm_p_value:.3g}"
        )
        for c in e.comparisons:
            lines.append(
                f"  {c.variant_id} {c.metric}: {c.control_mean:.5g} -> {c.treatment_mean:.5g} "
                f"({c.absolute_diff:+.4g}, CI {c.ci[0]:+.4g} to {c.ci[1]:+.4g}, p_adj {c.p_value_adjusted:.3g})"
            )
        lines += [f"  {reason}" for reason in e.reasons]
    return "\n".join(lines)


def simulation_text(result: Any) -> str:
    lines = [f"{result.days} nights in the {result.world} world, approving {result.approve}: "
             f"{result.proposals} asked, {result.approvals} approved, {result.experiments_started} experiments, "
             f"{result.deployed} deployed, {result.stopped} stopped, {result.rolled_back} rolled back.",
             f"Savings a month: realized ${result.realized_monthly_savings_usd:,.2f} (forecast "
             f"${result.forecast_monthly_savings_usd:,.2f}; truly ${result.true_monthly_savings_usd:,.2f}; "
             f"the world's best ${result.oracle_monthly_savings_usd:,.2f}"
             + (f", {result.realized_share_of_oracle:.0%} of it" if result.realized_share_of_oracle is not None else "")
             + ").",
             f"Quality violations: {result.quality_violations} deployed, {result.violation_days} night(s) with any; "
             f"changes proposed twice: {result.proposed_twice}; unanswered requests: {result.unanswered}; "
             f"{result.seconds:.0f} s."]
    return "\n".join(lines)
