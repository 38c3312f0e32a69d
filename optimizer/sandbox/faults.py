"""Fault injection: what makes the sandbox behave like a real network service on a bad day.

Faults are drawn from a seeded generator, so a run with the same settings fails the same
way. `queued` statuses are answered first, one per request, for tests that need an exact
sequence (three 503s, then success).
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from pydantic import BaseModel, Field


class FaultSettings(BaseModel):
    """Shares are per request, in [0, 1]; `slow_seconds` is the added delay of a slow answer."""

    rate_limit_share: float = Field(default=0.0, ge=0, le=1)
    server_error_share: float = Field(default=0.0, ge=0, le=1)
    slow_share: float = Field(default=0.0, ge=0, le=1)
    slow_seconds: float = Field(default=2.0, ge=0, le=120)
    retry_after_seconds: float = Field(default=1.0, ge=0, le=3600)
    queued: list[int] = Field(default_factory=list)
    seed: int = 0


@dataclass
class Fault:
    status: int | None = None  # an error status to answer instead of the real response
    delay_s: float = 0.0
    retry_after_s: float | None = None


@dataclass
class FaultInjector:
    settings: FaultSettings = field(default_factory=FaultSettings)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.configure(self.settings)

    def next_fault(self) -> Fault:
        """The fault for the next request, counted under the same lock as it is drawn, so a
        `configure` in between cannot count it against the new settings."""
        with self._lock:
            fault = self._draw()
            if fault.status:
                self.served[fault.status] += 1
        return fault

    def configure(self, settings: FaultSettings) -> None:
        with self._lock:
            self.settings = settings
            self._rng = random.Random(settings.seed)
            self._queue: deque[int] = deque(settings.queued)
            self.served: Counter[int] = Counter()

    def _draw(self) -> Fault:
        s = self.settings
        if self._queue:
            status = self._queue.popleft()
            return Fault(status=status, retry_after_s=s.retry_after_seconds if status == 429 else None)
        draw = self._rng.random()
        if draw < s.rate_limit_share:
            return Fault(status=429, retry_after_s=s.retry_after_seconds)
        if draw < s.rate_limit_share + s.server_error_share:
            return Fault(status=self._rng.choice((500, 502, 503)))
        if self._rng.random() < s.slow_share:
            return Fault(delay_s=s.slow_seconds)
        return Fault()
