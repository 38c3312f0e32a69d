"""The request record (docs/request-record.md): one row per LLM request.

`RequestRecord` is the single definition. The warehouse's column types, the Parquet/Arrow
schema (`arrow`) and the validation rules that send bad rows to quarantine are all derived from it,
so a column added here appears everywhere at once.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

import annotated_types
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class RequestRecord(BaseModel):
    """One LLM request as the platform saw it. Prompt and response text are never stored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    request_id: NonEmptyStr
    ts: AwareDatetime
    application_id: NonEmptyStr
    team_id: str | None = None
    environment: str | None = None
    provider: str | None = None
    model: NonEmptyStr
    prompt_tokens: NonNegativeInt
    completion_tokens: NonNegativeInt
    cost_usd: NonNegativeFloat
    latency_ms: NonNegativeFloat
    status: Literal["ok", "error"]
    quality_score: Probability | None = None
    task_type: str | None = None
    complexity: str | None = None
    experiment_id: str | None = None
    variant_id: str | None = None
    pair_id: str | None = None
    shadow: bool = False
    confidence_score: Probability | None = None
    escalated: bool | None = None
    compression_technique: str | None = None
    original_prompt_tokens: NonNegativeInt | None = None
    optimization_id: str | None = None
    # A hash of the prompt (never its text), the key of the exact-repeat analysis behind caching.
    prompt_hash: str | None = None


Kind = Literal["string", "integer", "number", "boolean", "timestamp"]

_SQL_TYPES: dict[Kind, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}


@dataclass(frozen=True)
class Column:
    """One column of the request record with the rules a stored value must satisfy."""

    name: str
    kind: Kind
    required: bool
    default: object = None
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] = ()

    @property
    def sql_type(self) -> str:
        return _SQL_TYPES[self.kind]


def _kind_of(annotation: object) -> tuple[Kind, tuple[str, ...]]:
    if typing.get_origin(annotation) is Literal:
        return "string", tuple(str(value) for value in typing.get_args(annotation))
    if annotation is AwareDatetime:
        return "timestamp", ()
    if annotation is bool:
        return "boolean", ()
    if annotation is int:
        return "integer", ()
    if annotation is float:
        return "number", ()
    if annotation is str:
        return "string", ()
    raise TypeError(f"no column kind for {annotation!r}")


def _columns_of(model: type[BaseModel]) -> tuple[Column, ...]:
    columns = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        metadata = list(field.metadata)
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
            (annotation,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if typing.get_origin(annotation) is Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata.extend(
                item for meta in extra for item in getattr(meta, "metadata", [meta])
            )
        kind, allowed = _kind_of(annotation)
        minimum = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
        maximum = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), None)
        columns.append(
            Column(
                name=name,
                kind=kind,
                required=field.is_required(),
                default=None if field.is_required() else field.default,
                minimum=float(minimum) if minimum is not None else None,  # type: ignore[arg-type]
                maximum=float(maximum) if maximum is not None else None,  # type: ignore[arg-type]
                allowed=allowed,
            )
        )
    return tuple(columns)


REQUEST_COLUMNS: tuple[Column, ...] = _columns_of(RequestRecord)
REQUEST_COLUMN_NAMES: tuple[str, ...] = tuple(column.name for column in REQUEST_COLUMNS)
REQUIRED_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in REQUEST_COLUMNS if c.required)

# Columns a stored row always has, whatever the input said: required ones and those with a default.
STORED_NOT_NULL: frozenset[str] = frozenset(
    c.name for c in REQUEST_COLUMNS if c.required or c.default is not None
)


# Ids and names longer than this are not ids but pasted text: refused, never stored.
MAX_TEXT_LENGTH = 256
# Quarantine lists at most this many names of a record's columns that are not the contract's.
MAX_UNKNOWN_NAMES = 50


@dataclass(frozen=True)
class RecordBounds:
    """What a load accepts beyond a value's type: text of id length, and timestamps in a
    plausible range (a request from 1938 or 9999 is a broken clock, not traffic). A length
    of None measures no text: for rows already known to have none too long."""

    oldest_ts: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    newest_ts: datetime = datetime(2100, 1, 1, tzinfo=UTC)
    max_text_length: int | None = MAX_TEXT_LENGTH


DEFAULT_BOUNDS = RecordBounds()
