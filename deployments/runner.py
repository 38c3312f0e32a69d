"""Prefect's runner for every deployment, in this process: the nightly one on its cron
schedule, the rollout and the response flows on demand (the webhook receiver starts the
latter). Each flow run it starts is a child process in its process group.

Start it through `python -m deployments.serve` (or `make serve`), which runs it in a process
group of its own and bounds its stop: on SIGTERM the runner cancels its flow runs one by one
and pauses its schedules through the Prefect API, which can take longer than a stop may.
Needs a Prefect API (PREFECT_API_URL). Production setups deploy `prefect.yaml` to a work
pool instead.
"""

from __future__ import annotations

from typing import Any

from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.settings import get_current_settings

from flows.nightly import nightly_optimization
from flows.respond import (
    anomaly_resolved,
    anomaly_response,
    budget_response,
    model_update_check,
    policy_violation_response,
)
from flows.rollout import rollout
from optimizer.processes import stop_on_signals

NIGHTLY_CRON = "0 2 * * *"  # 02:00 UTC, after the previous day's late records have arrived
# How often the runner asks the API for runs to start, unless PREFECT_RUNNER_POLL_FREQUENCY
# says otherwise: a run started from the UI or by the receiver is picked up within ~2 s
# instead of Prefect's default 10 s, for a few cheap queries to a local API.
RUNNER_POLL_S = 2.0


def deployment(flow: Flow[..., Any], **options: Any) -> RunnerDeployment:
    made = flow.to_deployment(**options)
    assert isinstance(made, RunnerDeployment)  # called outside an event loop: not a coroutine
    return made


def runner_poll_seconds() -> float:
    runner = get_current_settings().runner
    return runner.poll_frequency if "poll_frequency" in runner.model_fields_set else RUNNER_POLL_S


def main() -> None:
    # Until the runner installs its own SIGTERM handler, SIGTERM must still end `serve`
    # through its cleanup.
    stop_on_signals()
    serve(
        deployment(nightly_optimization, name="nightly", cron=NIGHTLY_CRON, tags=["nightly", "optimization"]),
        deployment(rollout, name="rollout", tags=["rollout"]),
        deployment(anomaly_response, name="anomaly-response", tags=["event-triggered"]),
        deployment(budget_response, name="budget-response", tags=["event-triggered"]),
        deployment(policy_violation_response, name="policy-violation-response", tags=["event-triggered"]),
        deployment(anomaly_resolved, name="anomaly-resolved", tags=["event-triggered"]),
        deployment(model_update_check, name="model-update-check", tags=["event-triggered"]),
        query_seconds=runner_poll_seconds(),
    )


if __name__ == "__main__":
    main()
