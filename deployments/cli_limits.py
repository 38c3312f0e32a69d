"""The latency limits the `analyze` and `run nightly` commands take (docs/cli.md)."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from optimizer.defaults import ENV_PREFIX, MAX_LATENCY_INCREASE_MS, MAX_P95_LATENCY_INCREASE_PCT

if TYPE_CHECKING:
    from optimizer.settings import Settings

NO_LIMIT = math.inf  # what `none` parses to, until it is read as "no limit" (None)


def latency_budget(text: str) -> float | None:
    if text.lower() == "none":
        return None
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage of at least 0 (or 'none')")
    return value


def _latency_ms(text: str) -> float:
    if text.lower() == "none":
        return NO_LIMIT
    value = float(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"{text} is not a number of milliseconds of at least 0 (or 'none')")
    return value


def add_latency_limits(command: argparse.ArgumentParser, *, p95: bool) -> None:
    """`--max-latency-increase-ms` and, for a cascade, `--max-p95-latency-increase-pct`."""
    if p95:
        command.add_argument("--max-p95-latency-increase-pct", type=latency_budget, default=MAX_P95_LATENCY_INCREASE_PCT,
                             help="how much a cascade may raise p95 latency, in percent; 'none' for any "
                                  f"(default {MAX_P95_LATENCY_INCREASE_PCT:g})")
    command.add_argument("--max-latency-increase-ms", type=_latency_ms, default=None,
                         help="how much the mean latency of a request may rise, in ms, held with confidence "
                              f"1 - alpha; 'none' for any (default {ENV_PREFIX}MAX_LATENCY_INCREASE_MS, "
                              f"{MAX_LATENCY_INCREASE_MS:g})")


def latency_limit_ms(args: argparse.Namespace, settings: Settings) -> float | None:
    """The limit given on the command line, else the setting; None for no limit."""
    given = args.max_latency_increase_ms
    if given is None:
        return settings.max_latency_increase_ms
    return None if given == NO_LIMIT else float(given)
