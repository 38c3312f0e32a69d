"""Compression recommendations in simulated worlds with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.analysis.compression import (
    FLOOR_GRID,
    CompressionData,
    PromptBucket,
    recommend_application,
)
from optimizer.analysis.statistics import SampleMean

MARGIN = 0.02
ALPHA = 0.05
PRICE_PER_1K = 0.003


def quality_loss(original_tokens: np.ndarray, short_prompt_penalty: float) -> np.ndarray:
    """Compression costs a little quality on long prompts and a lot on short ones."""
    return 0.004 + short_prompt_penalty * np.exp(-original_tokens / 350.0)


def buckets(rng: np.random.Generator, n: int, penalty: float, experiment: str = "exp-1") -> tuple[PromptBucket, ...]:
    original = np.maximum(20, rng.lognormal(np.log(700), 1.0, n)).astype(int)
    compressed = rng.random(n) < 0.5
    quality = np.clip(rng.normal(0.9, 0.08, n) - compressed * quality_loss(original, penalty), 0, 1)
    sent = np.where(compressed, np.round(original * 0.5), original).astype(int)
    floor = np.array([max(f for f in FLOOR_GRID if f <= x) for x in original])
    found = []
    for value in FLOOR_GRID:
        for arm in (True, False):
            rows = (floor == value) & (compressed == arm)
            if rows.any():
                found.append(PromptBucket(value, arm, experiment, int(rows.sum()), SampleMean.of(quality[rows]),
                                          int(sent[rows].sum()), int(original[rows].sum())))
    return tuple(found)


def data(rng: np.random.Generator, n: int, penalty: float, days: float = 10.0) -> CompressionData:
    return CompressionData("doc-qa", "big-model", "llmlingua", PRICE_PER_1K, days, buckets(rng, n, penalty))


def true_change_above(floor: int, penalty: float) -> float:
    original = np.maximum(20, np.random.default_rng(0).lognormal(np.log(700), 1.0, 2_000_000))
    return float(-quality_loss(original[original >= floor], penalty).mean())


def test_harmless_compression_is_adopted_on_every_prompt_with_its_savings() -> None:
    result = recommend_application(data(np.random.default_rng(1), 20000, penalty=0.0),
                                   max_quality_drop=MARGIN, alpha=ALPHA)
    assert result.decision == "adopt" and result.min_prompt_tokens == 0
    assert result.token_reduction_pct == pytest.approx(50, abs=1)
    assert result.estimated_monthly_savings_usd is not None and result.estimated_monthly_savings_usd > 0


def test_savings_are_the_saved_tokens_at_the_models_input_price() -> None:
    rows = (PromptBucket(0, True, "e", 1000, SampleMean(500, 0.9, 0.001), 500_000, 1_000_000),
            PromptBucket(0, False, "e", 1000, SampleMean(500, 0.9, 0.001), 1_000_000, 1_000_000))
    result = recommend_application(CompressionData("app", "m", "llmlingua", PRICE_PER_1K, 10.0, rows),
                                   max_quality_drop=MARGIN, alpha=ALPHA)
    # 2,000 eligible requests in 10 days, 1,000 original tokens each, half saved
    expected = 2000 / 10 * 30 * 1000 * 0.5 * PRICE_PER_1K / 1000
    assert result.estimated_monthly_savings_usd == pytest.approx(expected)
    assert result.token_reduction_pct == pytest.approx(50.0)


def test_a_floor_keeps_short_prompts_uncompressed_when_they_lose_quality() -> None:
    result = recommend_application(data(np.random.default_rng(2), 40000, penalty=0.2),
                                   max_quality_drop=MARGIN, alpha=ALPHA)
    assert result.decision == "adopt"
    assert result.min_prompt_tokens is not None and result.min_prompt_tokens > 0
    assert true_change_above(result.min_prompt_tokens, 0.2) >= -MARGIN
    assert true_change_above(0, 0.2) < -MARGIN  # compressing everything would break the promise


def test_compression_that_always_hurts_is_rejected() -> None:
    rng = np.random.default_rng(3)
    result = recommend_application(data(rng, 20000, penalty=0.0), max_quality_drop=0.001, alpha=ALPHA)
    assert result.decision == "reject"


def test_few_evaluated_requests_is_insufficient_data() -> None:
    result = recommend_application(data(np.random.default_rng(4), 150, penalty=0.0),
                                   max_quality_drop=MARGIN, alpha=ALPHA)
    assert result.decision == "insufficient_data"


@pytest.mark.slow
def test_chosen_floors_keep_the_quality_promise_on_fresh_data() -> None:
    rng = np.random.default_rng(5)
    truth = {floor: true_change_above(floor, 0.2) for floor in FLOOR_GRID}
    runs, adopted, violations = 150, 0, 0
    for _ in range(runs):
        result = recommend_application(data(rng, 12000, penalty=0.2), max_quality_drop=MARGIN, alpha=ALPHA)
        if result.decision == "adopt" and result.min_prompt_tokens is not None:
            adopted += 1
            violations += truth[result.min_prompt_tokens] < -MARGIN
    assert adopted > runs / 2
    assert violations / adopted <= ALPHA / 2 + 3 * np.sqrt(ALPHA / 2 / adopted)


def test_a_randomised_experiment_is_preferred_to_observational_traffic() -> None:
    rng = np.random.default_rng(6)
    randomised = buckets(rng, 8000, penalty=0.0, experiment="exp-1")
    # outside the experiment, compression was only switched on for an easy slice of traffic
    easy = tuple(
        PromptBucket(b.floor, b.compressed, "", b.requests,
                     SampleMean(b.quality.n, b.quality.mean + (0.05 if b.compressed else -0.05), b.quality.variance),
                     b.prompt_tokens, b.original_prompt_tokens)
        for b in buckets(rng, 8000, penalty=0.0, experiment="")
    )
    result = recommend_application(CompressionData("app", "m", "llmlingua", PRICE_PER_1K, 10.0, randomised + easy),
                                   max_quality_drop=MARGIN, alpha=ALPHA)
    assert "randomised experiment exp-1" in result.reason
    assert result.quality_change is not None and abs(result.quality_change) < 0.02
