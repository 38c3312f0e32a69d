"""Starting a deployment's flow run for an accepted event, through the Prefect API.

The idempotency key is the event's source and id, so starting the same event twice (a
retry after a crash between starting and recording) returns the same flow run. Running
deployments directly, rather than emitting Prefect events for deployment triggers, lets
the receiver record each event's flow run id and keep retrying until the run exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client


class FlowStarter(Protocol):
    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str: ...

    async def close(self) -> None: ...


class PrefectStarter:
    """Creates flow runs of named deployments (`flow-name/deployment-name`) on one client,
    shared by concurrent starts."""

    def __init__(self, tags: Sequence[str] = ("event-triggered",)) -> None:
        self._tags = list(tags)  # what the runs are tagged with, to tell who started them
        self._deployments: dict[str, UUID] = {}
        self._client: PrefectClient | None = None
        self._opening = asyncio.Lock()  # one client (and one temporary Prefect API), however many start at once

    async def _opened(self) -> PrefectClient:
        async with self._opening:
            if self._client is None:
                self._client = await get_client().__aenter__()
            return self._client

    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        client = await self._opened()
        if deployment not in self._deployments:
            self._deployments[deployment] = (await client.read_deployment_by_name(deployment)).id
        try:
            run = await client.create_flow_run_from_deployment(
                self._deployments[deployment], parameters=parameters, idempotency_key=idempotency_key,
                tags=self._tags,
            )
        except Exception:  # deleted and registered again since, maybe: look it up again next time
            self._deployments.pop(deployment, None)
            raise
        return str(run.id)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None
