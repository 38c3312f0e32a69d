"""Configuration from `AUTO_OPTIMIZER_*` environment variables, in one object.

Every default points at the embedded setup: the platform sandbox on its default loopback
port and a DuckDB file under the data folder (`Settings.data_dir`), so a fresh checkout or
a fresh install runs without any configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from optimizer.defaults import API_SERVER_DEFAULT_PORT as API_SERVER_DEFAULT_PORT
from optimizer.defaults import ENV_PREFIX as ENV_PREFIX
from optimizer.defaults import LOOPBACK as LOOPBACK
from optimizer.defaults import MAX_LATENCY_INCREASE_MS
from optimizer.defaults import SANDBOX_DEFAULT_PORT as SANDBOX_DEFAULT_PORT
from optimizer.defaults import SANDBOX_DEFAULT_TOKEN as SANDBOX_DEFAULT_TOKEN
from optimizer.defaults import WEBHOOK_DEFAULT_PORT as WEBHOOK_DEFAULT_PORT
from optimizer.redaction import redact_url, url_credentials
from optimizer.schemas.records import DEFAULT_BOUNDS, RecordBounds

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
# Installed from a wheel, the package carries the shipped catalog in optimizer/data/ (see
# setup.py); run from a checkout, the catalog is in the checkout's top-level data/ folder.
INSTALLED = (PACKAGE_DIR / "data" / "model_catalog.json").is_file()
MODEL_CATALOG = (PACKAGE_DIR if INSTALLED else PROJECT_ROOT) / "data" / "model_catalog.json"
# The default data folder: a checkout's own data/ (ignored by git), or data/ in the working
# directory of an installed tool, since site-packages is no place to write.
DATA_DIR = Path.cwd() / "data" if INSTALLED else PROJECT_ROOT / "data"
PREFECT_DEFAULT_PORT = 4200
# The webhook receiver's defaults, here once: its settings below and its own configuration
# (for a receiver built without settings, as the tests build it) both read them.
WEBHOOK_DEFAULT_MAX_BYTES = 1024 * 1024
WEBHOOK_DEFAULT_READ_TIMEOUT_S = 10.0
WEBHOOK_DEFAULT_START_CONCURRENCY = 50
SERVICES = ("observatory", "governance", "registry", "orchestrator", "sentinel")


def sandbox_endpoints(base_url: str) -> dict[str, str]:
    """Every URL setting, by name, for a sandbox served at `base_url`: the one place that
    knows where the sandbox puts each service."""
    base = base_url.rstrip("/")
    return {f"{service}_url": f"{base}/{service}/api/v1" for service in SERVICES} | {
        "events_url": f"{base}/events", "policy_engine_url": f"{base}/policy-engine/api",
    }


def http_url(host: str, port: int) -> str:
    """The base URL of a service listening on `host`:`port` (IPv6 hosts in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


_DEFAULT_ENDPOINTS = sandbox_endpoints(http_url(LOOPBACK, SANDBOX_DEFAULT_PORT))


ApiStyle = Literal["spec", "upstream", "auto"]


class Settings(BaseSettings):
    """Where the platform lives, how to authenticate, and where local state goes.

    Local state (warehouse, staging files, reports, the webhook inbox, the demo's own
    folder) lives under `data_dir` (`AUTO_OPTIMIZER_DATA_DIR`): by default the checkout's
    `data/` when run from a checkout, else `./data` in the directory the command starts in.
    Relative paths of those settings are taken under `data_dir`; absolute ones stay put.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # Where the bundled platform sandbox listens (`sandbox serve`, `make serve`). Every URL
    # setting below that is not set defaults to this address, so moving the sandbox moves
    # them; set a URL to use a real service for it instead. `make serve` starts the sandbox
    # only while some URL setting still points at this address.
    sandbox_host: str = LOOPBACK
    sandbox_port: int = Field(default=SANDBOX_DEFAULT_PORT, ge=1, le=65535)

    observatory_url: str = _DEFAULT_ENDPOINTS["observatory_url"]
    governance_url: str = _DEFAULT_ENDPOINTS["governance_url"]
    registry_url: str = _DEFAULT_ENDPOINTS["registry_url"]
    orchestrator_url: str = _DEFAULT_ENDPOINTS["orchestrator_url"]
    sentinel_url: str = _DEFAULT_ENDPOINTS["sentinel_url"]
    api_token: SecretStr = SecretStr(SANDBOX_DEFAULT_TOKEN)
    events_url: str = _DEFAULT_ENDPOINTS["events_url"]
    # The event sink's own bearer token: the sink is not a platform service and never gets
    # `api_token`. Unset, events go without one (a credential in `events_url` still applies).
    events_token: SecretStr | None = None

    # Which API each service speaks: the platform specification's (`spec`), the upstream
    # services' own (`upstream`: Observatory's analytics API, the policy engine, Sentinel
    # without a report endpoint), or `auto`: the spec's until the service says it has no
    # such route. The policy engine is its own service, at `policy_engine_url`.
    observatory_api_style: ApiStyle = "spec"
    policy_api_style: ApiStyle = "spec"
    sentinel_api_style: ApiStyle = "spec"
    policy_engine_url: str = _DEFAULT_ENDPOINTS["policy_engine_url"]
    # Shared secret of Sentinel's signed webhooks (HMAC-SHA256 in X-Sentinel-Signature);
    # unset, the receiver refuses them.
    sentinel_webhook_secret: SecretStr | None = None

    # The environment whose traffic the optimizer changes: what Governance is told in every
    # policy evaluation (`context.environment`: production, staging or development).
    environment: str = "production"

    # Who may approve a rollout: comma-separated names, as typed in the approval form.
    approvers: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # The webhook receiver: its bearer token (required unless disabled for local use),
    # where it records accepted events, the largest body it reads, how long a client may
    # take to send a request's headers and then its body, and how many flow runs it starts
    # at once.
    webhook_token: SecretStr | None = None
    webhook_inbox: Path = Path("webhook", "inbox.sqlite")
    webhook_max_bytes: int = Field(default=WEBHOOK_DEFAULT_MAX_BYTES, ge=1024)
    webhook_read_timeout_s: float = Field(default=WEBHOOK_DEFAULT_READ_TIMEOUT_S, gt=0)
    webhook_start_concurrency: int = Field(default=WEBHOOK_DEFAULT_START_CONCURRENCY, ge=1)
    # Where it listens (`webhook serve`, `make serve`), and whether `make serve` starts it
    # (false when a receiver of your own takes the platform's events).
    webhook_host: str = LOOPBACK
    webhook_port: int = Field(default=WEBHOOK_DEFAULT_PORT, ge=1, le=65535)
    serve_receiver: bool = True

    # The optimizer's own API (`api serve`, docs/api.md): its bearer token (required unless
    # disabled for local use), where it listens, the address it registers at the Orchestrator
    # (default: where it listens, under /api/v1), and the file the nightly run publishes its
    # results to for it.
    api_server_token: SecretStr | None = None
    api_server_host: str = LOOPBACK
    api_server_port: int = Field(default=API_SERVER_DEFAULT_PORT, ge=1, le=65535)
    api_server_url: str | None = None
    api_snapshot: Path = Path("api", "latest-night.json")
    serve_api: bool = True  # false: `make serve` starts no optimizer API

    # Where `make serve` starts its Prefect server with the UI; with PREFECT_API_URL set it
    # starts none and uses that API instead.
    prefect_host: str = LOOPBACK
    prefect_port: int = Field(default=PREFECT_DEFAULT_PORT, ge=1, le=65535)

    data_dir: Path = DATA_DIR
    warehouse: Path = Path("warehouse.duckdb")
    staging_dir: Path = Path("staging")
    reports_dir: Path = Path("reports")
    model_catalog: Path = MODEL_CATALOG
    # The optimizer's own spans and metrics as JSON lines, when set (OTLP instead when
    # OTEL_EXPORTER_OTLP_ENDPOINT is set, by OpenTelemetry's own convention).
    telemetry_file: Path | None = None

    http_timeout_s: float = Field(default=30.0, gt=0)
    http_max_attempts: int = Field(default=6, ge=1)
    http_backoff_s: float = Field(default=0.5, ge=0)
    http_max_backoff_s: float = Field(default=30.0, ge=0)
    page_size: int = Field(default=5000, ge=1, le=10000)

    # The request timestamps a load accepts, [oldest, newest): outside is a broken clock,
    # and the row is quarantined with its reason.
    oldest_request_ts: AwareDatetime = DEFAULT_BOUNDS.oldest_ts
    newest_request_ts: AwareDatetime = DEFAULT_BOUNDS.newest_ts

    # Where the nightly flow's fanned-out tasks (extraction windows, per-application
    # analyses) run: threads of the flow's process, or a Dask cluster. With Dask and no
    # address, a local cluster of `dask_workers` processes starts with the flow run.
    task_runner: Literal["threads", "dask"] = "threads"
    dask_address: str | None = None
    dask_workers: int = Field(default=2, ge=1)

    # How much an adopted cascade or compression may raise a request's mean latency, in ms
    # (the specification's `max_latency_increase_ms`); `none` for no limit.
    max_latency_increase_ms: float | None = Field(default=MAX_LATENCY_INCREASE_MS, ge=0)

    @field_validator("max_latency_increase_ms", mode="before")
    @classmethod
    def _no_limit(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value

    @field_validator("approvers", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _urls_follow_the_sandbox(self) -> Settings:
        """URL settings left unset point at the sandbox wherever its host and port put it."""
        for name, url in sandbox_endpoints(self.sandbox_url).items():
            if name not in self.model_fields_set:
                self.__dict__[name] = url  # a default, not a setting: stays out of model_fields_set
        return self

    @model_validator(mode="after")
    def _local_state_under_data_dir(self) -> Settings:
        for name in ("webhook_inbox", "warehouse", "staging_dir", "reports_dir", "api_snapshot"):
            self.__dict__[name] = self.data_dir / getattr(self, name)  # leaves model_fields_set as it was
        return self

    @model_validator(mode="after")
    def _plausible_range(self) -> Settings:
        if self.oldest_request_ts >= self.newest_request_ts:
            raise ValueError("oldest_request_ts must be before newest_request_ts")
        return self

    @property
    def record_bounds(self) -> RecordBounds:
        return RecordBounds(oldest_ts=self.oldest_request_ts, newest_ts=self.newest_request_ts)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """URL settings shown without the credentials they may carry (tokens are SecretStr)."""
        urls = {*sandbox_endpoints(""), "dask_address"}
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in urls and isinstance(value, str) else value

    def secret_values(self) -> list[str]:
        """Every secret value these settings hold (tokens, and credentials inside URLs): what
        text must not contain once it is printed, logged, reported or stored."""
        tokens = (self.api_token, self.events_token, self.webhook_token, self.sentinel_webhook_secret,
                  self.api_server_token)
        urls = [*self.service_urls().values(), self.events_url, self.policy_engine_url, self.dask_address or ""]
        return sorted({token.get_secret_value() for token in tokens if token}
                      | {value for url in urls for value in url_credentials(url)})

    @property
    def sandbox_url(self) -> str:
        return http_url(self.sandbox_host, self.sandbox_port)

    @property
    def webhook_url(self) -> str:
        return http_url(self.webhook_host, self.webhook_port)

    @property
    def api_server_address(self) -> str:
        return http_url(self.api_server_host, self.api_server_port)

    @property
    def api_base_url(self) -> str:
        """The optimizer API's root as others reach it (what it registers at the Orchestrator)."""
        return (self.api_server_url or f"{self.api_server_address}/api/v1").rstrip("/")

    def uses_sandbox(self) -> bool:
        """Whether any URL setting points at the sandbox's address: `make serve` starts it then."""
        prefix = self.sandbox_url + "/"
        return any(getattr(self, name).startswith(prefix) for name in sandbox_endpoints(self.sandbox_url))

    def service_urls(self) -> dict[str, str]:
        return {
            "observatory": self.observatory_url,
            "governance": self.governance_url,
            "registry": self.registry_url,
            "orchestrator": self.orchestrator_url,
            "sentinel": self.sentinel_url,
        }

    def pointing_at_sandbox(self, base_url: str) -> Settings:
        """A copy whose five service URLs point at a sandbox served at `base_url`."""
        return self.model_copy(update=sandbox_endpoints(base_url))
