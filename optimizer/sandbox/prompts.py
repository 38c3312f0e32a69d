"""What the sandbox's requests say about their prompts without their text: a hash, for the
applications that send one, and whether a scheduled job submitted them."""

from __future__ import annotations

from datetime import date

import numpy as np

from optimizer.sandbox.sampling import hex_digits
from optimizer.sandbox.world import APPLICATIONS, OFFLINE_SHARES, PROMPT_REPEATS, TASK_TYPES

# Prompt hashes and offline jobs have random streams of their own, apart from the day's: the
# traffic drawn before they existed stays as it was.
PROMPT_STREAM, POOL_STREAM = 11, 13


def prompt_hashes(seed: int, day: date, app: np.ndarray, task: np.ndarray) -> np.ndarray:
    """Each request's prompt hash (None where its application sends none; see
    `PROMPT_REPEATS`), and, in `task`, the requests scheduled jobs submit marked offline (the
    task type after `TASK_TYPES`)."""
    rng = np.random.default_rng([seed, day.toordinal(), PROMPT_STREAM])
    n = len(app)
    hashes = np.full(n, None, dtype=object)
    fresh, common, offline = rng.integers(0, 2**63, size=n), rng.random(n), rng.random(n)
    for index, application in enumerate(APPLICATIONS):
        rows = app == index
        task[rows & (offline < OFFLINE_SHARES.get(application.application_id, 0.0))] = len(TASK_TYPES)
        repeats = PROMPT_REPEATS.get(application.application_id)
        if repeats is None or not rows.any():
            continue
        pool = np.random.default_rng([seed, index, POOL_STREAM]).integers(0, 2**63, size=repeats.pool_size)
        weights = 1.0 / np.arange(1, repeats.pool_size + 1) ** repeats.zipf_exponent
        popular = pool[rng.choice(repeats.pool_size, size=n, p=weights / weights.sum())]
        values = np.where(rows & (common < repeats.common_share), popular, fresh)[rows]
        hashes[rows] = np.char.add("sha256:", hex_digits(values, 8)).astype(object)
    return hashes
