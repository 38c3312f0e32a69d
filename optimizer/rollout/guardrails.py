"""Is a canary healthy? Its applications' error rate, p95 latency and quality against the
window before it, each within the guardrail's tolerance.

A rise in errors counts when it exceeds the tolerance and is significant (one-sided
two-proportion z-test): a canary of a few hundred requests should not be rolled back for
one unlucky error. Guardrails read night after night on an experiment's growing data use an
always-valid test instead (the mixture SPRT tuned to the tolerance), so that many looks do
not add up to a false rollback. Quality is judged only on enough quality-scored requests.
"""

from __future__ import annotations

from collections.abc import Mapping

from optimizer.analysis.statistics import Proportion, mixture_sequential_test, two_proportions
from optimizer.schemas.rollout import GuardrailReading, Guardrails, GuardrailVerdict


def _significant_rise(before: GuardrailReading, after: GuardrailReading, guardrails: Guardrails) -> bool:
    errors_before = round((before.error_rate or 0.0) * before.requests)
    errors_after = round((after.error_rate or 0.0) * after.requests)
    if before.requests == 0:
        return True
    test = two_proportions(Proportion(before.requests, errors_before), Proportion(after.requests, errors_after))
    if test.absolute <= 0:
        return False
    if guardrails.sequential:
        always_valid = mixture_sequential_test(test.absolute, test.standard_error**2,
                                               guardrails.max_error_rate_increase**2, guardrails.alpha)
        return always_valid.p_value < guardrails.alpha
    return test.p_value / 2 < guardrails.alpha


def judge(
    baseline: Mapping[str, GuardrailReading], canary: Mapping[str, GuardrailReading], guardrails: Guardrails
) -> GuardrailVerdict:
    """Healthy only if every application had enough canary traffic and broke no guardrail.

    Too little traffic is not health: a canary nobody used has shown nothing, so it is
    not promoted.
    """
    breaches: list[str] = []
    unchecked: list[str] = []
    for app, after in sorted(canary.items()):
        before = baseline.get(app)
        if after.requests < guardrails.min_requests:
            breaches.append(f"{app}: only {after.requests} requests during the canary, "
                            f"{guardrails.min_requests} needed to judge it")
            continue
        if before is None:
            continue
        if after.error_rate is not None and before.error_rate is not None:
            rise = after.error_rate - before.error_rate
            if rise > guardrails.max_error_rate_increase and _significant_rise(before, after, guardrails):
                breaches.append(f"{app}: error rate rose from {before.error_rate:.2%} to {after.error_rate:.2%}")
        if app in guardrails.latency_exempt:
            unchecked.append(f"{app}: p95 latency not judged (its change sends requests to a batch API, "
                             "which answers within hours)")
        elif after.p95_latency_ms and before.p95_latency_ms:
            change = 100 * (after.p95_latency_ms / before.p95_latency_ms - 1)
            if change > guardrails.max_p95_latency_increase_pct:
                breaches.append(f"{app}: p95 latency rose {change:.0f}% "
                                f"({before.p95_latency_ms:.0f} to {after.p95_latency_ms:.0f} ms)")
        if after.quality is None or before.quality is None or after.evaluated < guardrails.min_evaluated:
            unchecked.append(f"{app}: quality not checked ({after.evaluated} scored requests during the canary, "
                             f"{guardrails.min_evaluated} needed)")
        elif before.quality - after.quality > guardrails.max_quality_drop:
            breaches.append(f"{app}: quality fell from {before.quality:.3f} to {after.quality:.3f}")
    readings = [*baseline.values(), *canary.values()]
    return GuardrailVerdict(healthy=not breaches, breaches=breaches, unchecked=unchecked, readings=readings)
