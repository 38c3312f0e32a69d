"""`auto-optimizer api serve` (docs/cli.md, docs/api.md): the optimizer's own API in the
foreground until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from optimizer.defaults import API_SERVER_DEFAULT_PORT, ENV_PREFIX, LOOPBACK
from optimizer.errors import BadInputError


def cmd_api_serve(args: argparse.Namespace) -> int:
    from deployments.api import create_api
    from optimizer.pipeline.runtime import Runtime
    from optimizer.processes import serve_until_stopped
    from optimizer.settings import http_url
    from optimizer.webhook.starter import PrefectStarter

    settings = args.settings
    host = args.host or settings.api_server_host
    port = settings.api_server_port if args.port is None else args.port
    if args.host or args.port is not None:  # registered where it listens, unless told otherwise
        settings = settings.model_copy(update={"api_server_host": host, "api_server_port": port})
    token = settings.api_server_token.get_secret_value() if settings.api_server_token else None
    if token is None and not args.no_auth:
        raise BadInputError("set AUTO_OPTIMIZER_API_SERVER_TOKEN, or pass --no-auth to serve without a token")
    app = create_api(Runtime(settings), token=None if args.no_auth else token,
                     starter=PrefectStarter(tags=["api-request"]), register=not args.no_register)
    sys.stderr.write(f"optimizer API on {http_url(host, port)}/api/v1 (OpenAPI at /openapi.json; "
                     f"results from {settings.api_snapshot})\n")
    # Returns on SIGTERM or Ctrl-C, so the atexit handler that stops Prefect's temporary API
    # (started when no PREFECT_API_URL is set) runs.
    serve_until_stopped(app, host, port)
    return 0


def add_api_command(commands: Any) -> None:
    """`api serve` on the CLI's subcommands."""
    api = commands.add_parser("api", help="the optimizer's own API: strategies, experiments, model selection")
    actions = api.add_subparsers(dest="api_command", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="serve the API until SIGTERM or Ctrl-C")
    serve.add_argument("--host", help=f"default {ENV_PREFIX}API_SERVER_HOST ({LOOPBACK})")
    serve.add_argument("--port", type=int, help=f"default {ENV_PREFIX}API_SERVER_PORT ({API_SERVER_DEFAULT_PORT})")
    serve.add_argument("--no-auth", action="store_true", help="serve without a bearer token (local use only)")
    serve.add_argument("--no-register", action="store_true",
                       help="do not register at the Orchestrator (POST /optimization/strategies) on start")
    serve.set_defaults(handler=cmd_api_serve)
