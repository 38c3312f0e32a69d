"""How each application uses LLMs: what recommendations are sized by."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApplicationProfile:
    """How an application used LLMs over a period: what the Registry's current
    configuration and the savings of a recommendation are computed from."""

    application_id: str
    team_id: str | None
    model: str  # the model that served most of its requests
    requests: int
    cost_usd: float
    average_prompt_tokens: float
    average_completion_tokens: float
    days: float

    @property
    def daily_cost_usd(self) -> float:
        return self.cost_usd / self.days if self.days else 0.0

    @property
    def requests_per_day(self) -> float:
        return self.requests / self.days if self.days else 0.0
