"""Credentials kept out of everything the optimizer prints, logs, reports or stores.

A URL setting may carry a credential (`https://user:password@host/...`,
`...?access_token=...`), and an error names the URL it failed on; a service may echo a token
back in its answer. Text passes through `redact` before it leaves the process or reaches
the warehouse, so a credential never travels further than the request that needs it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import SplitResult, unquote, unquote_plus, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry a credential, by the names services commonly give them
# (compared lower-case, with `-` read as `_`).
SENSITIVE_PARAMETERS = frozenset({
    "access_token", "api_key", "apikey", "auth", "authorization", "client_secret", "code", "credential",
    "credentials", "id_token", "key", "passwd", "password", "private_token", "pwd", "refresh_token", "secret",
    "session", "sig", "signature", "token", "x_amz_credential", "x_amz_security_token", "x_amz_signature",
})
# A URL inside free text: a scheme, `://`, then everything up to whitespace, a quote or a bracket.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>`()\[\]{}]+")
_USERINFO = re.compile(r"//[^/?#]*@")
# A known secret shorter than this is not searched for: it would mask ordinary words.
MIN_SECRET_LENGTH = 4


def _sensitive(name: str) -> bool:
    return name.strip().lower().replace("-", "_") in SENSITIVE_PARAMETERS


def _parameters(section: str) -> list[tuple[str, str]]:
    return [(name, value) for name, _, value in (part.partition("=") for part in section.split("&"))]


def _masked_query(query: str) -> str:
    """The query with every sensitive parameter's value masked, the rest left as written."""
    return "&".join(f"{name}={MASK}" if value and _sensitive(name) else part
                    for part, (name, value) in zip(query.split("&"), _parameters(query), strict=True))


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket, say
        return None


def redact_url(url: str) -> str:
    """`url` with its user information and its sensitive query parameters masked, so it can
    be shown: `https://***@host/path?access_token=***&page=2`."""
    parts = _split(url)
    if parts is None:  # not even a URL's shape: mask what looks like user information all the same
        head, question, query = url.partition("?")
        return _USERINFO.sub(f"//{MASK}@", head) + question + _masked_query(query)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, query=_masked_query(parts.query),
                                     fragment=_masked_query(parts.fragment)))


def url_credentials(url: str) -> list[str]:
    """The secret values a URL carries (its password, the values of its sensitive query
    parameters), as written and percent-decoded, so that text quoting them can be cleaned."""
    parts = _split(url)
    if parts is None:
        return []
    # With no password, the user name is the credential (an API key given as `https://KEY@host`).
    written = {value for section in (parts.query, parts.fragment)
               for name, value in _parameters(section) if value and _sensitive(name)}
    if user_secret := parts.password or parts.username:
        written.add(user_secret)
    return sorted(written | {unquote(value) for value in written} | {unquote_plus(value) for value in written})


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every URL in it passed through `redact_url`, and every known secret value
    in it (a token, a URL's password) replaced by the mask."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def redact_record(record: logging.LogRecord, secrets: Iterable[str] = ()) -> None:
    """Clean a log record in place: its message with its arguments, and its exception's text.
    A record with nothing to hide keeps its arguments, which some formatters read."""
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the message: logging reports that itself
        return
    if (clean := redact(message, secrets)) != message:
        record.msg, record.args = clean, None
    raised = record.exc_info
    text = record.exc_text or (logging.Formatter().formatException(raised) if raised and raised[0] else "")
    if text and (clean := redact(text, secrets)) != text:
        record.exc_text = clean


@contextmanager
def redacted_logging(secrets: Iterable[str] = ()) -> Iterator[None]:
    """Every log record made in this block is cleaned as it is made, whichever logger and
    handler it goes to (Prefect's among them, which replace the handlers they find)."""
    known = tuple(secrets)
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record, known)
        return record

    logging.setLogRecordFactory(make_record)
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)
