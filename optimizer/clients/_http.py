"""The one HTTP client core every platform client is built on.

It owns timeouts, bearer auth, retries and pagination so the typed clients only say which
path to call and which payload to expect. Retries cover 429 (honouring Retry-After),
5xx and transport failures, with exponential backoff and full jitter. Writes carry an
`Idempotency-Key`, the same on every attempt, so a retried POST is applied once.
"""

from __future__ import annotations

import functools
import logging
import random
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlencode

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from optimizer.errors import (
    AuthenticationError,
    PlatformRequestError,
    PlatformUnavailableError,
)
from optimizer.redaction import redact, url_credentials

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
ModelT = TypeVar("ModelT", bound=BaseModel)
QueryParams = Mapping[str, str] | Sequence[tuple[str, str]] | None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. Delays are in seconds."""

    max_attempts: int = 6
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempts count from 1)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_backoff_s)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return rng.uniform(0, ceiling)


def query_time(moment: datetime) -> str:
    """A time as the platform's query parameters take it: ISO 8601 in UTC, with `Z`."""
    return moment.isoformat().replace("+00:00", "Z")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verified TLS context for every client: loading the CA bundle costs ~25 ms a time."""
    return httpx.create_ssl_context()


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class ServiceClient:
    """A connection to one platform service (base URL such as `https://x/api/v1`)."""

    service = "platform"

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "llm-auto-optimizer"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout_s,
            verify=_tls_context(),
        )
        # What its messages must not show: its token, and any credential in its URL.
        self._secrets = [token or "", *url_credentials(base_url)]
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.attempts_made = 0

    def close(self) -> None:
        self._http.close()

    def redacted(self, text: str) -> str:
        """`text` fit to log or raise: no credential of this client's, no URL's credential."""
        return redact(text, self._secrets)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        attempts: int | None = None,
    ) -> httpx.Response:
        """Send one logical request, retrying transient failures; return the 2xx response.

        `json` is serialised here; `content` with its own `headers` is sent as given (a
        CloudEvent in structured mode, say). `attempts` overrides the retry policy's count
        (1 for a probe, whose failure is an answer).
        """
        max_attempts = attempts or self._retry.max_attempts
        headers = dict(headers or {})
        if json is not None:
            content = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        if method.upper() in {"POST", "PUT", "PATCH"}:
            headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
        url = path.lstrip("/")
        query = urlencode(params) if params else None
        last_problem = "no attempt made"
        for attempt in range(1, max_attempts + 1):
            self.attempts_made += 1
            retry_after = None
            try:
                response = self._http.request(
                    method, url, params=query, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRYABLE_STATUS:
                    raise self._refusal(method, path, response)
                last_problem = f"HTTP {response.status_code}"
                retry_after = _retry_after_seconds(response)
            if attempt == max_attempts:
                break
            wait = self._retry.delay(attempt, retry_after, self._rng)
            logger.warning(
                "%s %s %s failed (%s); retry %d/%d in %.2fs",
                self.service, method, self.redacted(path), self.redacted(last_problem), attempt, max_attempts - 1, wait,
            )
            self._sleep(wait)
        raise PlatformUnavailableError(
            self.redacted(f"{self.service}: {method} {path} failed after {max_attempts} attempts ({last_problem})"),
            service=self.service,
        )

    def _refusal(self, method: str, path: str, response: httpx.Response) -> PlatformRequestError:
        detail = response.text[:300].strip()
        message = self.redacted(f"{self.service}: {method} {path} answered {response.status_code}: {detail}")
        error_type = (
            AuthenticationError if response.status_code in {401, 403} else PlatformRequestError
        )
        return error_type(message, service=self.service, status_code=response.status_code)

    def call(
        self,
        method: str,
        path: str,
        model: type[ModelT],
        *,
        params: QueryParams = None,
        json: Any = None,
    ) -> ModelT:
        """Send a request and parse the answer into `model`."""
        response = self.request(method, path, params=params, json=json)
        return self.parse(response, model, f"{method} {path}")

    def parse(self, response: httpx.Response, model: type[ModelT], what: str) -> ModelT:
        try:
            return model.model_validate(orjson.loads(response.content))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise PlatformRequestError(
                self.redacted(f"{self.service}: {what} returned an unexpected payload: {exc}".splitlines()[0]),
                service=self.service,
                status_code=response.status_code,
            ) from exc

    def paginate(
        self,
        method: str,
        path: str,
        model: type[ModelT],
        body: dict[str, Any],
        *,
        cursor_field: str = "cursor",
        next_field: str = "next_cursor",
    ) -> Iterator[ModelT]:
        """Yield every page of a cursor-paginated listing, following `next_field`."""
        cursor: str | None = None
        while True:
            page_body = {**body, cursor_field: cursor} if cursor else dict(body)
            page = self.call(method, path, model, json=page_body)
            yield page
            cursor = getattr(page, next_field, None)
            if not cursor:
                return


_Self = TypeVar("_Self", bound=ServiceClient)

Style = Literal["spec", "upstream"]


class StyleChoice:
    """Which API a service speaks: as configured, or for `auto` what one probe finds, asked
    once and only when first needed. Services that exist in the public repositories answer
    differently from the platform specification; the same clients speak both."""

    def __init__(self, service: str, configured: str, detect: Callable[[], Style]) -> None:
        if configured not in {"spec", "upstream", "auto"}:
            raise ValueError(f"{service}: API style must be spec, upstream or auto, not {configured!r}")
        self.service = service
        self._resolved: Style | None = None if configured == "auto" else configured  # type: ignore[assignment]
        self._detect = detect

    @property
    def style(self) -> Style:
        if self._resolved is None:
            self._resolved = self._detect()
            logger.info("%s speaks the %s API", self.service, self._resolved)
        return self._resolved

    @property
    def upstream(self) -> bool:
        return self.style == "upstream"


def no_such_route(exc: PlatformRequestError) -> bool:
    """A refusal that says the path or method does not exist, not that the request was bad."""
    return exc.status_code in {404, 405, 501}


class StyledClient(ServiceClient):
    """A client of a service whose upstream build answers differently from the specification:
    it speaks the spec's API unless told otherwise, and for `auto` asks `detect_style`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.style = StyleChoice(self.service, "spec", self.detect_style)

    def speaking(self, style: str) -> Self:
        """This client, speaking `style` (spec, upstream, or auto: detected on first use)."""
        self.style = StyleChoice(self.service, style, self.detect_style)
        return self

    def detect_style(self) -> Style:
        raise NotImplementedError

    def probe(self, method: str, path: str, *, answered: Style, missing: Style, **request: Any) -> Style:
        """`answered` if one attempt at the route succeeds, `missing` if the service has no such
        route; any other failure is raised, not guessed around."""
        try:
            self.request(method, path, attempts=1, **request)
        except PlatformRequestError as exc:
            if no_such_route(exc):
                return missing
            raise
        return answered
