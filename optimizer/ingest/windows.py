"""Which time windows an incremental extraction covers.

The watermark is the end of the last window that was loaded. The next run starts a
`lookback` before it, because records can reach the Observatory hours late; loading is
idempotent by request_id, so re-reading that margin only picks up what was missing.
Windows are aligned to whole multiples of `window` (UTC), so reruns read the same files.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from optimizer.errors import BadInputError
from optimizer.schemas.loads import Window

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["EPOCH", "Window", "days_between", "floor_to", "plan_windows"]


def floor_to(moment: datetime, step: timedelta) -> datetime:
    return EPOCH + ((moment.astimezone(UTC) - EPOCH) // step) * step


def plan_windows(
    *,
    end: datetime,
    watermark: datetime | None,
    backfill: timedelta,
    lookback: timedelta,
    window: timedelta = timedelta(days=1),
) -> list[Window]:
    """Windows covering [start, end): from the watermark minus the look-back, or a backfill."""
    if end.tzinfo is None:
        raise BadInputError("window end must carry a time zone (UTC)")
    if backfill <= timedelta(0) or lookback < timedelta(0) or window <= timedelta(0):
        raise BadInputError("backfill and window must be positive, look-back not negative")
    start = end - backfill if watermark is None else min(watermark, end) - lookback
    windows = []
    cursor = start
    while cursor < end:
        boundary = min(floor_to(cursor, window) + window, end)
        windows.append(Window(cursor, boundary))
        cursor = boundary
    return windows


def days_between(start: datetime, end: datetime) -> list[date]:
    """The UTC days that [start, end) touches."""
    first, last = start.astimezone(UTC).date(), (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
