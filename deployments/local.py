"""`make serve`: everything on one machine, for a person who wants the UI.

Starts each bundled service unless it is replaced, then the deployments:
  Prefect server with the UI  on AUTO_OPTIMIZER_PREFECT_HOST:AUTO_OPTIMIZER_PREFECT_PORT
                              (127.0.0.1:4200); not started when PREFECT_API_URL names the
                              Prefect API to use instead
  platform sandbox            on AUTO_OPTIMIZER_SANDBOX_HOST:AUTO_OPTIMIZER_SANDBOX_PORT
                              (127.0.0.1:8700); not started once no AUTO_OPTIMIZER_*_URL points
                              there (the URLs follow the sandbox's address unless set one by one)
  webhook receiver            on AUTO_OPTIMIZER_WEBHOOK_HOST:AUTO_OPTIMIZER_WEBHOOK_PORT
                              (127.0.0.1:8710); not started with AUTO_OPTIMIZER_SERVE_RECEIVER=false
  optimizer API               on AUTO_OPTIMIZER_API_SERVER_HOST:AUTO_OPTIMIZER_API_SERVER_PORT
                              (127.0.0.1:8720); not started with AUTO_OPTIMIZER_SERVE_API=false
  deployments                 nightly (02:00 UTC), rollout, and the event-triggered ones:
                              anomaly-response, budget-response, policy-violation-response,
                              anomaly-resolved, model-update-check

Ctrl-C or SIGTERM stops them all, newest first, within about ten seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deployments.serve import RUNNER
from optimizer import embedded_prefect
from optimizer.errors import OptimizerError
from optimizer.processes import ChildProcesses, stop_on_signals, wait_until_answers
from optimizer.redaction import redact_url
from optimizer.settings import Settings, http_url

# The Prefect server's database is migrated before it starts (embedded_prefect.prepare), so
# this is only its start, with room for a busy machine.
PREFECT_START_TIMEOUT_S = 120


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    stop_on_signals()
    settings = Settings()
    # Prefect reads its settings (and profiles) from PREFECT_HOME when first imported.
    os.environ.setdefault("PREFECT_HOME", str(settings.data_dir / "prefect"))
    from prefect.settings import get_current_settings

    prefect = get_current_settings()
    bundled_prefect = not prefect.api.url
    api = prefect.api.url or f"{http_url(settings.prefect_host, settings.prefect_port)}/api"
    bin_dir = Path(sys.executable).parent
    optimizer = str(bin_dir / "auto-optimizer")
    try:
        # A new PREFECT_HOME's database is created and migrated first, saying so, rather than
        # by the server's first start in silence; Prefect's embedded defaults go to the children.
        embedded_prefect.prepare()
        env = {
            **os.environ,
            "PREFECT_API_URL": api,
            "AUTO_OPTIMIZER_APPROVERS": os.environ.get("AUTO_OPTIMIZER_APPROVERS", os.environ.get("USER", "admin")),
        }
        with ChildProcesses(env) as children:
            if bundled_prefect:
                children.start(
                    "Prefect server",
                    [str(bin_dir / "prefect"), "server", "start", "--host", settings.prefect_host,
                     "--port", str(settings.prefect_port)],
                    ready_url=f"{api}/health", ready_timeout_s=PREFECT_START_TIMEOUT_S,
                )
            else:
                wait_until_answers(f"{api}/health", 30, name="the Prefect API in PREFECT_API_URL")
            if settings.uses_sandbox():
                children.start("sandbox", [optimizer, "sandbox", "serve"],
                               ready_url=f"{settings.sandbox_url}/_sandbox/health")
            if settings.serve_receiver:
                no_auth = [] if settings.webhook_token else ["--no-auth"]
                children.start("webhook receiver", [optimizer, "webhook", "serve", *no_auth],
                               ready_url=f"{settings.webhook_url}/health")
            if settings.serve_api:
                no_token = [] if settings.api_server_token else ["--no-auth"]
                children.start("optimizer API", [optimizer, "api", "serve", *no_token],
                               ready_url=f"{settings.api_server_address}/health")
            children.start("deployments", RUNNER)
            print(
                f"Prefect UI: {redact_url(api.removesuffix('/api'))} (approve rollouts under Flow Runs, state Paused)\n"
                + (f"Platform sandbox: {settings.sandbox_url}\n" if settings.uses_sandbox() else "")
                + (f"Webhook receiver: {settings.webhook_url}/events\n" if settings.serve_receiver else "")
                + (f"Optimizer API: {settings.api_server_address}/api/v1 (OpenAPI at /openapi.json)\n"
                   if settings.serve_api else "")
                + f"Approvers: {env['AUTO_OPTIMIZER_APPROVERS']}\n"
                "Run the nightly optimization now: prefect deployment run nightly-optimization/nightly",
                flush=True,
            )
            stopped = children.wait_for_first_exit()
            print(f"make serve: the {stopped} stopped; stopping the rest", file=sys.stderr, flush=True)
            return 1
    except OptimizerError as exc:
        print(f"make serve: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
