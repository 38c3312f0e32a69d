"""What people read about a rollout: the request on the approval form, the evidence behind
it (the diff, the expected savings with their intervals, what Governance said) and, at the
end, what came of it.

Tables stay narrow enough for the Prefect UI's artifact view at 1280 px: long text (model
names, reasons, Governance's notes) goes into lists below them, which wrap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from optimizer.schemas.rollout import (
    Guardrails,
    PolicyCheck,
    ProposedChange,
    RolloutOutcome,
    RuleChange,
)

_KIND_LABELS = {"model_cascade": "model cascade", "preferred_model": "preferred model", "caching": "response caching",
                "batching": "batch API"}


def _label(change: ProposedChange) -> str:
    if change.kind == "prompt_compression":
        return f"{change.technique} compression" if change.technique else "prompt compression"
    return _KIND_LABELS[change.kind]


def _what(change: ProposedChange) -> str:
    if change.kind == "model_cascade":
        return (f"{change.primary_model} answers first; {change.fallback_model} takes requests below "
                f"confidence {change.confidence_threshold}"
                + ("" if change.complexity_threshold is None
                   else f" and those of complexity above {change.complexity_threshold:g}"))
    if change.kind == "prompt_compression":
        return f"{_label(change)}" + (
            f" for prompts of {change.min_prompt_tokens}+ tokens" if change.min_prompt_tokens else "")
    if change.kind == "preferred_model":
        return "prefer " + " then ".join(change.preferred_models)
    if change.kind == "batching":
        return (f"send {', '.join(change.batch_task_types)} requests to the provider's batch API "
                "(answers within 24 hours)")
    return "answer repeated prompts from a cache" + (
        f" for {change.cache_ttl_seconds} s" if change.cache_ttl_seconds else "")


def _savings(change: ProposedChange) -> str:
    return f"${change.monthly_savings_usd:,.2f}" if change.monthly_savings_usd is not None else "-"


def _quality(change: ProposedChange) -> tuple[str, str]:
    """The quality change and its 95% interval, as two short cells."""
    if change.quality_change is None:
        return "-", "-"
    interval = "-"
    if change.quality_change_ci is not None:
        low, high = change.quality_change_ci
        interval = f"{low:+.4f} to {high:+.4f}"
    return f"{change.quality_change:+.4f}", interval


def _total(changes: Sequence[ProposedChange]) -> float:
    return sum(c.monthly_savings_usd or 0.0 for c in changes)


def _who_may_answer(approvers: Sequence[str]) -> str:
    return (f"**Approvers: {', '.join(approvers)}.** Only they can answer this run's form; any other "
            "name is refused and the rollout keeps waiting.")


def render_request(
    *, rollout_id: str, changes: Sequence[ProposedChange], current_version: str, approvers: Sequence[str],
) -> str:
    """The approval form's description: who may answer first, then the change in a few
    lines (the approval gate adds where the full evidence is)."""
    lines = [
        _who_may_answer(approvers),
        "",
        f"Routing change {rollout_id} against version {current_version}: {len(changes)} change(s), expected "
        f"savings ${_total(changes):,.2f} a month.",
        "",
    ]
    for change in changes:
        quality, interval = _quality(change)
        lines.append(f"- {change.application_id}: {_label(change)}, {_savings(change)} a month, quality "
                     f"{quality}" + (f" (95% CI {interval})" if interval != "-" else ""))
    return "\n".join(lines) + "\n"


def render_evidence(
    *,
    rollout_id: str,
    changes: Sequence[ProposedChange],
    diff: Sequence[RuleChange],
    policy: Sequence[PolicyCheck],
    current_version: str,
    canary_percent: float,
    watch_minutes: float,
    guardrails: Guardrails,
    approvers: Sequence[str],
    experiment_percent: float | None = None,
) -> str:
    lines = [
        f"# Routing change {rollout_id}: approval needed",
        "",
        _who_may_answer(approvers),
        "",
        f"Proposed against routing version **{current_version}**: {len(changes)} change(s), "
        f"expected savings **${_total(changes):,.2f} a month**.",
        "",
        "| application | change | $ a month | quality | 95% CI |",
        "|---|---|---:|---:|---|",
    ]
    for change in changes:
        quality, interval = _quality(change)
        lines.append(f"| {change.application_id} | {_label(change)} | {_savings(change)} | {quality} | {interval} |")
    lines += ["", "## What changes", ""]
    lines += [f"- **{c.application_id}**: {_what(c)}." + (f" Why: {c.reason}" if c.reason else "") for c in changes]
    lines += ["", "## Governance", "", "| application | model | verdict |", "|---|---|---|"]
    lines += [f"| {p.application_id} | {p.model} | {'allowed' if p.allowed else '**blocked**'} |" for p in policy]
    notes = [f"- {p.application_id}, {p.model}: {note}" for p in policy for note in [*p.blocking, *p.warnings]]
    lines += ["", *(notes or ["No warnings."]), "", "## Diff", ""]
    for rule in diff:
        lines += [f"**{rule.rule_id}** ({rule.change}): {', '.join(rule.fields)}", "", "```json"]
        if rule.before is not None:
            lines += ["// before", json.dumps(rule.before, indent=2, sort_keys=True)]
        lines += ["// after", json.dumps(rule.after, indent=2, sort_keys=True), "```", ""]
    if experiment_percent is not None:
        lines += [
            "## If you approve",
            "",
            f"The change goes live as an A/B experiment: {experiment_percent:g}% of each application's traffic "
            f"takes the new rules (treatment) and the rest keeps the current ones (control), both measured over "
            "the same hours. Each night an always-valid sequential test decides: the winner "
            "is deployed to all traffic, a loser stopped (the current rules restored), or the experiment goes on "
            "until its maximum duration. If its own traffic breaks the guardrails against control (error rate "
            f"+{guardrails.max_error_rate_increase:.1%}, p95 latency +{guardrails.max_p95_latency_increase_pct:g}%, "
            f"quality -{guardrails.max_quality_drop}), it is rolled back at once.",
        ]
        return "\n".join(lines) + "\n"
    lines += [
        "## If you approve",
        "",
        f"The change goes out as a canary on {canary_percent:g}% of each application's traffic, watched for "
        f"{watch_minutes:g} minutes against the hour before it. It is promoted only if no application's "
        f"error rate rises more than {guardrails.max_error_rate_increase:.1%}, p95 latency more than "
        f"{guardrails.max_p95_latency_increase_pct:g}%, or quality falls more than {guardrails.max_quality_drop}; "
        f"otherwise version {current_version} is restored automatically.",
    ]
    return "\n".join(lines) + "\n"


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_outcome(outcome: RolloutOutcome) -> str:
    """The rollout's result artifact: what happened, the versions, who decided, and the
    guardrail readings the verdict rests on."""
    approval = outcome.approval
    decided = "-"
    if approval is not None and approval.approver:
        decided = f"{approval.approver} ({approval.decision})" + (f": {approval.comment}" if approval.comment else "")
    elif approval is not None:
        decided = "nobody answered in time"
    facts = [
        ("applications", ", ".join(outcome.applications) or "-"),
        ("status", f"`{outcome.status}`"),
        ("expected savings", f"${_total(outcome.changes):,.2f} a month"),
        ("routing version before", outcome.previous_version or "-"),
        ("canary version", outcome.canary_version or "-"),
        ("experiment", f"{outcome.experiment_id} ({outcome.experiment_version})" if outcome.experiment_id else "-"),
        ("promoted version", outcome.applied_version or "-"),
        ("restored version", outcome.restored_version or "-"),
        ("approval", decided),
    ]
    lines = [f"# Rollout {outcome.rollout_id}: {outcome.title}", "", outcome.message, "",
             f"| outcome | {outcome.title} |", "|---|---|", *[f"| {name} | {value} |" for name, value in facts]]
    verdict = outcome.guardrails
    if verdict is not None:
        lines += ["", "## Guardrails", "",
                  "| application | window | requests | error rate | p95 latency ms | quality | scored |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r.application_id} | {r.window} | {r.requests:,} | {_number(r.error_rate, '.2%')} | "
                  f"{_number(r.p95_latency_ms, ',.0f')} | {_number(r.quality, '.3f')} | {r.evaluated:,} |"
                  for r in verdict.readings]
        lines += ["", *[f"- breach: {b}" for b in verdict.breaches], *[f"- {u}" for u in verdict.unchecked]]
    return "\n".join(lines).rstrip() + "\n"
