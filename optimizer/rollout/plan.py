"""From proposed changes to routing configurations: the new one, its canary, their diff."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from optimizer.schemas.analysis import (
    BatchingRecommendation,
    CachingRecommendation,
    CascadeRecommendation,
    CompressionRecommendation,
)
from optimizer.schemas.rollout import ProposedChange, RuleChange
from optimizer.schemas.routing import (
    CascadeConfig,
    EscalationThreshold,
    OptimizationHints,
    RoutingConfig,
    RoutingRule,
    TargetSelection,
)

CANARY_SUFFIX = "-canary"
DEFAULT_CACHE_TTL_S = 300  # a caching change that names no TTL (the specification's example)
BATCH_MAX_WAIT_MS = 24 * 3600 * 1000  # a batch API's answer may take a day


def change_from_recommendation(
    entry: CascadeRecommendation | CompressionRecommendation | CachingRecommendation | BatchingRecommendation,
    *,
    team_id: str | None,
    monthly_savings_usd: float | None,
    recommendation_id: str | None,
) -> ProposedChange | None:
    """The routing change an adopted analysis result asks for; None for any other decision."""
    if entry.decision != "adopt":
        return None
    common: dict[str, Any] = {
        "application_id": entry.application_id, "team_id": team_id, "monthly_savings_usd": monthly_savings_usd,
        "reason": entry.reason, "recommendation_id": recommendation_id,
    }
    if isinstance(entry, CachingRecommendation):
        return ProposedChange(kind="caching", cache_ttl_seconds=entry.ttl_seconds, **common)
    if isinstance(entry, BatchingRecommendation):
        return ProposedChange(kind="batching", batch_task_types=list(entry.task_types), **common)
    common |= {"quality_change": entry.quality_change, "quality_change_ci": entry.quality_change_ci}
    if isinstance(entry, CascadeRecommendation):
        # A cascade routing every level needs no complexity threshold: nothing scores above 1.
        routed_all = entry.complexity_threshold is None or entry.complexity_threshold >= 1
        return ProposedChange(kind="model_cascade", primary_model=entry.primary_model,
                              fallback_model=entry.fallback_model, confidence_threshold=entry.confidence_threshold,
                              complexity_threshold=None if routed_all else entry.complexity_threshold, **common)
    return ProposedChange(kind="prompt_compression", technique=entry.technique,
                          min_prompt_tokens=entry.min_prompt_tokens, **common)


def _rule_index(rules: Sequence[RoutingRule], application_id: str) -> int | None:
    """Where the application's own rule (not a canary beside it) is, if it has one."""
    return next(
        (i for i, r in enumerate(rules)
         if r.conditions.get("application_id") == application_id and "traffic_percentage" not in r.conditions),
        None,
    )


def _changed_rule(rule: RoutingRule, change: ProposedChange) -> RoutingRule:
    if change.kind == "model_cascade" and change.primary_model and change.fallback_model:
        selection = TargetSelection(
            strategy="cost_aware_cascade",
            cascade_config=CascadeConfig(
                primary_model=change.primary_model, fallback_models=[change.fallback_model],
                escalation_threshold=EscalationThreshold(confidence_score=change.confidence_threshold,
                                                         complexity_score=change.complexity_threshold),
            ),
        )
        return rule.model_copy(update={"target_selection": selection})
    if change.kind == "preferred_model":
        selection = TargetSelection(strategy="capability_match", preferred_models=list(change.preferred_models))
        return rule.model_copy(update={"target_selection": selection})
    hints = (rule.optimization_hints or OptimizationHints()).model_dump()
    if change.kind == "prompt_compression":
        hints |= {"enable_prompt_compression": True, "compression_technique": change.technique,
                  "compression_min_prompt_tokens": change.min_prompt_tokens or 0}
    elif change.kind == "batching":
        # The specification's request_batching settings, for the latency-tolerant task types only.
        hints |= {"enable_batching": True, "request_batching": {
            "enabled": True, "mode": "batch_api", "task_types": list(change.batch_task_types),
            "max_wait_ms": BATCH_MAX_WAIT_MS}}
    else:
        hints |= {"enable_caching": True,
                  "cache_ttl_seconds": change.cache_ttl_seconds or hints.get("cache_ttl_seconds") or DEFAULT_CACHE_TTL_S}
    return rule.model_copy(update={"optimization_hints": OptimizationHints.model_validate(hints)})


def apply_changes(current: RoutingConfig, changes: Iterable[ProposedChange]) -> RoutingConfig:
    """The configuration with every change applied; an application without a rule gets one."""
    rules = list(current.routing_rules)
    for change in changes:
        index = _rule_index(rules, change.application_id)
        if index is None:
            rules.append(RoutingRule(
                id=f"rule-{change.application_id}", name=f"{change.application_id} routing",
                priority=max((r.priority for r in rules), default=90) + 10,
                conditions={"application_id": change.application_id},
                target_selection=TargetSelection(strategy="capability_match",
                                                 preferred_models=[change.fallback_model] if change.fallback_model else []),
            ))
            index = len(rules) - 1
        rules[index] = _changed_rule(rules[index], change)
    return RoutingConfig(routing_rules=rules, default_policy=current.default_policy)


def canary(current: RoutingConfig, proposed: RoutingConfig, percent: float) -> RoutingConfig:
    """The current configuration plus each changed rule as a canary on `percent` of its traffic."""
    before = {r.id: r for r in current.routing_rules}
    extra = []
    for rule in proposed.routing_rules:
        if before.get(rule.id) == rule:
            continue
        extra.append(rule.model_copy(update={
            "id": rule.id + CANARY_SUFFIX,
            "name": f"{rule.name} (canary {percent:g}%)",
            "priority": rule.priority + 1,
            "conditions": {**rule.conditions, "traffic_percentage": percent},
        }))
    return RoutingConfig(routing_rules=[*current.routing_rules, *extra], default_policy=current.default_policy)


def validate(config: RoutingConfig, known_models: Iterable[str]) -> list[str]:
    """Problems that would make the Orchestrator refuse the configuration, or route to nowhere."""
    known = set(known_models)
    problems = []
    ids = [rule.id for rule in config.routing_rules]
    problems += [f"rule id {rule_id} is used twice" for rule_id in sorted({i for i in ids if ids.count(i) > 1})]
    for rule in config.routing_rules:
        selection = rule.target_selection
        if selection.strategy == "cost_aware_cascade" and selection.cascade_config is None:
            problems.append(f"rule {rule.id}: a cascade needs a cascade_config")
        problems += [f"rule {rule.id}: unknown model {m}" for m in selection.models() if m not in known]
        threshold = selection.cascade_config.escalation_threshold.confidence_score if selection.cascade_config else None
        if selection.cascade_config is not None and threshold is None:
            problems.append(f"rule {rule.id}: a cascade needs an escalation confidence threshold")
    return problems


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat |= _flatten(inner, f"{prefix}{key}.")
        return flat
    return {prefix.rstrip("."): value}


def diff(current: RoutingConfig, proposed: RoutingConfig) -> list[RuleChange]:
    """Rule by rule, what the proposal adds or changes (field paths that differ)."""
    before = {r.id: r.model_dump(mode="json", exclude_none=True) for r in current.routing_rules}
    changes = []
    for rule in proposed.routing_rules:
        after = rule.model_dump(mode="json", exclude_none=True)
        old = before.get(rule.id)
        if old == after:
            continue
        old_flat, new_flat = _flatten(old or {}), _flatten(after)
        fields = sorted(k for k in old_flat.keys() | new_flat.keys() if old_flat.get(k) != new_flat.get(k))
        changes.append(RuleChange(rule_id=rule.id, change="changed" if old else "added", before=old, after=after,
                                  fields=fields))
    return changes


def watched_models(proposed: RoutingConfig, applications: Iterable[str]) -> dict[str, list[str]]:
    """Each application's models under the proposed rules: what a canary's guardrails watch
    where the Observatory cannot filter by application. Every change to an application counts
    (a cascade and a compression hint together), not only the last one named."""
    watched = {}
    for application in applications:
        index = _rule_index(proposed.routing_rules, application)
        models = proposed.routing_rules[index].target_selection.models() if index is not None else []
        watched[application] = list(dict.fromkeys(models))
    return watched


def changed_applications(changes: Sequence[RuleChange]) -> list[str]:
    return sorted({str(c.after.get("conditions", {}).get("application_id")) for c in changes
                   if c.after.get("conditions", {}).get("application_id")})


# -- experiments: a change live on a share of traffic beside control traffic --------------

TREATMENT_SUFFIX, CONTROL_SUFFIX = "-treatment", "-control"


def _tagged(rule: RoutingRule, **tags: str) -> RoutingRule:
    hints = (rule.optimization_hints or OptimizationHints()).model_dump() | tags
    return rule.model_copy(update={"optimization_hints": OptimizationHints.model_validate(hints)})


def experiment(
    current: RoutingConfig, proposed: RoutingConfig, percent: float, *, optimization_id: str, experiment_id: str,
) -> RoutingConfig:
    """The current configuration plus, for each rule the proposal changes, two arms: the
    changed rule (treatment) on `percent` of its application's traffic and the rule as it is
    (control) on the rest, both tagged with the optimization and the experiment, so their
    requests are compared over the same hours. A control as large as the application allows
    costs nothing (it is the current routing) and narrows every interval: with a 10% treatment
    the difference's variance is 0.56 times that of two 10% arms."""
    before = {r.id: r for r in current.routing_rules}
    arms = []
    for rule in proposed.routing_rules:
        if before.get(rule.id) == rule:
            continue
        control = before.get(rule.id, rule.model_copy(update={"target_selection": TargetSelection(
            strategy="capability_match", preferred_models=rule.target_selection.models()[-1:])}))
        for arm, suffix, variant, share in ((rule, TREATMENT_SUFFIX, "treatment", percent),
                                            (control, CONTROL_SUFFIX, "control", 100 - percent)):
            arms.append(_tagged(arm.model_copy(update={
                "id": rule.id + suffix, "name": f"{rule.name} ({variant}, {share:g}%)",
                "priority": rule.priority + 1,
                "conditions": {**rule.conditions, "traffic_percentage": share},
            }), optimization_id=optimization_id, experiment_id=experiment_id, variant_id=variant))
    return RoutingConfig(routing_rules=[*current.routing_rules, *arms], default_policy=current.default_policy)


def _arms_of(config: RoutingConfig, optimization_id: str) -> list[RoutingRule]:
    return [r for r in config.routing_rules if "traffic_percentage" in r.conditions
            and r.optimization_hints is not None
            and (r.optimization_hints.model_extra or {}).get("optimization_id") == optimization_id]


def end_experiment(current: RoutingConfig, optimization_id: str) -> RoutingConfig:
    """The configuration without the experiment's arms: every request back on the rules it had."""
    arms = {r.id for r in _arms_of(current, optimization_id)}
    return RoutingConfig(routing_rules=[r for r in current.routing_rules if r.id not in arms],
                         default_policy=current.default_policy)


def promote_experiment(current: RoutingConfig, optimization_id: str) -> RoutingConfig:
    """The treatment arm's rule for all its application's traffic, still tagged with the
    optimization (so what it saves can be measured), the arms gone."""
    treatments = {r.id.removesuffix(TREATMENT_SUFFIX): r for r in _arms_of(current, optimization_id)
                  if r.id.endswith(TREATMENT_SUFFIX)}
    rules = []
    for rule in end_experiment(current, optimization_id).routing_rules:
        winner = treatments.pop(rule.id, None)
        if winner is None:
            rules.append(rule)
            continue
        hints = {k: v for k, v in (winner.optimization_hints.model_dump() if winner.optimization_hints else {}).items()
                 if k not in {"experiment_id", "variant_id"}}
        rules.append(rule.model_copy(update={"target_selection": winner.target_selection,
                                             "optimization_hints": OptimizationHints.model_validate(hints)}))
    for rule_id, winner in treatments.items():  # an application that had no rule of its own
        conditions = {k: v for k, v in winner.conditions.items() if k != "traffic_percentage"}
        rules.append(winner.model_copy(update={"id": rule_id, "name": winner.name.split(" (")[0],
                                               "priority": winner.priority - 1, "conditions": conditions}))
    return RoutingConfig(routing_rules=rules, default_policy=current.default_policy)


def revert(current: RoutingConfig, before: RoutingConfig | None, application_id: str,
           optimization_id: str) -> RoutingConfig:
    """The configuration with a deployed optimization undone: the application's own rule as
    it was in `before` (the version the optimization started against; an application that
    had no rule then has none again), and any arms gone. Without `before` (a history that
    no longer holds it) only the arms go."""
    config = end_experiment(current, optimization_id)
    rules = list(config.routing_rules)
    index = _rule_index(rules, application_id)
    old = _rule_index(before.routing_rules, application_id) if before is not None else None
    if index is not None:
        if before is not None and old is not None:
            rules[index] = before.routing_rules[old]
        elif before is not None:
            del rules[index]
    return RoutingConfig(routing_rules=rules, default_policy=config.default_policy)
