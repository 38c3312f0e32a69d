"""The worlds the sandbox can play (`--world`): the organisation of `optimizer.sandbox.world`
at another volume, or with models that drift. Plain data with no imports beyond the standard
library, so the command line lists the worlds' names without loading the sandbox."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Drift:
    """What changes about one application's requests from a day on, unseen by the evidence
    gathered before: a model whose answers get worse (or better) while it stays as confident
    as before (what past shadow pairs cannot show), or prompts that compression hurts more
    (what a past compression experiment cannot show)."""

    application_id: str
    model: str | None  # the model whose skill shifts; None for a compression drift
    days_after_anchor: int
    quality_shift: float = 0.0  # added to the model's skill where the quality of its answers is concerned
    compression_loss: float = 0.0  # quality a compressed prompt loses on top of what compression costs


@dataclass(frozen=True)
class World:
    """A named variation of the organisation: its volume and how its models drift."""

    name: str
    description: str
    requests_per_day: int | None = None  # None: the sandbox's own setting
    drifts: tuple[Drift, ...] = ()


WORLDS: dict[str, World] = {world.name: world for world in (
    World("default", "the organisation as seeded: models behave the same every day"),
    World("drift", "doc-qa's documents change a day after the anchor and compression starts losing "
                   "what matters in them (0.12 of quality): the compression its past experiment certified "
                   "turns harmful live; and GPT-4o mini turns bad at support-bot's requests a day later, "
                   "as confident as ever, so past shadow pairs overstate a cascade",
          drifts=(Drift("doc-qa", None, 1, compression_loss=0.12),
                  Drift("support-bot", "gpt-4o-mini-2024-07-18", 3, -2.5))),
    World("low-traffic", "an eighth of the default volume: experiments take longer to decide",
          requests_per_day=1_500),
)}
