"""What an approver reads before deciding: the diff, the expected savings with their
intervals, and what Governance said."""

from __future__ import annotations

import json
from collections.abc import Sequence

from optimizer.schemas.rollout import Guardrails, PolicyCheck, ProposedChange, RuleChange


def _change_line(change: ProposedChange) -> str:
    if change.kind == "model_cascade":
        what = (f"cascade: {change.primary_model} first, {change.fallback_model} below confidence "
                f"{change.confidence_threshold}")
    elif change.kind == "prompt_compression":
        what = f"{change.technique} compression" + (
            f" for prompts of {change.min_prompt_tokens}+ tokens" if change.min_prompt_tokens else "")
    elif change.kind == "preferred_model":
        what = "prefer " + " then ".join(change.preferred_models)
    else:
        what = "enable response caching"
    savings = f"${change.monthly_savings_usd:,.2f}/month" if change.monthly_savings_usd is not None else "-"
    quality = "-"
    if change.quality_change is not None and change.quality_change_ci is not None:
        low, high = change.quality_change_ci
        quality = f"{change.quality_change:+.4f} (95% CI {low:+.4f} to {high:+.4f})"
    return f"| {change.application_id} | {what} | {savings} | {quality} |"


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
) -> str:
    total = sum(c.monthly_savings_usd or 0.0 for c in changes)
    lines = [
        f"# Routing change {rollout_id}: approval needed",
        "",
        f"Proposed against routing version **{current_version}**: {len(changes)} change(s), "
        f"expected savings **${total:,.2f} a month**.",
        "",
        "| application | change | savings | quality change |",
        "|---|---|---:|---|",
        *[_change_line(c) for c in changes],
        "",
        "Why:",
        *[f"- {c.application_id}: {c.reason}" for c in changes if c.reason],
        "",
        "## Governance",
        "",
        "| application | model | verdict | notes |",
        "|---|---|---|---|",
        *[
            f"| {p.application_id} | {p.model} | {'allowed' if p.allowed else '**blocked**'} | "
            f"{'; '.join([*p.blocking, *p.warnings]) or '-'} |"
            for p in policy
        ],
        "",
        "## Diff",
        "",
    ]
    for rule in diff:
        lines += [f"**{rule.rule_id}** ({rule.change}): {', '.join(rule.fields)}", "", "```json"]
        if rule.before is not None:
            lines += ["// before", json.dumps(rule.before, indent=2, sort_keys=True)]
        lines += ["// after", json.dumps(rule.after, indent=2, sort_keys=True), "```", ""]
    lines += [
        "## If you approve",
        "",
        f"The change goes out as a canary on {canary_percent:g}% of each application's traffic, watched for "
        f"{watch_minutes:g} minutes against the hour before it. It is promoted only if no application's "
        f"error rate rises more than {guardrails.max_error_rate_increase:.1%}, p95 latency more than "
        f"{guardrails.max_p95_latency_increase_pct:g}%, or quality falls more than {guardrails.max_quality_drop}; "
        f"otherwise version {current_version} is restored automatically.",
        "",
        f"Approvers: {', '.join(approvers)}. Answer in the form of this run: decision, your name, a comment.",
    ]
    return "\n".join(lines) + "\n"
