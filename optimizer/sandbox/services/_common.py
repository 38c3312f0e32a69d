"""Helpers every sandbox service shares: JSON answers, errors, the state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Request, Response
from pydantic import BaseModel

from optimizer.sandbox.state import SandboxState

NS_PER_S = 1_000_000_000


def reply(payload: BaseModel | dict[str, Any] | list[Any], status: int = 200) -> Response:
    body = (
        payload.model_dump(mode="json", exclude_none=True)
        if isinstance(payload, BaseModel)
        else payload
    )
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


def problem(status: int, message: str, **details: Any) -> Response:
    """An error in the specification's BadRequest shape: `{"error", "details"}`."""
    return reply({"error": message, "details": details}, status)


def state_of(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_utc(moment: datetime) -> datetime:
    """Query times without an offset are read as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def split_list(values: list[str]) -> list[str]:
    """`group_by=a&group_by=b` and `group_by=a,b` mean the same."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
