"""Generated days shared by every sandbox of one process.

A day's traffic follows from the generator's seed, volume, catalog, drifts, incidents, routing
and concluded experiments alone, so sandboxes that agree on all of them serve the same frame:
a process that starts many sandboxes (a test run, a benchmark) generates each such day once.
Budget checks read the whole month to date, which made this the sandbox's main cost."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import pandas as pd

MAX_DAYS = 96

_days: OrderedDict[Hashable, pd.DataFrame] = OrderedDict()
_lock = threading.Lock()


def shared_day(key: Hashable, generate: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """The frame generated for `key`, generating it if no sandbox of this process has; the
    least recently used days are dropped beyond MAX_DAYS. Frames are never changed in place."""
    with _lock:
        found = _days.get(key)
        if found is not None:
            _days.move_to_end(key)
            return found
    frame = generate()
    with _lock:
        _days[key] = frame
        while len(_days) > MAX_DAYS:
            _days.popitem(last=False)
    return frame
