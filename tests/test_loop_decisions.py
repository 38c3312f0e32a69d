"""The closed loop's decisions, as pure functions: which findings are asked for, how an
experiment's arms are laid out, promoted and ended, and what a night's evidence decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from optimizer.pipeline.loop import decide
from optimizer.pipeline.nightly import EXPERIMENT_GUARDRAILS
from optimizer.rollout import plan
from optimizer.rollout.guardrails import judge
from optimizer.rollout.proposals import plan_proposals
from optimizer.schemas.analysis import ExperimentAnalysis, ExperimentFinding
from optimizer.schemas.optimizations import Optimization, fingerprint
from optimizer.schemas.registry import StoredExperiment, TestPeriod
from optimizer.schemas.rollout import GuardrailReading, Guardrails, GuardrailVerdict, ProposedChange
from optimizer.schemas.routing import RoutingConfig, RoutingRule, TargetSelection

NOW = datetime(2026, 11, 25, tzinfo=UTC)
MINI, GPT4O = "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"
CASCADE = ProposedChange(application_id="support-bot", kind="model_cascade", primary_model=MINI,
                         fallback_model=GPT4O, confidence_threshold=0.9, monthly_savings_usd=80.0)
COMPRESSION = ProposedChange(application_id="doc-qa", kind="prompt_compression", technique="llmlingua",
                             min_prompt_tokens=800, monthly_savings_usd=140.0)


def known(change: ProposedChange, status: str, optimization_id: str = "opt-old") -> Optimization:
    return Optimization.model_validate({
        "optimization_id": optimization_id, "application_id": change.application_id, "changes": [change],
        "fingerprint": fingerprint([change]), "status": status, "proposed_by": "run-0",
        "proposed_at": NOW, "updated_at": NOW})


def test_each_application_is_asked_once_and_a_newer_finding_supersedes_a_waiting_one() -> None:
    fresh = plan_proposals([CASCADE, COMPRESSION], [], run_id="run-1", now=NOW)
    assert [(o.application_id, o.status, o.forecast_monthly_savings_usd) for o in fresh.new] == [
        ("doc-qa", "waiting_approval", 140.0), ("support-bot", "waiting_approval", 80.0)]

    # The same change is never asked for twice, whatever became of it; the savings estimate
    # moving does not make it another change.
    cheaper = CASCADE.model_copy(update={"monthly_savings_usd": 95.0, "reason": "new evidence"})
    again = plan_proposals([cheaper], [known(CASCADE, "rejected")], run_id="run-2", now=NOW)
    assert again.new == [] and again.skipped == {"support-bot": "this change was proposed before"}

    # Tuned differently, it is still the same change.
    retuned = CASCADE.model_copy(update={"confidence_threshold": 0.85})
    assert plan_proposals([retuned], [known(CASCADE, "rolled_back")], run_id="run-2", now=NOW).new == []

    # A different change for the application replaces the one still waiting, with a reason.
    newer = CASCADE.model_copy(update={"primary_model": "gemini-1.5-flash-002"})
    replaced = plan_proposals([newer], [known(CASCADE, "waiting_approval")], run_id="run-3", now=NOW)
    assert [o.application_id for o in replaced.new] == ["support-bot"]
    assert [(o.optimization_id, o.status) for o in replaced.superseded] == [("opt-old", "superseded")]
    assert "run-3" in replaced.superseded[0].reason and replaced.superseded[0].history[-1].endswith(
        replaced.superseded[0].reason)

    # Nothing new while the application has a change under experiment.
    busy = plan_proposals([newer], [known(CASCADE, "experimenting")], run_id="run-4", now=NOW)
    assert busy.new == [] and "under experiment" in busy.skipped["support-bot"]


def rule(application: str, model: str) -> RoutingRule:
    return RoutingRule(id=f"rule-{application}", name=f"{application} routing", priority=100,
                       conditions={"application_id": application},
                       target_selection=TargetSelection(strategy="capability_match", preferred_models=[model]))


def test_an_experiment_runs_beside_control_and_ends_promoted_or_undone() -> None:
    current = RoutingConfig(routing_rules=[rule("support-bot", GPT4O), rule("doc-qa", GPT4O)])
    proposed = plan.apply_changes(current, [CASCADE])
    live = plan.experiment(current, proposed, 10, optimization_id="opt-1", experiment_id="exp-opt-1")
    arms = {r.id: r for r in live.routing_rules if "traffic_percentage" in r.conditions}
    assert set(arms) == {"rule-support-bot-treatment", "rule-support-bot-control"}
    treatment, control = arms["rule-support-bot-treatment"], arms["rule-support-bot-control"]
    assert treatment.target_selection.cascade_config is not None
    assert control.target_selection == current.routing_rules[0].target_selection
    for arm, variant, share in ((treatment, "treatment", 10), (control, "control", 90)):
        assert arm.conditions == {"application_id": "support-bot", "traffic_percentage": share}
        assert arm.optimization_hints is not None
        assert arm.optimization_hints.model_extra == {"optimization_id": "opt-1", "experiment_id": "exp-opt-1",
                                                      "variant_id": variant}

    assert plan.end_experiment(live, "opt-1") == current
    assert plan.end_experiment(live, "opt-other") == live
    promoted = plan.promote_experiment(live, "opt-1")
    assert [r.id for r in promoted.routing_rules] == ["rule-support-bot", "rule-doc-qa"]
    bot = promoted.routing_rules[0]
    assert bot.target_selection == treatment.target_selection and bot.conditions == {"application_id": "support-bot"}
    assert bot.optimization_hints is not None and bot.optimization_hints.model_extra == {"optimization_id": "opt-1"}


def finding(recommendation: str, winner: str | None = None, started: datetime = NOW) -> ExperimentFinding:
    return ExperimentFinding(
        definition=StoredExperiment(experiment_id="exp-opt-1", experiment_type="model_selection",
                                    test_period=TestPeriod(start=started)),
        analysis=ExperimentAnalysis.model_validate({
            "experiment_id": "exp-opt-1", "srm_p_value": 0.5, "srm_detected": False, "variants": [],
            "comparisons": [], "winner": winner, "recommendation": recommendation, "reasons": ["why"]}),
    )


def test_a_nights_evidence_deploys_stops_rolls_back_or_waits() -> None:
    opt = known(CASCADE, "experimenting", "opt-1").model_copy(update={"experiment_id": "exp-opt-1",
                                                                     "started_at": NOW})
    healthy, broken = GuardrailVerdict(healthy=True), GuardrailVerdict(healthy=False, breaches=["p95 +61%"])
    later = NOW + timedelta(days=2)
    assert decide(opt, finding("deploy_to_production", "treatment"), healthy, later, 14)[0] == "deploy"
    assert decide(opt, finding("deploy_to_production", "treatment"), broken, later, 14) == (
        "roll_back", "guardrails broken against control: p95 +61%")
    assert decide(opt, finding("keep_control"), healthy, later, 14)[0] == "stop"
    assert decide(opt, finding("invalid_srm"), healthy, later, 14)[0] == "stop"
    assert decide(opt, finding("continue"), healthy, later, 14) == ("continue", "not enough evidence yet")
    assert decide(opt, finding("continue"), healthy, NOW + timedelta(days=14), 14) == (
        "stop", "inconclusive after 14 days")
    # Too little traffic to judge is no breach: the experiment waits for more.
    quiet = GuardrailVerdict(healthy=False, unchecked=["support-bot: 3 requests"])
    assert decide(opt, None, quiet, later, 14)[0] == "continue"
    # Without an analysis yet, the Registry's start (the platform's clock) still bounds it.
    assert decide(opt, None, healthy, NOW + timedelta(days=15), 14, started=NOW)[0] == "stop"


def test_realized_savings_scale_the_saving_per_request_to_a_month_with_its_interval() -> None:
    from optimizer.analysis.realized import DAYS_PER_MONTH, ServedTraffic, realized_savings
    from optimizer.analysis.statistics import SampleMean

    before = ServedTraffic(10_000, 7.0, SampleMean(10_000, 0.0030, 1e-6), SampleMean(10_000, 900, 4e4),
                           SampleMean(2_500, 0.92, 0.01))
    after = ServedTraffic(3_000, 2.0, SampleMean(3_000, 0.0018, 1e-6), SampleMean(3_000, 1100, 9e4),
                          SampleMean(750, 0.91, 0.01))
    found = realized_savings("opt-1", "support-bot", before, after, forecast_monthly_usd=50.0)
    assert found is not None
    per_day = 1_500
    assert found.saving_per_request_usd == pytest.approx(0.0012)
    assert found.realized_monthly_savings_usd == pytest.approx(0.0012 * per_day * DAYS_PER_MONTH)
    low, high = found.realized_monthly_savings_ci
    assert low < found.realized_monthly_savings_usd < high
    assert found.forecast_error_usd == pytest.approx(found.realized_monthly_savings_usd - 50.0)
    assert found.quality_change == pytest.approx(-0.01) and found.latency_change_ms == pytest.approx(200)
    assert realized_savings("opt-1", "support-bot", before, ServedTraffic(0, 0.0, *[SampleMean(0, 0, 0)] * 3),
                            forecast_monthly_usd=50.0) is None  # nothing served yet: nothing to say


def test_an_experiments_nightly_guardrail_needs_always_valid_evidence_of_more_errors() -> None:
    """Read night after night, a fixed-level test would roll back a good change sooner or
    later; the always-valid one does not, for the same unlucky night, and still catches a real
    rise."""
    control = GuardrailReading(application_id="doc-qa", window="baseline", requests=4400, error_rate=0.006,
                               p95_latency_ms=9000, quality=0.89, evaluated=2200)

    def treatment(requests: int, error_rate: float) -> dict[str, GuardrailReading]:
        return {"doc-qa": GuardrailReading(application_id="doc-qa", window="canary", requests=requests,
                                           error_rate=error_rate, p95_latency_ms=9000, quality=0.89,
                                           evaluated=requests // 2)}

    unlucky = treatment(490, 0.018)  # 9 errors where 3 were expected
    assert not judge({"doc-qa": control}, unlucky, Guardrails()).healthy  # one look: significant at 1%
    assert judge({"doc-qa": control}, unlucky, EXPERIMENT_GUARDRAILS).healthy
    broken = treatment(2000, 0.05)
    assert judge({"doc-qa": control}, broken, EXPERIMENT_GUARDRAILS).breaches == [
        "doc-qa: error rate rose from 0.60% to 5.00%"]
