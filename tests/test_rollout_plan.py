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


def test_a_rollout_outcome_moves_from_proposal_to_its_end() -> None:
    from datetime import UTC, datetime

    from optimizer.rollout import outcomes
    from optimizer.schemas.rollout import ApprovalAnswer, GuardrailVerdict, PolicyCheck, Proposal
    from optimizer.schemas.routing import RoutingConfigState

    current = RoutingConfigState.model_validate({"config_id": "c1", "version": "v1", "routing_rules": [],
                                                 "last_updated": datetime.now(UTC), "status": "active"})
    proposal = Proposal(changes=[], current=current, proposed=current)
    start = outcomes.proposed("r1", proposal)
    assert (start.status, start.previous_version) == ("no_change", "v1")
    refusal = PolicyCheck(application_id="a", model="m", allowed=False, blocking=["EU only: data residency"])
    assert outcomes.blocked(start, ["unknown model x"], [refusal]).message == "unknown model x; EU only: data residency"
    assert outcomes.blocked(start, [], []).status == "no_change"  # allowed: on to approval
    assert outcomes.answered(start, ApprovalAnswer(decision="timeout"), 60).status == "timed_out"
    assert outcomes.answered(start, ApprovalAnswer(decision="reject", approver="bob"), 60).message == "rejected by bob"
    approved = outcomes.answered(start, ApprovalAnswer(decision="approve", approver="alice"), 60)
    versions = outcomes.Versions.of("r1", "v1")
    promoted = outcomes.judged(approved, versions, GuardrailVerdict(healthy=True, unchecked=["quality not checked"]))
    assert (promoted.status, promoted.applied_version, promoted.canary_version) == ("applied", "opt-r1", "opt-r1-canary")
    assert promoted.message == "promoted opt-r1; quality not checked"
    undone = outcomes.judged(approved, versions, GuardrailVerdict(healthy=False, breaches=["error rate +3 points"]))
    assert (undone.status, undone.restored_version, undone.message) == ("rolled_back", "restore-v1-r1",
                                                                         "error rate +3 points")
