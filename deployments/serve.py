"""Serve every deployment from this process: the nightly one on its cron schedule, the
rollout and the response flows on demand (the webhook receiver starts the latter).

Needs a Prefect API (PREFECT_API_URL); `make serve` provides one. Production setups deploy
`prefect.yaml` to a work pool instead.
"""

from __future__ import annotations

from typing import Any

from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment

from flows.nightly import nightly_optimization
from flows.respond import anomaly_response, budget_response
from flows.rollout import rollout

NIGHTLY_CRON = "0 2 * * *"  # 02:00 UTC, after the previous day's late records have arrived


def deployment(flow: Flow[..., Any], **options: Any) -> RunnerDeployment:
    made = flow.to_deployment(**options)
    assert isinstance(made, RunnerDeployment)  # called outside an event loop: not a coroutine
    return made


def main() -> None:
    serve(
        deployment(nightly_optimization, name="nightly", cron=NIGHTLY_CRON, tags=["nightly", "optimization"]),
        deployment(rollout, name="rollout", tags=["rollout"]),
        deployment(anomaly_response, name="anomaly-response", tags=["event-triggered"]),
        deployment(budget_response, name="budget-response", tags=["event-triggered"]),
    )


if __name__ == "__main__":
    main()
