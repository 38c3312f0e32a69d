"""Defaults that the command line's help names as well as the settings and the analyses use,
each here once and free of imports: building the `auto-optimizer` parser (and so `--help`)
reads them without loading pydantic, the settings or the result models."""

from __future__ import annotations

ENV_PREFIX = "AUTO_OPTIMIZER_"
LOOPBACK = "127.0.0.1"
SANDBOX_DEFAULT_PORT = 8700
WEBHOOK_DEFAULT_PORT = 8710
API_SERVER_DEFAULT_PORT = 8720
SANDBOX_DEFAULT_TOKEN = "local-sandbox-token"

# How much a cascade may raise p95 latency by default, in percent: below the 30% a rollout's
# guardrail allows, since the guardrail reads a noisy percentile of a small experiment arm.
MAX_P95_LATENCY_INCREASE_PCT = 20.0
# How much a recommendation may raise the mean latency of a request, in ms: the specification's
# `max_latency_increase_ms` goal (200), held by a one-sided upper confidence bound. The percent
# budget above guards the tail; this one the average a user waits.
MAX_LATENCY_INCREASE_MS = 200.0
