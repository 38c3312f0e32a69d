"""Caching and batch pricing from the traffic's own evidence: exact repeats of prompt hashes,
latency-tolerant task types on models with batch prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from optimizer.analysis import batching, caching
from optimizer.analysis.batching import BatchingData, TolerantDay
from optimizer.analysis.caching import CacheDay, CachingData
from optimizer.schemas.analysis import BatchingRecommendation, CachingRecommendation
from optimizer.schemas.registry import TokenPrices
from optimizer.warehouse.analytics import RequestSource

DAY0 = 20_000  # days since 1970-01-01


def cache_days(daily_hits: list[int], cost_per_hit: float, ttls: tuple[int, ...] = (60, 300, 3600),
               requests: int = 1000) -> tuple[CacheDay, ...]:
    """Hits growing with the TTL: a third at 60 s, all at 300 s and beyond."""
    return tuple(
        CacheDay(DAY0 + i, ttl, requests, hits if ttl >= 300 else hits // 3, (hits if ttl >= 300 else hits // 3)
                 * cost_per_hit)
        for i, hits in enumerate(daily_hits) for ttl in ttls
    )


def test_repeats_worth_money_are_cached_with_the_shortest_ttl_that_gets_nearly_all_of_it() -> None:
    data = CachingData("support-bot", 20_000, 14_000, cache_days([300, 320, 280, 310, 290, 305, 295], 0.01))
    result = caching.recommend_application(data, alpha=0.05, candidates=(60, 300, 3600))
    assert result.decision == "adopt" and result.ttl_seconds == 300  # 3600 s gets no more
    assert result.monthly_savings_usd == pytest.approx(300 * 0.01 * 30)
    assert result.monthly_savings_ci is not None
    low, high = result.monthly_savings_ci
    assert 5 < low < 90 < high
    assert result.hit_rate == pytest.approx(0.3) and result.hit_rate_ci is not None
    assert result.hit_rate_ci[0] < 0.3 < result.hit_rate_ci[1]
    assert "as good as a new one" in result.reason  # the quality assumption is stated
    assert [o.ttl_seconds for o in result.options] == [60, 300, 3600]


def test_savings_too_small_or_too_noisy_are_not_recommended() -> None:
    cheap = CachingData("a", 7000, 7000, cache_days([300] * 7, 0.0001))  # 0.9 USD a month
    noisy = CachingData("b", 7000, 7000, cache_days([0, 0, 2000, 0, 0, 0, 0], 0.01))
    for data in (cheap, noisy):
        result = caching.recommend_application(data, alpha=0.05, min_monthly_savings_usd=5.0)
        assert result.decision == "reject", result
        assert result.monthly_savings_ci is not None and result.monthly_savings_ci[0] <= 5.0


def test_no_hashes_or_too_few_days_is_insufficient_data() -> None:
    assert caching.recommend_application(CachingData("a", 500, 0, ()), alpha=0.05).reason == (
        "no request carries a prompt hash")
    short = caching.recommend_application(CachingData("a", 500, 500, cache_days([50, 50], 1.0)), alpha=0.05)
    assert short.decision == "insufficient_data" and short.days == 2


def test_a_day_without_hashed_traffic_counts_as_a_day_that_saved_nothing() -> None:
    gap = tuple(d for d in cache_days([300] * 7, 0.01) if d.day != DAY0 + 3)
    result = caching.recommend_application(CachingData("a", 7000, 6000, gap), alpha=0.05)
    assert result.days == 7 and result.monthly_savings_usd == pytest.approx(6 * 300 * 0.01 / 7 * 30)


def test_the_savings_interval_covers_the_truth_at_the_promised_rate() -> None:
    """Days of Poisson hits around a known mean: the Bonferroni-adjusted interval over days
    covers the true monthly savings at least 95% of the time."""
    rng = np.random.default_rng(5)
    truth = 200 * 0.02 * 30
    covered = 0
    for _ in range(400):
        hits = [int(h) for h in rng.poisson(200, 10)]
        data = CachingData("a", 10_000, 10_000, cache_days(hits, 0.02))
        result = caching.recommend_application(data, alpha=0.05, candidates=(60, 300, 3600))
        assert result.monthly_savings_ci is not None
        covered += result.monthly_savings_ci[0] <= truth <= result.monthly_savings_ci[1]
    assert covered / 400 >= 0.95


def write_requests(path: Path, rows: list[dict[str, object]]) -> Path:
    base = {"application_id": "support-bot", "model": "m", "prompt_tokens": 100, "completion_tokens": 10,
            "latency_ms": 500.0, "status": "ok", "shadow": False}
    table = [{"request_id": f"r{i}", **base, **row} for i, row in enumerate(rows)]
    pq.write_table(pa.Table.from_pylist(table), path)
    return path


def test_hits_are_counted_in_sql_per_application_model_and_hash_within_the_ttl(tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 2, 12, tzinfo=UTC)

    def at(seconds: float, **extra: object) -> dict[str, object]:
        return {"ts": t0 + timedelta(seconds=seconds), "cost_usd": 0.5, "prompt_hash": "h1", **extra}

    rows = [
        at(0), at(100), at(1000),  # a hit at 300 s; 900 s after the last is a hit at 900 s only
        at(1010, model="other"),  # another model: its own cache
        at(1020, status="error"), at(1030, cost_usd=0.25),  # an error fills no cache; a hit at 300 s
        at(1040, prompt_hash="h2"), at(1050, prompt_hash=None),  # a new prompt; no hash
        at(1060, application_id="doc-qa"),  # another application: its own cache
        at(1070, shadow=True),  # a shadow call is not served
    ]
    source = RequestSource.from_parquet([write_requests(tmp_path / "r.parquet", rows)], label="t")
    found = {d.application_id: d for d in source.caching_data(ttls=(300, 900))}
    assert sorted(found) == ["doc-qa", "support-bot"]
    bot = found["support-bot"]
    assert (bot.requests, bot.hashed_requests) == (8, 7)
    by_ttl = {d.ttl_seconds: (d.requests, d.hits, d.hit_cost_usd) for d in bot.days}
    assert by_ttl == {300: (6, 2, 0.75), 900: (6, 3, 1.25)}


def test_batch_prices_save_on_latency_tolerant_traffic_and_state_the_delay() -> None:
    prices = {"gpt-4o": TokenPrices(input_cost_per_1k_tokens=0.00125, output_cost_per_1k_tokens=0.005)}
    days = tuple(TolerantDay(DAY0 + i, "gpt-4o", "offline", 400, 400 * 0.0062, 400 * 380, 400 * 520)
                 for i in range(7))
    result = batching.recommend_application(BatchingData("marketing-writer", 1000 * 7, DAY0, DAY0 + 6, days),
                                            prices, alpha=0.05)
    per_day = 400 * 0.0062 - (400 * 380 * 0.00125 + 400 * 520 * 0.005) / 1000
    assert result.decision == "adopt" and result.monthly_savings_usd == pytest.approx(per_day * 30)
    assert result.cost_reduction_pct == pytest.approx(100 * per_day / (400 * 0.0062))
    assert "up to 24 hours" in result.reason and result.max_delay_hours == 24
    unpriced = batching.recommend_application(BatchingData("x", 10, DAY0, DAY0 + 6, days), {}, alpha=0.05)
    assert unpriced.decision == "insufficient_data" and "no batch price" in unpriced.reason


def test_only_the_latency_tolerant_task_types_are_read(tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 2, 12, tzinfo=UTC)
    rows = [{"ts": t0 + timedelta(days=d, seconds=s), "cost_usd": 1.0, "task_type": task}
            for d in range(3) for s, task in ((0, "offline"), (1, "generation"), (2, "offline"))]
    source = RequestSource.from_parquet([write_requests(tmp_path / "r.parquet", rows)], label="t")
    (found,) = source.batching_data(["offline", "batch"])
    assert (found.requests, found.last_day - found.first_day) == (9, 2)
    assert sum(d.requests for d in found.days) == 6 and {d.task_type for d in found.days} == {"offline"}


def adopted_caching() -> CachingRecommendation:
    data = CachingData("support-bot", 20_000, 14_000, cache_days([300, 320, 280, 310, 290, 305, 295], 0.01,
                                                                  ttls=(60, 3600, 86400)))
    result = caching.recommend_application(data, alpha=0.05, candidates=(60, 3600, 86400))
    assert result.decision == "adopt" and result.ttl_seconds == 3600
    return result


def adopted_batching() -> BatchingRecommendation:
    prices = {"gpt-4o": TokenPrices(input_cost_per_1k_tokens=0.00125, output_cost_per_1k_tokens=0.005)}
    days = tuple(TolerantDay(DAY0 + i, "gpt-4o", "offline", 400, 2.48, 152_000, 208_000) for i in range(7))
    return batching.recommend_application(BatchingData("marketing-writer", 7000, DAY0, DAY0 + 6, days), prices,
                                          alpha=0.05)


def test_adopted_caching_and_batching_become_routing_hints_in_the_specifications_shape() -> None:
    from optimizer.rollout import plan
    from optimizer.schemas.routing import RoutingConfig, RoutingRule, TargetSelection

    current = RoutingConfig(routing_rules=[
        RoutingRule(id=f"rule-{app}", name=app, priority=100, conditions={"application_id": app},
                    target_selection=TargetSelection(strategy="capability_match", preferred_models=["gpt-4o"]))
        for app in ("support-bot", "marketing-writer")])
    changes = [plan.change_from_recommendation(entry, team_id="t", monthly_savings_usd=10.0, recommendation_id="r")
               for entry in (adopted_caching(), adopted_batching())]
    assert [(c.kind, c.cache_ttl_seconds, c.batch_task_types) for c in changes if c] == [
        ("caching", 3600, []), ("batching", None, ["offline"])]
    proposed = plan.apply_changes(current, [c for c in changes if c])
    hints = {r.id: r.optimization_hints.model_dump() for r in proposed.routing_rules if r.optimization_hints}
    assert hints["rule-support-bot"]["enable_caching"] is True
    assert hints["rule-support-bot"]["cache_ttl_seconds"] == 3600
    assert hints["rule-marketing-writer"]["enable_batching"] is True
    assert hints["rule-marketing-writer"]["request_batching"] == {
        "enabled": True, "mode": "batch_api", "task_types": ["offline"], "max_wait_ms": 86_400_000}
    assert plan.validate(proposed, ["gpt-4o"]) == []


def test_adopted_caching_and_batching_are_stored_and_read_back_as_the_runs_adopted_changes(tmp_path: Path) -> None:
    from optimizer import recommendations
    from optimizer.schemas.analysis import (
        BatchingReport,
        CachingReport,
        CascadeReport,
        CompressionReport,
    )
    from optimizer.warehouse import Warehouse

    cached, batched = adopted_caching(), adopted_batching()
    adoption = recommendations.adopt([cached, batched], {}, run_id="run-1", alpha=0.05,
                                     now=datetime(2026, 11, 24, tzinfo=UTC))
    registry = {r.type: r for rs in adoption.recommendations.values() for r in rs}
    assert registry["caching"].implementation["cache_ttl_seconds"] == 3600
    assert registry["batching"].estimated_impact.latency_impact_ms == 24 * 3600 * 1000
    assert "within 24 hours" in registry["batching"].description
    with Warehouse(tmp_path / "w.duckdb") as store:
        store.results.record(
            "run-1", cascades=CascadeReport(recommendations=[], max_quality_drop=0.02, alpha=0.05),
            compression=CompressionReport(recommendations=[], max_quality_drop=0.02, alpha=0.05), experiments=[],
            adopted=adoption.adopted, events=adoption.events,
            caching=CachingReport(recommendations=[cached], alpha=0.05, min_monthly_savings_usd=5.0),
            batching=BatchingReport(recommendations=[batched], alpha=0.05, min_monthly_savings_usd=5.0,
                                    latency_tolerant_task_types=["offline"]))
        found = store.results.latest_adopted("run-1")
    assert [(r.entry.application_id, type(r.entry).__name__, r.recommendation_id) for r in found] == [
        ("marketing-writer", "BatchingRecommendation", "run-1-batching-marketing-writer"),
        ("support-bot", "CachingRecommendation", "run-1-caching-support-bot")]
    assert found[1].monthly_savings_usd == pytest.approx(cached.monthly_savings_usd)


def test_a_batched_applications_latency_is_reported_not_judged() -> None:
    """A batch API answers within hours: the delay is the accepted price of batching, so a
    batching change's guardrails do not roll it back for its latency (errors and quality
    still count)."""
    from optimizer.rollout.guardrails import judge
    from optimizer.schemas.rollout import GuardrailReading, Guardrails, ProposedChange

    def reading(window: Literal["baseline", "canary"], p95: float, error_rate: float = 0.01) -> GuardrailReading:
        return GuardrailReading(application_id="marketing-writer", window=window, requests=5000,
                                error_rate=error_rate, p95_latency_ms=p95, quality=0.9, evaluated=1000)

    before, after = {"marketing-writer": reading("baseline", 4000)}, {"marketing-writer": reading("canary", 3.6e6)}
    assert not judge(before, after, Guardrails()).healthy
    batching_change = ProposedChange(application_id="marketing-writer", kind="batching", batch_task_types=["offline"])
    exempt = Guardrails().accepting_delays_of([batching_change])
    verdict = judge(before, after, exempt)
    assert verdict.healthy and any("batch API" in note for note in verdict.unchecked)
    worse = judge(before, {"marketing-writer": reading("canary", 3.6e6, error_rate=0.2)}, exempt)
    assert not worse.healthy
    caching_change = ProposedChange(application_id="marketing-writer", kind="caching", cache_ttl_seconds=300)
    assert Guardrails().accepting_delays_of([caching_change]).latency_exempt == []
