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


def day_ids(day: date, trace_bits: np.ndarray) -> tuple[np.ndarray, ...]:
    """A day's request serials, request ids, trace ids, span ids and shadow-call span ids, from
    two random 63-bit numbers per request. Built column-wise: formatting them one by one was
    most of a day's generation. A trace id starts with the day's ordinal, so a trace can be
    found without an index; the request's span id is its middle, the shadow call's its last
    16 digits."""
    serial = np.char.add(f"{day:%Y%m%d}-", np.char.zfill(np.arange(len(trace_bits)).astype(str), 6))
    request_id = np.char.add("req-", serial).astype(object)
    high, low = hex_digits(trace_bits[:, 0], 8), hex_digits(trace_bits[:, 1] & 0xFFFFFFFF, 4)
    trace_id = np.char.add(np.char.add(f"{day.toordinal():08x}", high), low).astype(object)
    shadow_span_id = np.char.add(hex_digits(trace_bits[:, 0] & 0xFFFFFFFF, 4), low).astype(object)
    return serial, request_id, trace_id, high, shadow_span_id
