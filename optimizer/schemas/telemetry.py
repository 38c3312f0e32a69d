"""OpenTelemetry attribute names that carry request-record columns (docs/request-record.md).

The first name of each entry is the one the optimizer (and its sandbox) writes, as in the
platform specification's examples; readers accept every alias, in order, because producers
follow different versions of the GenAI semantic conventions (`gen_ai.system` became
`gen_ai.provider.name`, `prompt_tokens` became `input_tokens`).
"""

from __future__ import annotations

from types import MappingProxyType

from optimizer.schemas.records import REQUEST_COLUMN_NAMES

_EXPLICIT: dict[str, tuple[str, ...]] = {
    "request_id": ("llm.request_id",),
    "application_id": ("llm.application_name", "llm.application_id"),
    "environment": ("deployment.environment.name", "deployment.environment", "llm.environment"),
    "provider": ("gen_ai.system", "gen_ai.provider.name"),
    "model": ("gen_ai.request.model", "gen_ai.response.model", "llm.request.model"),
    "prompt_tokens": ("gen_ai.usage.prompt_tokens", "gen_ai.usage.input_tokens"),
    "completion_tokens": ("gen_ai.usage.completion_tokens", "gen_ai.usage.output_tokens"),
    "cost_usd": ("llm.request.cost_usd",),
    "latency_ms": ("llm.response.latency_ms",),
}

# ts comes from the span start or the log timestamp, never from an attribute.
ATTRIBUTE_ALIASES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        column: _EXPLICIT.get(column, (f"llm.{column}",))
        for column in REQUEST_COLUMN_NAMES
        if column != "ts"
    }
)

# Attribute name -> column, for every alias (used to resolve `group_by` and filters).
COLUMN_OF_ATTRIBUTE: MappingProxyType[str, str] = MappingProxyType(
    {alias: column for column, aliases in ATTRIBUTE_ALIASES.items() for alias in aliases}
)


# What identifies a request and its application when no `llm.*` attribute does: the span id
# (a span's `spanId`; a log record's `span_id` attribute or `spanId`) and the service that
# made the call (`service.name`, of a span's resource or among a log record's attributes).
REQUEST_ID_FALLBACKS: tuple[str, ...] = ("span_id",)
APPLICATION_FALLBACKS: tuple[str, ...] = ("service.name",)
_ELSEWHERE = {
    "request_id": "a span id: a span's spanId, a log record's span_id",
    "application_id": "the resource's service.name",
    "ts": "a log record's timestamp, a span's startTimeUnixNano",
    "latency_ms": "a span's start and end times",
    "status": "a span's status code, a log record's severityNumber",
}


def missing_hint(column: str) -> str | None:
    """What a telemetry record lacking `column` should add, e.g. for `prompt_tokens`
    `add gen_ai.usage.prompt_tokens (or gen_ai.usage.input_tokens)`."""
    aliases = ATTRIBUTE_ALIASES.get(column, ())
    others = [*aliases[1:], *([_ELSEWHERE[column]] if column in _ELSEWHERE else [])]
    if not aliases:
        return f"add {_ELSEWHERE[column]}" if column in _ELSEWHERE else None
    return f"add {aliases[0]}" + (f" (or {', '.join(others)})" if others else "")


def canonical_attribute(column: str) -> str:
    """The attribute name the optimizer writes for `column`."""
    return ATTRIBUTE_ALIASES[column][0]
