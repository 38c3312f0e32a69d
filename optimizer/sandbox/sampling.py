"""Vectorised draws and formatting the traffic generator builds its columns with."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np


def hex_digits(values: np.ndarray, width_bytes: int) -> np.ndarray:
    """Lower-case hex digits of non-negative integers, zero-padded to `2 * width_bytes`."""
    digits = values.astype(f">u{width_bytes}").tobytes().hex().encode("ascii")
    return np.frombuffer(digits, dtype=f"S{2 * width_bytes}").astype(f"U{2 * width_bytes}")


def pick_rows(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One category per row, each row with its own probability vector."""
    cumulative = probabilities.cumsum(axis=1)
    cumulative /= cumulative[:, -1:]
    draws = rng.random(len(probabilities))[:, None]
    picked: np.ndarray = np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)
    return picked


def hourly_weights() -> np.ndarray:
    hours = np.arange(24)
    weights: np.ndarray = 0.3 + 0.7 * np.exp(-(((hours - 14.5) / 4.5) ** 2))
    return weights / float(weights.sum())


def day_start_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000
