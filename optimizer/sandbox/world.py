"""The organisation the sandbox plays: teams, applications, how models behave, experiments.

Everything here is fiction chosen to look like a real company's LLM traffic, except the
model prices, which come from the shipped catalog (published list prices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

TEAMS: dict[str, str] = {
    "team-support": "Customer Support",
    "team-knowledge": "Knowledge Management",
    "team-engineering": "Engineering",
    "team-operations": "Operations",
    "team-marketing": "Marketing",
    "team-data": "Data & Analytics",
}

TASK_TYPES = ("classification", "generation", "reasoning", "coding")
COMPLEXITIES = ("simple", "moderate", "complex")
ENVIRONMENTS = ("production", "staging", "development")
ENVIRONMENT_SHARES = (0.92, 0.05, 0.03)
# Mean latent difficulty of a prompt by complexity; a model answers well when its skill exceeds it.
DIFFICULTY_BY_COMPLEXITY = (-0.6, 0.6, 1.7)


@dataclass(frozen=True)
class Application:
    application_id: str
    team_id: str
    traffic_share: float
    model: str
    shadow_model: str | None
    shadow_rate: float
    task_mix: tuple[float, float, float, float]  # over TASK_TYPES
    complexity_mix: tuple[float, float, float]  # over COMPLEXITIES
    prompt_tokens_median: float
    completion_tokens_median: float
    difficulty_shift: float = 0.0


APPLICATIONS: tuple[Application, ...] = (
    Application(
        "support-bot", "team-support", 0.30, "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18",
        0.10, (0.45, 0.55, 0.0, 0.0), (0.65, 0.28, 0.07), 650, 170,
    ),
    Application(
        "doc-qa", "team-knowledge", 0.22, "claude-3-5-sonnet-20241022", "claude-3-5-haiku-20241022",
        0.04, (0.0, 0.7, 0.3, 0.0), (0.3, 0.5, 0.2), 2400, 260,
    ),
    Application(
        "code-assistant", "team-engineering", 0.18, "claude-3-5-sonnet-20241022",
        "claude-3-5-haiku-20241022", 0.08, (0.0, 0.1, 0.2, 0.7), (0.1, 0.35, 0.55), 1500, 420,
        difficulty_shift=0.3,
    ),
    Application(
        "email-triage", "team-operations", 0.15, "gpt-4o-mini-2024-07-18", "gemini-1.5-flash-002",
        0.10, (0.85, 0.15, 0.0, 0.0), (0.85, 0.13, 0.02), 480, 40, difficulty_shift=-0.4,
    ),
    Application(
        "marketing-writer", "team-marketing", 0.10, "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18",
        0.10, (0.0, 1.0, 0.0, 0.0), (0.35, 0.5, 0.15), 380, 520,
    ),
    Application(
        "analytics-agent", "team-data", 0.05, "claude-3-5-sonnet-20241022", "gpt-4o-mini-2024-07-18",
        0.003, (0.0, 0.2, 0.7, 0.1), (0.1, 0.4, 0.5), 1800, 600, difficulty_shift=0.2,
    ),
)


@dataclass(frozen=True)
class PromptRepeats:
    """How an application's prompts repeat exactly: a share of its requests asks one of a pool
    of common prompts (the most popular far more often than the rest: Zipf), the rest are new."""

    common_share: float
    pool_size: int = 1
    zipf_exponent: float = 1.1


# Applications whose requests carry a prompt hash, and how their prompts repeat; the others
# send none. support-bot's customers ask the same questions over and over; doc-qa's questions
# come with their own documents and never repeat.
PROMPT_REPEATS: dict[str, PromptRepeats] = {
    "support-bot": PromptRepeats(common_share=0.35, pool_size=400),
    "doc-qa": PromptRepeats(common_share=0.0),
}
# Share of an application's requests that scheduled jobs submit (task type `offline`): nobody
# waits for their answers. marketing-writer drafts campaign variants overnight.
OFFLINE_TASK = "offline"
OFFLINE_SHARES: dict[str, float] = {"marketing-writer": 0.4}
TASK_LABELS = (*TASK_TYPES, OFFLINE_TASK)  # a request's task type, by number


@dataclass(frozen=True)
class ModelBehaviour:
    """How a model answers in the sandbox: skill drives quality, the rest latency and errors."""

    skill: float
    error_rate: float
    first_token_ms: float
    ms_per_output_token: float
    verbosity: float = 1.0


MODEL_BEHAVIOUR: dict[str, ModelBehaviour] = {
    "gpt-4o-2024-08-06": ModelBehaviour(2.3, 0.004, 420, 11.0),
    "gpt-4o-mini-2024-07-18": ModelBehaviour(1.3, 0.003, 300, 7.0, 0.95),
    "claude-3-5-sonnet-20241022": ModelBehaviour(2.4, 0.006, 560, 13.0, 1.1),
    "claude-3-5-haiku-20241022": ModelBehaviour(1.1, 0.004, 380, 8.0),
    "gemini-1.5-flash-002": ModelBehaviour(1.0, 0.008, 260, 5.0, 0.9),
}


@dataclass(frozen=True)
class ExperimentPlan:
    """An A/B experiment running on part of one application's production traffic."""

    experiment_id: str
    experiment_type: str
    application_id: str
    technique: str
    started_days_before_anchor: int
    coverage: float  # share of the application's production traffic enrolled
    allocation: dict[str, float] = field(default_factory=lambda: {"control": 0.5, "treatment": 0.5})
    cheap_model: str | None = None
    escalation_threshold: float = 0.7
    compression_ratio: float = 0.5
    hypothesis: str = ""


EXPERIMENTS: tuple[ExperimentPlan, ...] = (
    ExperimentPlan(
        "exp-cascade-001", "model_selection", "support-bot", "model_cascade", 14, 0.4,
        cheap_model="gpt-4o-mini-2024-07-18", escalation_threshold=0.7,
        hypothesis="A GPT-4o mini -> GPT-4o cascade keeps quality while cutting cost",
    ),
    ExperimentPlan(
        "exp-compression-001", "prompt_optimization", "doc-qa", "prompt_compression", 10, 0.5,
        compression_ratio=0.5,
        hypothesis="LLMLingua compression at ratio 0.5 maintains quality while reducing costs",
    ),
)


class Incident(BaseModel):
    """A disturbance in [start, end): visible in the traffic and reported by Sentinel.

    Factors multiply the affected requests' latency, error rate and prompt length; an
    incident names a model, an application, or both.
    """

    model_config = ConfigDict(frozen=True)

    incident_id: str
    anomaly_type: str
    category: str
    severity: float = Field(ge=0, le=1)
    start: AwareDatetime
    end: AwareDatetime
    model: str | None = None
    application_id: str | None = None
    latency_factor: float = Field(default=1.0, gt=0)
    error_factor: float = Field(default=1.0, ge=0)
    prompt_factor: float = Field(default=1.0, gt=0)

    @field_validator("start", "end")
    @classmethod
    def _in_utc(cls, moment: datetime) -> datetime:
        """Traffic is generated by UTC day: an incident in another offset must touch the same days."""
        return moment.astimezone(UTC)

    @model_validator(mode="after")
    def _names_what_the_world_has(self) -> Incident:
        if self.model is not None and self.model not in MODEL_BEHAVIOUR:
            raise ValueError(f"unknown model {self.model!r}")
        if self.application_id is not None and self.application_id not in {a.application_id for a in APPLICATIONS}:
            raise ValueError(f"unknown application {self.application_id!r}")
        return self


def seeded_incidents(anchor: date) -> list[Incident]:
    """The incidents every sandbox starts with, placed relative to its anchor day."""

    def at(days_before: int, hour: int) -> datetime:
        day = anchor - timedelta(days=days_before)
        return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)

    return [
        Incident(
            incident_id="anom-latency-sonnet", anomaly_type="latency_spike", category="performance",
            severity=0.92, start=at(2, 13), end=at(2, 16), model="claude-3-5-sonnet-20241022",
            latency_factor=3.2, error_factor=4.0,
        ),
        Incident(
            incident_id="anom-cost-marketing", anomaly_type="cost_spike", category="cost", severity=0.74,
            start=at(4, 9), end=at(4, 18), application_id="marketing-writer", prompt_factor=3.0,
        ),
    ]


# Monthly budget of each team as a multiple of what its traffic spends in a month.
BUDGET_FACTORS: dict[str, float] = {
    "team-support": 1.5,
    "team-knowledge": 1.6,
    "team-engineering": 1.6,
    "team-operations": 2.0,
    "team-marketing": 0.95,
    "team-data": 1.5,
}
