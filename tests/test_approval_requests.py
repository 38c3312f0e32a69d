"""Approval requests through a real Prefect API's rollout deployment, when that deployment was
registered by an older version of the optimizer."""

from __future__ import annotations

from typing import Literal

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from pydantic import BaseModel

from deployments.runner import deployment
from tasks.nightly import RolloutRuns

pytestmark = pytest.mark.usefixtures("prefect_api")


class OlderChange(BaseModel):
    application_id: str
    kind: Literal["model_cascade", "prompt_compression"]  # before batching existed


@flow(name="rollout")
def older_rollout(changes: list[OlderChange], optimization_id: str) -> None:
    """The rollout flow's parameters as an older release registered them."""


def test_a_stale_rollout_deployment_defers_the_request_instead_of_failing_the_night() -> None:
    deployment_id = deployment(older_rollout, name="rollout").apply()
    runs = RolloutRuns()
    try:
        batching = {"changes": [{"application_id": "marketing-writer", "kind": "batching"}],
                    "optimization_id": "opt-batching"}
        assert runs.start(batching, key="opt-batching") is None  # asked again another night

        cascade = {"changes": [{"application_id": "support-bot", "kind": "model_cascade"}],
                   "optimization_id": "opt-cascade"}
        started = runs.start(cascade, key="opt-cascade")
        assert started is not None
        assert runs.start(cascade, key="opt-cascade") == started  # the key makes asking twice one run
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment_id)
