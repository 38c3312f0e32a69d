"""The sandbox's platform reacts: traffic is served by the Orchestrator's live routing rules,
from the moment a version takes effect, and the requests an optimization routes carry its
id (and an experiment's variant) in their telemetry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from optimizer.clients import PlatformClients
from optimizer.sandbox import SandboxServer
from optimizer.sandbox.state import SandboxState
from optimizer.sandbox.world import WORLDS
from optimizer.schemas.routing import (
    CascadeConfig,
    EscalationThreshold,
    OptimizationHints,
    RoutingConfigUpdate,
    RoutingRule,
    TargetSelection,
)
from optimizer.settings import SANDBOX_DEFAULT_TOKEN
from tests.conftest import SANDBOX_NOW, sandbox_config, settings_for

MINI, FOUR_O, SONNET = "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[SandboxServer, PlatformClients]]:
    with SandboxServer(sandbox_config(requests_per_day=20_000)) as sandbox, \
            PlatformClients.from_settings(settings_for(sandbox, tmp_path)) as clients:
        yield sandbox, clients


def split_rule(name: str, percent: float, selection: TargetSelection, **tags: str) -> RoutingRule:
    return RoutingRule(id=f"rule-support-bot-{name}", name=name, priority=101,
                       conditions={"application_id": "support-bot", "traffic_percentage": percent},
                       target_selection=selection, optimization_hints=OptimizationHints.model_validate(tags))


CASCADE = TargetSelection(strategy="cost_aware_cascade", cascade_config=CascadeConfig(
    primary_model=MINI, fallback_models=[FOUR_O], escalation_threshold=EscalationThreshold(confidence_score=0.8)))
# A cascade within a 0.02 quality margin on support-bot (escalated requests wait for both models).
SAFE_CASCADE = TargetSelection(strategy="cost_aware_cascade", cascade_config=CascadeConfig(
    primary_model=MINI, fallback_models=[FOUR_O], escalation_threshold=EscalationThreshold(confidence_score=0.9)))


def apply(clients: PlatformClients, version: str, *extra: RoutingRule) -> None:
    current = clients.orchestrator.routing()
    applied = clients.orchestrator.update_routing(RoutingConfigUpdate(
        version=version, routing_rules=[*current.routing_rules, *extra], default_policy=current.default_policy))
    assert applied.status == "active"


def served_by_routing(frame: pd.DataFrame) -> pd.DataFrame:
    """support-bot's requests the routing serves: not shadow-evaluation samples, not enrolled
    in the seeded experiment."""
    rows = frame[(frame["application_id"] == "support-bot") & frame["pair_id"].isna() & ~frame["shadow"]]
    return rows[rows["experiment_id"].isna() | rows["experiment_id"].str.startswith("exp-live")]


def test_an_experiment_split_serves_its_share_by_the_new_rule_from_the_moment_it_takes_effect(
    platform: tuple[SandboxServer, PlatformClients],
) -> None:
    sandbox, clients = platform
    day = SANDBOX_NOW.date()
    before = sandbox.state.traffic.day(day).copy()
    apply(clients, "v-exp",
          split_rule("treatment", 10, CASCADE, optimization_id="opt-1", experiment_id="exp-live-1",
                     variant_id="treatment"),
          split_rule("control", 10, TargetSelection(strategy="capability_match", preferred_models=[FOUR_O]),
                     optimization_id="opt-1", experiment_id="exp-live-1", variant_id="control"))
    after = sandbox.state.traffic.day(day)

    ts = before["ts_ns"].to_numpy()
    cut = int(SANDBOX_NOW.timestamp() * 1e9)
    earlier = before[ts < cut].drop(columns=["optimization_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(after[ts < cut].drop(columns=["optimization_id"]).reset_index(drop=True), earlier)
    assert after.loc[ts < cut, "optimization_id"].isna().all()  # what was served stays as it was

    later = served_by_routing(after[ts >= cut])
    treatment = later[later["variant_id"] == "treatment"]
    control = later[later["variant_id"] == "control"]
    for arm in (treatment, control):
        share = len(arm) / len(later)
        assert abs(share - 0.10) < 4 * np.sqrt(0.1 * 0.9 / len(later)), share
        assert (arm["optimization_id"] == "opt-1").all() and (arm["experiment_id"] == "exp-live-1").all()
    assert set(treatment["model"]) == {MINI, FOUR_O} and treatment["escalated"].notna().all()
    assert set(control["model"]) == {FOUR_O} and control["escalated"].isna().all()
    assert treatment["cost_usd"].mean() < 0.8 * control["cost_usd"].mean()  # the cheap model answers most
    rest = later[later["variant_id"].isna()]
    assert set(rest["model"]) == {FOUR_O} and rest["optimization_id"].isna().all()


def test_sandboxes_of_one_process_share_a_day_until_one_of_them_changes_it(
    platform: tuple[SandboxServer, PlatformClients],
) -> None:
    """Each sandbox of a test run used to generate the whole month again for its budget checks."""
    sandbox, clients = platform
    other = SandboxState(sandbox_config(requests_per_day=20_000))
    day = SANDBOX_NOW.date()
    shared = other.traffic.day(day)
    assert sandbox.state.traffic.day(day) is shared  # generated once for both
    apply(clients, "v-exp", split_rule("treatment", 50, CASCADE, optimization_id="opt-1",
                                       experiment_id="exp-live-1", variant_id="treatment"))
    changed = sandbox.state.traffic.day(day)
    assert changed is not shared and (changed["optimization_id"] == "opt-1").any()
    assert other.traffic.day(day) is shared and shared["optimization_id"].isna().all()
    assert SandboxState(sandbox_config(requests_per_day=20_001)).traffic.day(day) is not shared


def test_the_metrics_of_one_variant_are_queried_by_its_tags(platform: tuple[SandboxServer, PlatformClients]) -> None:
    sandbox, clients = platform
    sandbox.state.set_now(SANDBOX_NOW - timedelta(hours=3))
    apply(clients, "v-exp", split_rule("treatment", 30, CASCADE, optimization_id="opt-2",
                                       experiment_id="exp-live-2", variant_id="treatment"))
    sandbox.state.set_now(SANDBOX_NOW)
    start = SANDBOX_NOW - timedelta(hours=3)
    stats = clients.observatory.traffic(start, SANDBOX_NOW, application="support-bot",
                                        variant=("exp-live-2", "treatment"))
    frame = sandbox.state.visible_requests(start, SANDBOX_NOW)
    tagged = frame[(frame["optimization_id"] == "opt-2") & ~frame["shadow"]]
    assert stats.requests == len(tagged) > 100
    assert stats.error_rate == pytest.approx((tagged["status"] == "error").mean())


def test_a_compression_hint_compresses_long_prompts_only(platform: tuple[SandboxServer, PlatformClients]) -> None:
    sandbox, clients = platform
    hints = {"enable_prompt_compression": True, "compression_technique": "llmlingua",
             "compression_min_prompt_tokens": 600, "optimization_id": "opt-3"}
    apply(clients, "v-compress", split_rule("compressed", 100, TargetSelection(
        strategy="capability_match", preferred_models=[FOUR_O]), **hints))
    later = served_by_routing(sandbox.state.traffic.day(SANDBOX_NOW.date()))
    later = later[later["ts_ns"] >= int(SANDBOX_NOW.timestamp() * 1e9)]
    compressed = later[later["compression_technique"] == "llmlingua"]
    assert len(compressed) > 100 and (compressed["original_prompt_tokens"] >= 600).all()
    assert (compressed["prompt_tokens"] < compressed["original_prompt_tokens"]).all()
    whole = later[later["compression_technique"].isna()]
    assert (whole["original_prompt_tokens"] == -1).all() and (whole["prompt_tokens"] < 600).all()
    assert (later["optimization_id"] == "opt-3").all()


def test_in_the_drift_world_the_cheap_model_turns_bad_on_support_bot_without_knowing_it() -> None:
    drift = next(d for d in WORLDS["drift"].drifts if d.model == MINI)
    with SandboxServer(sandbox_config(world="drift", requests_per_day=20_000)) as sandbox:
        traffic = sandbox.state.traffic
        starts = sandbox.state.anchor + timedelta(days=drift.days_after_anchor)

        def shadow_answers(day_offset: int) -> pd.DataFrame:
            frame = traffic.day(starts + timedelta(days=day_offset))
            return frame[frame["shadow"] & (frame["application_id"] == "support-bot") & (frame["model"] == MINI)]

        good, bad = shadow_answers(-1), shadow_answers(0)
        assert bad["quality_score"].mean() < good["quality_score"].mean() - 0.1
        assert abs(bad["confidence_score"].mean() - good["confidence_score"].mean()) < 0.03  # as confident


def test_an_unknown_world_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown world 'mars'"):
        sandbox_config(world="mars")


def truth(sandbox: SandboxServer, day: date) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{sandbox.url}/_sandbox/truth", params={"day": day.isoformat()}, timeout=60,
                       headers={"Authorization": f"Bearer {SANDBOX_DEFAULT_TOKEN}"}).json()
    return {a["application_id"]: a for a in answer["applications"]}


def promote(clients: PlatformClients, version: str, selection: TargetSelection, application: str = "support-bot",
            hints: OptimizationHints | None = None) -> None:
    current = clients.orchestrator.routing()
    rules = [r.model_copy(update={"target_selection": selection, "optimization_hints": hints})
             if r.id == f"rule-{application}" else r for r in current.routing_rules]
    clients.orchestrator.update_routing(RoutingConfigUpdate(version=version, routing_rules=rules,
                                                            default_policy=current.default_policy))


def test_the_world_knows_what_a_routing_really_does_and_the_best_one_there_is(
    platform: tuple[SandboxServer, PlatformClients],
) -> None:
    sandbox, clients = platform
    before = truth(sandbox, SANDBOX_NOW.date())
    for app in before.values():  # the oracle keeps quality within the margin and p95 within the guardrail
        assert app["oracle"]["quality"] >= app["baseline"]["quality"] - 0.02
        assert app["oracle"]["p95_latency_ms"] <= app["baseline"]["p95_latency_ms"] * 1.3
        assert app["oracle"]["latency_ms"] <= app["baseline"]["latency_ms"] + 200  # max_latency_increase_ms
        assert app["oracle_monthly_savings_usd"] >= 0
    # doc-qa's compression experiment is the evidence that compressing its prompts pays.
    qa = before["doc-qa"]
    assert qa["oracle_plan"]["compression_floor"] is not None and qa["oracle_monthly_savings_usd"] > 0
    bot = before["support-bot"]
    assert bot["live_plan"] is None and bot["live"] == bot["baseline"]
    # Only a cascade that leaves complex requests to the fallback keeps both quality and latency here.
    assert bot["oracle_plan"]["complexity_threshold"] in (0.33, 0.67) and bot["oracle_monthly_savings_usd"] > 0

    promote(clients, "v-cascade", SAFE_CASCADE)
    after = truth(sandbox, SANDBOX_NOW.date() + timedelta(days=1))["support-bot"]
    assert after["live_plan"]["fallback"] == FOUR_O and after["live"]["cost_usd"] < bot["baseline"]["cost_usd"]
    assert after["live_quality_drop"] < 0.02  # it keeps quality...
    assert after["live"]["p95_latency_ms"] > after["baseline"]["p95_latency_ms"] * 1.25  # ...but waits much longer


def test_in_the_drift_world_the_truth_shows_compression_turning_harmful_on_doc_qa(tmp_path: Path) -> None:
    with SandboxServer(sandbox_config(world="drift", requests_per_day=4_000)) as sandbox, \
            PlatformClients.from_settings(settings_for(sandbox, tmp_path)) as clients:
        compress = OptimizationHints.model_validate({"enable_prompt_compression": True,
                                                     "compression_technique": "llmlingua",
                                                     "compression_min_prompt_tokens": 500})
        promote(clients, "v-compress", TargetSelection(strategy="capability_match", preferred_models=[SONNET]),
                "doc-qa", compress)
        drift = next(d for d in WORLDS["drift"].drifts if d.compression_loss)
        drifted = sandbox.state.anchor + timedelta(days=drift.days_after_anchor)
        before, after = truth(sandbox, drifted - timedelta(days=1))["doc-qa"], truth(sandbox, drifted)["doc-qa"]
        assert before["live_plan"]["compression_floor"] == 500 and before["live_quality_drop"] < 0.02
        assert after["live_quality_drop"] > 0.1
        # The same week's own model is untouched: only compressed prompts lose.
        assert after["baseline"]["quality"] == pytest.approx(before["baseline"]["quality"], abs=0.005)
