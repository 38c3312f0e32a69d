"""The rollout's plan, as pure functions: what a canary's guardrails watch."""

from __future__ import annotations

from optimizer.rollout import plan
from optimizer.schemas.rollout import ProposedChange
from optimizer.schemas.routing import RoutingConfig, RoutingRule, TargetSelection

MINI, GPT4O, HAIKU = "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "claude-3-5-haiku-20241022"


def rule(application: str, *models: str) -> RoutingRule:
    return RoutingRule(id=f"rule-{application}", name=application, priority=100,
                       conditions={"application_id": application},
                       target_selection=TargetSelection(strategy="capability_match", preferred_models=list(models)))


def test_guardrails_watch_every_model_an_application_is_routed_to_after_all_its_changes() -> None:
    current = RoutingConfig(routing_rules=[rule("support-bot", GPT4O), rule("doc-qa", HAIKU), rule("triage", MINI)])
    changes = [
        ProposedChange(application_id="support-bot", kind="model_cascade", primary_model=MINI,
                       fallback_model=GPT4O, confidence_threshold=0.9),
        # Named last, and naming no model: it must not hide the cascade's models.
        ProposedChange(application_id="support-bot", kind="prompt_compression", technique="llmlingua"),
        ProposedChange(application_id="doc-qa", kind="prompt_compression", technique="llmlingua"),
    ]
    proposed = plan.apply_changes(current, changes)
    changed = plan.changed_applications(plan.diff(current, proposed))
    assert changed == ["doc-qa", "support-bot"]
    assert plan.watched_models(proposed, changed) == {"doc-qa": [HAIKU], "support-bot": [MINI, GPT4O]}
