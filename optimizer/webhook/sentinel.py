"""Sentinel's own webhook: `{"event_type", "timestamp", "data": AnomalyEvent, "signature"}`
in plain JSON, signed with HMAC-SHA256 (hex) in `X-Sentinel-Signature`.

Sentinel signs the payload before it adds the `signature` member and sends the body with
it, so a signature is accepted over the body as received or over the body without that
(last, compact) member. An accepted webhook becomes the specification's alert event, keyed
by its `alert_id`, so a replay is a duplicate and starts no second run.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from optimizer.errors import BadInputError
from optimizer.schemas.sentinel import SentinelWebhook

SIGNATURE_HEADER = "x-sentinel-signature"
SOURCE = "llm-sentinel"
ALERT_EVENT_TYPE = "io.llm-platform.sentinel.alert"
_SIGNATURE_MEMBER = re.compile(rb',\s*"signature"\s*:\s*"[0-9A-Fa-f]*"(?=\s*}\s*$)')


def is_sentinel_webhook(headers: Mapping[str, str]) -> bool:
    """A Sentinel webhook says so with its signature header, or comes as plain JSON without
    any CloudEvents marker (then it is refused for want of a signature)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    if SIGNATURE_HEADER in lowered:
        return True
    content_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" and not any(key.startswith("ce-") for key in lowered)


def signature_valid(body: bytes, signature: str, secret: str) -> bool:
    given = signature.strip().lower().removeprefix("sha256=")
    candidates = [body]
    unsigned = _SIGNATURE_MEMBER.sub(b"", body, count=1)
    if unsigned != body:
        candidates.append(unsigned)
    return any(hmac.compare_digest(sign(candidate, secret), given) for candidate in candidates)


def sign(body: bytes, secret: str) -> str:
    """The signature Sentinel sends for `body`: HMAC-SHA256, hex."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_from_webhook(body: bytes) -> dict[str, Any]:
    """The webhook as a structured-mode CloudEvent of the specification's alert type (or of
    its own type, `io.llm-sentinel.<event_type>`, when it is not an anomaly).

    Raises BadInputError naming the first field that does not fit.
    """
    try:
        webhook = SentinelWebhook.model_validate(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"Sentinel webhook: body is not JSON ({exc})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BadInputError(f"Sentinel webhook: {where}: {first.get('msg')}") from exc
    anomaly = webhook.data
    kind = ALERT_EVENT_TYPE if webhook.event_type == "anomaly.detected" else f"io.llm-sentinel.{webhook.event_type}"
    return {
        "specversion": "1.0", "id": anomaly.alert_id, "source": SOURCE, "type": kind,
        "time": webhook.timestamp.isoformat(), "datacontenttype": "application/json",
        "data": anomaly.as_alert().model_dump(mode="json", exclude_none=True),
    }
