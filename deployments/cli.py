"""The `auto-optimizer` command (docs/cli.md): an entry point that reads the settings once and
calls the application layer (`optimizer.pipeline`) or runs a flow with them.

With `--json` exactly one JSON document goes to stdout; progress and logs go to stderr.
Exit status: 0 success, 2 bad usage or bad input, 1 any other failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployments import cli_text
from deployments.cli_api import add_api_command, cmd_api_serve
from deployments.cli_limits import add_latency_limits, latency_limit_ms
from optimizer import defaults, embedded_prefect
from optimizer.errors import BadInputError, OptimizerError
from optimizer.redaction import redact, redacted_logging
from optimizer.sandbox.worlds import WORLDS

if TYPE_CHECKING:  # building the parser (and `--help`) loads neither pydantic nor the settings
    from pydantic import BaseModel

    from optimizer.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _emit(result: BaseModel, args: argparse.Namespace, human: Callable[[Any], str]) -> None:
    """The result on stdout, as JSON with `--json`, with no secret of the settings in it."""
    text = result.model_dump_json() if args.json else human(result)
    sys.stdout.write(redact(text, args.settings.secret_values()) + "\n")


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _treatment_percent(text: str) -> float:
    value = float(text)
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage between 0 and 100 (the control takes the rest)")
    return value


def _utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text} needs a UTC offset, e.g. 2026-11-25T00:00:00Z")
    return moment


def cmd_demo(args: argparse.Namespace) -> int:
    from deployments.demo import run_demo

    summary = run_demo(
        workdir=args.workdir,
        seed=args.seed,
        requests_per_day=args.requests_per_day,
        backfill_days=args.days,
        api_style=args.api_style,
        settings=args.settings,
    )
    _emit(summary, args, cli_text.nightly_text)
    return EXIT_OK


def cmd_run_nightly(args: argparse.Namespace) -> int:
    from flows.nightly import nightly_optimization
    from flows.runners import dask_runner
    from optimizer.pipeline.runtime import configured

    flow = nightly_optimization
    if args.dask or args.dask_address:
        flow = flow.with_options(task_runner=dask_runner(args.dask_address, args.dask_workers))
    # The limit rides on the settings, which the flow reads when its own parameter is unset.
    settings = args.settings.model_copy(update={"max_latency_increase_ms": latency_limit_ms(args, args.settings)})
    with configured(settings):
        summary = flow(
            window_end=args.window_end, backfill_days=args.backfill_days, lookback_hours=args.lookback_hours,
            analysis_days=args.analysis_days, max_quality_drop=args.max_quality_drop, alpha=args.alpha,
            max_p95_latency_increase_pct=args.max_p95_latency_increase_pct,
            propose_changes=not args.no_proposals, experiment_percent=args.experiment_percent,
            max_experiment_days=args.max_experiment_days,
        )
    _emit(summary, args, cli_text.nightly_text)
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from deployments.simulate import simulate

    result = simulate(days=args.days, world=args.world, approve=args.approve, seed=args.seed,
                      requests_per_day=args.requests_per_day, workdir=args.workdir, settings=args.settings,
                      experiment_percent=args.experiment_percent, max_experiment_days=args.max_experiment_days,
                      progress=lambda line: print(line, file=sys.stderr, flush=True))
    _emit(result, args, cli_text.simulation_text)
    return EXIT_OK


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from optimizer.sandbox import FaultSettings, SandboxConfig, serve
    from optimizer.settings import http_url

    config = SandboxConfig(
        seed=args.seed,
        token=None if args.no_auth else args.token,
        events_token=args.events_token,
        requests_per_day=args.requests_per_day,
        malformed_share=args.malformed_share,
        now=args.now,
        api_style=args.api_style,
        world=args.world,
        faults=FaultSettings(
            rate_limit_share=args.rate_limit_share,
            server_error_share=args.server_error_share,
            slow_share=args.slow_share,
            slow_seconds=args.slow_seconds,
            seed=args.seed,
        ),
    )
    settings = args.settings
    host = args.host or settings.sandbox_host
    port = settings.sandbox_port if args.port is None else args.port
    sys.stderr.write(
        f"platform sandbox on {http_url(host, port)} "
        f"(services under /<observatory|governance|registry|orchestrator|sentinel>/api/v1)\n"
    )
    serve(config, host, port)
    return EXIT_OK


def cmd_webhook_serve(args: argparse.Namespace) -> int:
    from optimizer.processes import serve_until_stopped
    from optimizer.settings import http_url
    from optimizer.webhook.app import ReceiverConfig, create_receiver
    from optimizer.webhook.deadlines import head_deadline_protocol
    from optimizer.webhook.inbox import Inbox
    from optimizer.webhook.starter import PrefectStarter

    settings = args.settings
    token = settings.webhook_token.get_secret_value() if settings.webhook_token else None
    if token is None and not args.no_auth:
        raise BadInputError("set AUTO_OPTIMIZER_WEBHOOK_TOKEN, or pass --no-auth to accept events without a token")
    secret = settings.sentinel_webhook_secret.get_secret_value() if settings.sentinel_webhook_secret else None
    config = ReceiverConfig(token=None if args.no_auth else token, max_body_bytes=settings.webhook_max_bytes,
                            sentinel_secret=secret, read_timeout_s=settings.webhook_read_timeout_s,
                            start_concurrency=settings.webhook_start_concurrency)
    app = create_receiver(config, Inbox(settings.webhook_inbox), PrefectStarter())
    host = args.host or settings.webhook_host
    port = settings.webhook_port if args.port is None else args.port
    sys.stderr.write(f"webhook receiver on {http_url(host, port)}/events (inbox {settings.webhook_inbox})\n")
    # Returns on SIGTERM or Ctrl-C, so the atexit handler that stops Prefect's temporary API
    # (started when no PREFECT_API_URL is set) runs.
    serve_until_stopped(app, host, port, http=head_deadline_protocol(config.read_timeout_s))
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    from optimizer.pipeline.files import ingest_otlp, ingest_parquet
    from optimizer.pipeline.runtime import Runtime

    settings = args.settings
    if args.warehouse:
        settings = settings.model_copy(update={"warehouse": args.warehouse})
    ingest = ingest_otlp if args.format == "otlp" else ingest_parquet
    summary = ingest(Runtime(settings), Path(args.path))
    _emit(summary, args, cli_text.ingest_text)
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    from optimizer.pipeline import analyze

    path = Path(args.input)
    if args.analysis == "cascade":
        report: BaseModel = analyze.analyze_cascade(path, max_quality_drop=args.max_quality_drop, alpha=args.alpha,
                                                    max_p95_latency_increase_pct=args.max_p95_latency_increase_pct,
                                                    max_latency_increase_ms=latency_limit_ms(args, args.settings))
        _emit(report, args, cli_text.cascade_text)
    elif args.analysis == "compression":
        report = analyze.analyze_compression(path, catalog=args.settings.model_catalog, alpha=args.alpha,
                                             max_quality_drop=args.max_quality_drop,
                                             max_latency_increase_ms=latency_limit_ms(args, args.settings))
        _emit(report, args, cli_text.compression_text)
    else:
        allocation = analyze.parse_allocation(args.allocation) if args.allocation else None
        report = analyze.analyze_experiments(
            path, experiment_id=args.experiment_id, allocation=allocation, alpha=args.alpha
        )
        _emit(report, args, cli_text.experiment_text)
    return EXIT_OK


def cmd_sandbox_export(args: argparse.Namespace) -> int:
    from optimizer.sandbox import SandboxConfig
    from optimizer.sandbox.export import export_requests

    rows = export_requests(
        Path(args.path), days=args.days, end=args.end.date() if args.end else datetime.now(UTC).date(),
        config=SandboxConfig(seed=args.seed, requests_per_day=args.requests_per_day),
    )
    sys.stderr.write(f"wrote {rows:,} request records to {args.path}\n")
    return EXIT_OK


# Commands that run flows or start flow runs: with no PREFECT_API_URL they need Prefect's
# embedded API, whose first start on a new PREFECT_HOME is slow.
USES_PREFECT = frozenset({cmd_demo, cmd_run_nightly, cmd_webhook_serve, cmd_simulate, cmd_api_serve})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auto-optimizer",
        description="Find cheaper LLM setups, prove them with statistics, roll them out after approval.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the nightly optimization against the bundled sandbox")
    demo.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    demo.add_argument("--workdir", type=Path, help="where the demo keeps its warehouse and reports (default: demo/ in the data folder)")
    demo.add_argument("--days", type=int, default=7, help="days of traffic to backfill (default 7)")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--requests-per-day", type=int, default=12_000)
    demo.add_argument("--api-style", choices=["spec", "upstream"], default="spec",
                      help="the APIs the sandbox serves and the optimizer speaks (default spec)")
    demo.set_defaults(handler=cmd_demo)

    sim = commands.add_parser("simulate", help="the closed loop night after night on the sandbox, scored against its truth")
    sim.add_argument("--days", type=int, default=30, help="nights to simulate (default 30)")
    sim.add_argument("--world", choices=sorted(WORLDS), default="default", help="the world the sandbox plays")
    sim.add_argument("--approve", choices=["all", "none"], default="all",
                     help="what the scripted approver answers every request (default all)")
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument("--requests-per-day", type=int, default=12_000)
    sim.add_argument("--workdir", type=Path,
                     help="where the simulation keeps its warehouse and reports (default: simulate/<world>/ in the data folder)")
    sim.add_argument("--experiment-percent", type=_treatment_percent, default=10.0,
                     help="an experiment's treatment share of its application's traffic (default 10)")
    sim.add_argument("--max-experiment-days", type=float, default=14.0,
                     help="an experiment undecided after this many days is stopped (default 14)")
    sim.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    sim.set_defaults(handler=cmd_simulate)

    run = commands.add_parser("run", help="run a flow against the configured platform")
    run_flows = run.add_subparsers(dest="flow", required=True, metavar="FLOW")
    nightly = run_flows.add_parser("nightly", help="extract, load and analyse up to a window end")
    nightly.add_argument("--json", action="store_true")
    nightly.add_argument("--window-end", type=_utc, help="end of the last window (default today 00:00 UTC)")
    nightly.add_argument("--backfill-days", type=int, default=7)
    nightly.add_argument("--lookback-hours", type=int, default=6)
    nightly.add_argument("--analysis-days", type=int, default=14, help="days the analyses look back over")
    nightly.add_argument("--max-quality-drop", type=float, default=0.02)
    add_latency_limits(nightly, p95=True)
    nightly.add_argument("--alpha", type=float, default=0.05)
    nightly.add_argument("--dask", action="store_true",
                         help="run extraction and analyses on a local Dask cluster instead of threads")
    nightly.add_argument("--dask-address", metavar="ADDRESS",
                         help="run them on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786)")
    nightly.add_argument("--dask-workers", type=int, default=2, metavar="N",
                         help="worker processes of the local Dask cluster (default 2)")
    nightly.add_argument("--no-proposals", action="store_true",
                         help="do not ask for approval of new findings tonight (live experiments are still decided)")
    nightly.add_argument("--experiment-percent", type=_treatment_percent, default=10.0,
                         help="an approved change's experiment's treatment share of its application's traffic")
    nightly.add_argument("--max-experiment-days", type=float, default=14.0,
                         help="an experiment undecided after this many days is stopped as inconclusive")
    nightly.set_defaults(handler=cmd_run_nightly)

    sandbox = commands.add_parser("sandbox", help="the local stand-in for the platform services")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    serve = sandbox_commands.add_parser("serve", help="serve the five platform APIs over HTTP")
    serve.add_argument("--host", help=f"default {defaults.ENV_PREFIX}SANDBOX_HOST ({defaults.LOOPBACK})")
    serve.add_argument("--port", type=int, help=f"default {defaults.ENV_PREFIX}SANDBOX_PORT ({defaults.SANDBOX_DEFAULT_PORT})")
    serve.add_argument("--seed", type=int, default=42)
    serve.add_argument("--token", default=defaults.SANDBOX_DEFAULT_TOKEN, help="bearer token clients must send")
    serve.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    serve.add_argument("--events-token", help="bearer token the event sink (/events) requires (default: none)")
    serve.add_argument("--requests-per-day", type=int, default=12_000)
    serve.add_argument("--malformed-share", type=_share, default=0.002)
    serve.add_argument("--now", type=_utc, help="freeze the sandbox clock at this time")
    serve.add_argument("--rate-limit-share", type=_share, default=0.0, help="share of requests answered 429")
    serve.add_argument("--server-error-share", type=_share, default=0.0, help="share answered 5xx")
    serve.add_argument("--slow-share", type=_share, default=0.0, help="share answered slowly")
    serve.add_argument("--slow-seconds", type=float, default=2.0)
    serve.add_argument("--world", choices=sorted(WORLDS), default="default",
                       help="which world it plays: how much traffic, and how its models drift (default: default)")
    serve.add_argument("--api-style", choices=["both", "spec", "upstream"], default="both",
                       help="serve the specification's APIs, the upstream services', or both (default)")
    serve.set_defaults(handler=cmd_sandbox_serve)

    export = sandbox_commands.add_parser("export", help="write generated request records to a Parquet file")
    export.add_argument("path", help="Parquet file to write")
    export.add_argument("--days", type=int, default=14, help="complete days before --end (default 14)")
    export.add_argument("--end", type=_utc, help="day after the last exported day (default today)")
    export.add_argument("--seed", type=int, default=42)
    export.add_argument("--requests-per-day", type=int, default=12_000)
    export.set_defaults(handler=cmd_sandbox_export)

    webhook = commands.add_parser("webhook", help="the receiver for Sentinel and Governance CloudEvents")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")
    receive = webhook_commands.add_parser("serve", help="accept CloudEvents on POST /events and start response flows")
    receive.add_argument("--host", help=f"default {defaults.ENV_PREFIX}WEBHOOK_HOST ({defaults.LOOPBACK})")
    receive.add_argument("--port", type=int, help=f"default {defaults.ENV_PREFIX}WEBHOOK_PORT ({defaults.WEBHOOK_DEFAULT_PORT})")
    receive.add_argument("--no-auth", action="store_true", help="accept events without a bearer token (local use only)")
    receive.set_defaults(handler=cmd_webhook_serve)
    add_api_command(commands)

    analyze = commands.add_parser("analyze", help="cascade, compression or experiment statistics on Parquet records")
    analyses = analyze.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    for name, what in (
        ("cascade", "can a cheaper model answer first and escalate below a confidence threshold?"),
        ("compression", "is compressed traffic non-inferior on quality, and what does it save?"),
        ("experiment", "A/B experiments: every variant against control"),
    ):
        command = analyses.add_parser(name, help=what, description=what)
        command.add_argument("--input", required=True, help="Parquet file or folder of request records")
        command.add_argument("--alpha", type=float, default=0.05)
        command.add_argument("--json", action="store_true")
        if name == "experiment":
            command.add_argument("--experiment-id", help="analyse only this experiment")
            command.add_argument("--allocation", help="planned shares, e.g. control=0.5,treatment=0.5")
        else:
            command.add_argument("--max-quality-drop", type=float, default=0.02,
                                 help="absolute quality loss tolerated, on the 0-1 scale (default 0.02)")
            add_latency_limits(command, p95=name == "cascade")
        command.set_defaults(handler=cmd_analyze)

    ingest = commands.add_parser("ingest", help="load request records from files into the warehouse")
    formats = ingest.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name, what in (("otlp", "an OTLP/JSON trace file"), ("parquet", "a Parquet file or a folder of them")):
        fmt = formats.add_parser(name, help=f"load {what}")
        fmt.add_argument("path", help=what)
        fmt.add_argument("--warehouse", type=Path, help="DuckDB file (default AUTO_OPTIMIZER_WAREHOUSE)")
        fmt.add_argument("--json", action="store_true")
        fmt.set_defaults(handler=cmd_ingest)
    return parser


def _settings_from_environment() -> Settings:
    from pydantic import ValidationError

    from optimizer.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{defaults.ENV_PREFIX}{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise BadInputError(f"bad setting: {problems}") from None


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run one command with `settings` (by default read from the environment, once)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    secrets: list[str] = []
    try:
        args.settings = settings or _settings_from_environment()
        secrets = args.settings.secret_values()
        if args.handler in USES_PREFECT:
            embedded_prefect.prepare()
        with redacted_logging(secrets):  # whatever logs it, no credential reaches stderr or Prefect
            return int(args.handler(args))
    except BadInputError as exc:
        sys.stderr.write(f"auto-optimizer: {redact(str(exc), secrets)}\n")
        return EXIT_BAD_INPUT
    except OptimizerError as exc:
        sys.stderr.write(f"auto-optimizer: {redact(str(exc), secrets)}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
