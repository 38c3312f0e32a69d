"""What every use case needs from outside: settings, the warehouse, the platform's clients.

Built once where a run starts (the CLI, a flow run, the demo, a benchmark) and passed
down, so no use case reads the environment. It is plain data (settings and nothing
open), so it travels to a Dask worker as any task argument does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optimizer.redaction import redact
from optimizer.settings import Settings

if TYPE_CHECKING:
    from optimizer.clients import PlatformClients
    from optimizer.events import EventSinkClient
    from optimizer.warehouse import Warehouse

# Where a use case says what it did: a task's run logger, or this package's logger.
Log = logging.Logger | logging.LoggerAdapter[Any]
LOG: Log = logging.getLogger("optimizer.pipeline")

_CHOSEN: ContextVar[Settings | None] = ContextVar("auto_optimizer_settings", default=None)


@dataclass(frozen=True)
class Runtime:
    settings: Settings

    @classmethod
    def current(cls) -> Runtime:
        """The settings a caller chose with `configured`, else the process's environment:
        a flow run started by a worker is configured by the worker's environment."""
        return cls(_CHOSEN.get() or Settings())

    # What a use case opens is loaded when it opens it: the ad-hoc `analyze` commands, which
    # open nothing of this, start without the HTTP clients or the warehouse's modules.
    def warehouse(self) -> Warehouse:
        from optimizer.warehouse import Warehouse

        return Warehouse(self.settings.warehouse)

    def clients(self) -> PlatformClients:
        from optimizer.clients import PlatformClients

        return PlatformClients.from_settings(self.settings)

    def event_sink(self) -> EventSinkClient:
        """A client of the event sink with the sink's own token: the sink is not a platform
        service, so the platform's token must never reach it."""
        config = self.settings
        from optimizer.clients import RetryPolicy
        from optimizer.events import EventSinkClient

        token = config.events_token.get_secret_value() if config.events_token else None
        return EventSinkClient(
            config.events_url, token or None, timeout_s=config.http_timeout_s,
            retry=RetryPolicy(max_attempts=config.http_max_attempts, backoff_s=config.http_backoff_s,
                              max_backoff_s=config.http_max_backoff_s),
        )

    def redact(self, text: str) -> str:
        """`text` without any secret of the settings': for what is logged, reported or stored."""
        return redact(text, self.settings.secret_values())


@contextmanager
def configured(settings: Settings) -> Iterator[Runtime]:
    """Run flows called in this block (and their subflows) with `settings`, not the
    environment's: how the demo, the CLI and the tests hand their settings to a flow run
    without turning them into environment variables."""
    token = _CHOSEN.set(settings)
    try:
        yield Runtime(settings)
    finally:
        _CHOSEN.reset(token)
