"""From analysis results to Registry records, CloudEvents and budget statuses (pure code)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from optimizer import experiment_records
from optimizer import recommendations as build
from optimizer.analysis.budgets import TeamBudget, budget_statuses
from optimizer.analysis.experiments import VariantStatistics, analyse_experiment
from optimizer.analysis.statistics import Proportion, SampleMean
from optimizer.schemas.analysis import CascadeRecommendation
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.events import EXPERIMENT_COMPLETED, OPTIMIZATION_FAILED
from optimizer.schemas.registry import ExperimentResultData, StoredExperiment, TestPeriod

NOW = datetime(2026, 11, 25, 2, tzinfo=UTC)
PROFILE = ApplicationProfile("support-bot", "team-support", "gpt-4o", 70_000, 700.0, 600.0, 170.0, 7.0)


def cascade(decision: str = "adopt") -> CascadeRecommendation:
    return CascadeRecommendation(
        application_id="support-bot", decision=decision, primary_model="gpt-4o-mini", fallback_model="gpt-4o",
        confidence_threshold=0.9, escalation_rate=0.45, cost_reduction_pct=40.0, quality_change=-0.015,
        quality_change_ci=(-0.019, -0.011), n_pairs=2000, reason="...", latency_change_ms=300.0,
    )


def test_cascade_savings_scale_the_applications_spend() -> None:
    assert PROFILE.daily_cost_usd == 100.0
    assert build.monthly_savings_usd(cascade(), PROFILE) == pytest.approx(0.4 * 100 * 30)
    assert build.monthly_savings_usd(cascade("reject"), PROFILE) == 0.0


def test_an_adopted_cascade_becomes_the_specifications_recommendation() -> None:
    recommendation = build.registry_recommendation(cascade(), PROFILE, run_id="run1", alpha=0.05)
    assert recommendation is not None
    assert recommendation.type == "model_cascade" and recommendation.confidence == 0.95
    assert recommendation.implementation["primary_model"] == "gpt-4o-mini"
    assert recommendation.implementation["escalation_model"] == "gpt-4o"
    assert recommendation.implementation["escalation_criteria"] == {"confidence_threshold": 0.9}
    assert recommendation.estimated_impact.cost_savings_daily_usd == pytest.approx(40.0)
    assert build.registry_recommendation(cascade("reject"), PROFILE, run_id="run1", alpha=0.05) is None
    request = build.recommendation_request(PROFILE, [recommendation], 0.02)
    assert request.current_configuration.current_daily_cost_usd == 100.0
    assert request.recommendations == [recommendation]


def experiment(treatment_cost: float, n_treatment: int = 20000) -> tuple[StoredExperiment, object]:
    rng = np.random.default_rng(1)

    def arm(name: str, n: int, cost: float) -> VariantStatistics:
        return VariantStatistics(name, SampleMean.of(rng.gamma(2, cost / 2, n)), SampleMean.of(rng.lognormal(7, 0.3, n)),
                                 SampleMean.of(np.clip(rng.normal(0.9, 0.1, n // 2), 0, 1)), Proportion(n, 5))

    definition = StoredExperiment(
        experiment_id="exp-1", experiment_type="model_selection", hypothesis="cheaper",
        configuration={"variants": [{"variant_id": "control"}, {"variant_id": "treatment"}],
                       "traffic_allocation": {"control": 0.5, "treatment": 0.5}},
        test_period=TestPeriod(start=NOW - timedelta(days=14)),
    )
    analysis = analyse_experiment("exp-1", [arm("control", 20000, 0.02), arm("treatment", n_treatment, treatment_cost)],
                                  {"control": 0.5, "treatment": 0.5})
    return definition, analysis


def test_a_concluded_experiment_emits_the_experiment_result_event() -> None:
    definition, analysis = experiment(0.01)
    assert analysis.recommendation == "deploy_to_production"  # type: ignore[attr-defined]
    event = experiment_records.experiment_event(analysis, definition, alpha=0.05, now=NOW)  # type: ignore[arg-type]
    assert event is not None and event.type == EXPERIMENT_COMPLETED and event.subject == "experiment/exp-1"
    data = ExperimentResultData.model_validate(event.data)
    assert data.winner is not None and data.winner.variant_id == "treatment"
    assert data.winner.improvement_metrics["cost_reduction_percentage"] == pytest.approx(50, abs=3)
    assert [v.traffic_percentage for v in data.variants] == [50.0, 50.0]
    assert data.duration_hours == pytest.approx(14 * 24)
    stored = experiment_records.stored_experiment(analysis, definition, alpha=0.05, now=NOW)  # type: ignore[arg-type]
    assert stored.status == "completed" and stored.test_period.end == NOW and stored.results is not None


def test_a_running_experiment_emits_nothing_and_a_broken_one_fails() -> None:
    definition, running = experiment(0.0199, n_treatment=20000)
    assert running.recommendation == "continue"  # type: ignore[attr-defined]
    assert experiment_records.experiment_event(running, definition, alpha=0.05, now=NOW) is None  # type: ignore[arg-type]
    assert experiment_records.stored_experiment(running, definition, alpha=0.05, now=NOW).status == "running"  # type: ignore[arg-type]
    _, broken = experiment(0.01, n_treatment=15000)
    event = experiment_records.experiment_event(broken, definition, alpha=0.05, now=NOW)  # type: ignore[arg-type]
    assert event is not None and event.type == OPTIMIZATION_FAILED


def test_budget_status_projects_the_month_and_flags_the_threshold() -> None:
    budgets = [TeamBudget("team-a", 1000.0, 80.0, "p-a"), TeamBudget("team-b", 1000.0, 80.0, "p-b")]
    statuses = budget_statuses(budgets, {"team-a": 500.0, "team-b": 200.0}, days_elapsed=15, days_in_month=30,
                               monthly_savings_usd={"team-a": 300.0}, team_names={"team-a": "A"})
    a, b = statuses
    assert (a.team_name, a.utilization_pct, a.flagged) == ("A", 50.0, True)
    assert a.projected_month_usd == pytest.approx(1000.0)
    assert a.projected_with_savings_usd == pytest.approx(1000 - 300 * 0.5)
    assert b.projected_utilization_pct == pytest.approx(40.0) and not b.flagged
