"""Response caching: how much of an application's traffic repeats a recent prompt exactly,
and what answering those repeats from a cache would save.

A request is a hit for a time-to-live (TTL) when the same application and model received
the same prompt hash, answered without error, at most TTL seconds before it. Its cost is
what the hit saves. Hits are counted per UTC day and TTL in the warehouse; days are the
blocks of the interval (repeats come in bursts, so requests are not independent, days
nearly are): the monthly savings are the mean day's savings times 30, with a t interval
over the days. The TTL is the shortest candidate that gets at least `SATURATION` of the
best candidate's savings (a longer TTL serves older answers), and since it is chosen on
the same data, its interval is taken at level alpha / (number of candidates) (Bonferroni):
valid whichever candidate was chosen. Caching is recommended only when that interval's
lower end is above `min_monthly_savings_usd`.

Quality is not measured: a hit repeats the answer the model gave the same prompt shortly
before, so the assumption is that an answer depends on the prompt alone (not on the time,
the user or a tool's result outside the prompt) and that a second sample from the model is
no better than the first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from optimizer.analysis.compression import DAYS_PER_MONTH
from optimizer.analysis.statistics import block_mean_interval, normal_quantile
from optimizer.schemas.analysis import CachingRecommendation, CachingReport, TtlOption

CANDIDATE_TTLS_S: tuple[int, ...] = (60, 300, 900, 3600, 21600, 86400)
SATURATION = 0.9  # the chosen TTL gets at least this share of the best candidate's savings
MIN_DAYS = 3  # days of hashed traffic before an interval over days means anything
MIN_MONTHLY_SAVINGS_USD = 5.0


@dataclass(frozen=True)
class CacheDay:
    """One UTC day of an application's hashed, successful traffic, as one TTL would cache it."""

    day: int  # days since 1970-01-01
    ttl_seconds: int
    requests: int
    hits: int
    hit_cost_usd: float


@dataclass(frozen=True)
class CachingData:
    application_id: str
    requests: int  # served requests in the window, hashed or not
    hashed_requests: int
    days: tuple[CacheDay, ...]


def _ratio_interval(hits: Sequence[int], requests: Sequence[int], alpha: float) -> tuple[float, float]:
    """Hit rate over days as a ratio of sums, with a delta-method (cluster) interval: the day,
    not the request, is the unit."""
    total = sum(requests)
    rate = sum(hits) / total
    days = len(requests)
    mean_requests = total / days
    residuals = [(h - rate * r) / mean_requests for h, r in zip(hits, requests, strict=True)]
    variance = sum(e * e for e in residuals) / (days * (days - 1))
    half = normal_quantile(1 - alpha / 2) * math.sqrt(variance)
    return (max(rate - half, 0.0), min(rate + half, 1.0))


def _option(data: CachingData, ttl: int, calendar: Sequence[int]) -> tuple[TtlOption, list[float], list[int], list[int]]:
    by_day = {d.day: d for d in data.days if d.ttl_seconds == ttl}
    savings = [by_day[d].hit_cost_usd if d in by_day else 0.0 for d in calendar]
    hits = [by_day[d].hits if d in by_day else 0 for d in calendar]
    requests = [by_day[d].requests if d in by_day else 0 for d in calendar]
    option = TtlOption(ttl_seconds=ttl, hits=sum(hits), hit_rate=sum(hits) / max(sum(requests), 1),
                       monthly_savings_usd=sum(savings) / len(calendar) * DAYS_PER_MONTH)
    return option, savings, hits, requests


def recommend_application(
    data: CachingData, *, alpha: float, min_monthly_savings_usd: float = MIN_MONTHLY_SAVINGS_USD,
    candidates: Sequence[int] = CANDIDATE_TTLS_S,
) -> CachingRecommendation:
    common = {"application_id": data.application_id, "hashed_requests": data.hashed_requests,
              "requests": data.requests}
    first, last = (min(d.day for d in data.days), max(d.day for d in data.days)) if data.days else (0, -1)
    calendar = list(range(first, last + 1))  # a day without hashed traffic saved nothing
    if data.hashed_requests == 0 or len(calendar) < MIN_DAYS:
        return CachingRecommendation(
            **common, decision="insufficient_data", ttl_seconds=None, hit_rate=None, hit_rate_ci=None,
            monthly_savings_usd=None, monthly_savings_ci=None, days=len(calendar),
            reason="no request carries a prompt hash" if data.hashed_requests == 0
            else f"prompt hashes on {len(calendar)} day(s), fewer than the {MIN_DAYS} an interval over days needs",
        )
    evaluated = [_option(data, ttl, calendar) for ttl in sorted(candidates)]
    options = [o for o, *_ in evaluated]
    best = max(o.monthly_savings_usd for o in options)
    index = next(i for i, o in enumerate(options) if o.monthly_savings_usd >= SATURATION * best)
    chosen, savings, hits, requests = evaluated[index]
    level = alpha / len(options)
    low, high = (DAYS_PER_MONTH * bound for bound in block_mean_interval(savings, level))
    rate_ci = _ratio_interval(hits, requests, level)
    adopt = low > max(min_monthly_savings_usd, 0.0)
    repeats = (f"{100 * chosen.hit_rate:.1f}% of hashed requests repeat a prompt seen within "
               f"{chosen.ttl_seconds} s")
    reason = (
        f"{repeats}; a cache with that TTL saves {chosen.monthly_savings_usd:,.2f} USD a month "
        f"(CI {low:,.2f} to {high:,.2f} over {len(calendar)} days). Assumes a repeated prompt's earlier answer "
        "is as good as a new one (the answer depends on the prompt alone)"
        if adopt else
        f"{repeats}; the savings' interval ({low:,.2f} to {high:,.2f} USD a month over {len(calendar)} days) "
        f"does not clear {min_monthly_savings_usd:,.2f} USD a month"
    )
    return CachingRecommendation(
        **common, decision="adopt" if adopt else "reject", ttl_seconds=chosen.ttl_seconds,
        hit_rate=chosen.hit_rate, hit_rate_ci=rate_ci, monthly_savings_usd=chosen.monthly_savings_usd,
        monthly_savings_ci=(low, high), days=len(calendar), reason=reason, options=options,
    )


def recommend(
    applications: Sequence[CachingData], *, alpha: float = 0.05,
    min_monthly_savings_usd: float = MIN_MONTHLY_SAVINGS_USD, candidates: Sequence[int] = CANDIDATE_TTLS_S,
) -> CachingReport:
    return CachingReport(
        recommendations=[
            recommend_application(a, alpha=alpha, min_monthly_savings_usd=min_monthly_savings_usd,
                                  candidates=candidates)
            for a in sorted(applications, key=lambda a: a.application_id)
        ],
        alpha=alpha, min_monthly_savings_usd=min_monthly_savings_usd,
    )
