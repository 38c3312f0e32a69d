"""What the optimizer announces (docs/events.md): event types, sources, and an event as the
outbox keeps it until a sink accepts it.

Plain data, no transport: the warehouse stores these and `optimizer.events` sends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

SOURCE = "/auto-optimizer"
EXPERIMENTS_SOURCE = "/auto-optimizer/experiments"
OPTIMIZATION_APPLIED = "io.llm-platform.optimization.applied"
OPTIMIZATION_FAILED = "io.llm-platform.optimization.failed"
OPTIMIZATION_RECOMMENDED = "io.llm-platform.optimization.recommended"
EXPERIMENT_STARTED = "io.llm-platform.experiment.started"
EXPERIMENT_COMPLETED = "io.llm-platform.experiment.completed"

# `optimization_type` of the optimization events, in the specification's enumerations (the
# Registry's recommendation types; `model_selection` is its experiment type for a model change).
OPTIMIZATION_TYPES: dict[str, str] = {
    "model_cascade": "model_cascade", "prompt_compression": "prompt_compression",
    "preferred_model": "model_selection", "caching": "caching", "batching": "batching",
}


@dataclass(frozen=True)
class OutgoingEvent:
    """An event waiting in the outbox: everything needed to send it again, identically.

    Its id is derived from what it announces, so a resend after a failed delivery is
    recognisably the same event and a receiver that deduplicates by source and id acts on
    it once.
    """

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: dict[str, Any]
