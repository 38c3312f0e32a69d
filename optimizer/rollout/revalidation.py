"""A recommendation checked again against its model's new Registry profile: pure, the
profile before (as the warehouse holds it) and after in, a verdict out."""

from __future__ import annotations

from optimizer.schemas.registry import ModelProfile
from optimizer.schemas.rollout import ProposedChange, RecheckVerdict, Revalidation

# Below this the change is rounding, not news.
_PRICE_TOLERANCE = 0.005
QUALITY_TOLERANCE = 0.01


def _quality(profile: ModelProfile) -> float | None:
    scores = profile.performance_characteristics.quality_scores
    return sum(scores.values()) / len(scores) if scores else None


def _serves_answers(change: ProposedChange, model_id: str) -> bool:
    """Whether the change sends answers to the model (a cascade's primary, a preferred model),
    rather than keeping it as the fallback or compressing prompts to the application's own."""
    return model_id == change.primary_model or model_id in change.preferred_models


def revalidate(change: ProposedChange, subject: str, model_id: str, before: ModelProfile | None,
               after: ModelProfile | None) -> Revalidation:
    """Invalidated when the model left service (deprecated, sunset, gone) or, where the change
    sends it answers, its benchmark quality fell; savings changed when its price moved;
    otherwise still valid."""
    invalid: list[str] = []
    priced: list[str] = []
    revised = None
    if after is None:
        invalid.append(f"{model_id} is no longer in the Registry")
    else:
        if after.status != "active" or after.deprecation_date is not None:
            since = f" from {after.deprecation_date.isoformat()}" if after.deprecation_date else ""
            invalid.append(f"{model_id} is {after.status}{' and deprecated' if after.status == 'active' else ''}{since}")
        old_quality, new_quality = (_quality(before) if before else None), _quality(after)
        if (old_quality is not None and new_quality is not None and _serves_answers(change, model_id)
                and new_quality < old_quality - QUALITY_TOLERANCE):
            invalid.append(f"{model_id}'s benchmark quality fell from {old_quality:.3f} to {new_quality:.3f}")
        if before is not None:
            old, new = before.cost_structure, after.cost_structure
            for side, was, now in (("input", old.input_cost_per_1k_tokens, new.input_cost_per_1k_tokens),
                                   ("output", old.output_cost_per_1k_tokens, new.output_cost_per_1k_tokens)):
                if was and abs(now - was) > _PRICE_TOLERANCE * was:
                    priced.append(f"{model_id}'s {side} price moved from {was:g} to {now:g} USD per 1k tokens")
            input_ratio = (new.input_cost_per_1k_tokens / old.input_cost_per_1k_tokens
                           if old.input_cost_per_1k_tokens else None)
            if priced and change.kind == "prompt_compression" and change.monthly_savings_usd is not None and input_ratio:
                revised = change.monthly_savings_usd * input_ratio  # compression saves input tokens only
    verdict: RecheckVerdict = "invalidated" if invalid else "savings_changed" if priced else "still_valid"
    return Revalidation(subject=subject, application_id=change.application_id, kind=change.kind, verdict=verdict,
                        reasons=invalid + priced, monthly_savings_usd=change.monthly_savings_usd,
                        revised_monthly_savings_usd=revised)
