"""Starting a deployment's flow run for an accepted event, through the Prefect API.

The idempotency key is the event's source and id, so starting the same event twice (a
retry after a crash between starting and recording) returns the same flow run. Running
deployments directly, rather than emitting Prefect events for deployment triggers, lets
the receiver record each event's flow run id and keep retrying until the run exists.

Starts asked for together are sent together: one request to Prefect at a time, and the
starts that arrive while it is on its way go with the next, up to `BATCH` runs of a
deployment in one request to Prefect's bulk endpoint. On a local Prefect server (SQLite, one
writer) the server's work per run sets a burst's pace: a run costs it about a third less
CPU in a batch than in a request of its own, and concurrent requests only queue for the
database (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import DeploymentFlowRunCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

# Runs per request: Prefect takes up to 100; a batch holds the database's write lock while it
# is created (~20 ms a run on a local server), so smaller batches keep other writers' waits short.
BATCH = 25
REFUSALS_RESENT = 3


class FlowStarter(Protocol):
    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str: ...

    async def close(self) -> None: ...


class RunNotCreatedError(Exception):
    """Prefect answered without creating this run (the message says why); try again."""


@dataclass(eq=False)  # one start each, however alike two are
class _Waiting:
    parameters: dict[str, Any]
    idempotency_key: str
    run: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    refused: int = 0  # times Prefect answered a batch without creating this run


class PrefectStarter:
    """Creates flow runs of named deployments (`flow-name/deployment-name`) on one client,
    for concurrent starts, which it sends to Prefect in batches."""

    def __init__(self, tags: Sequence[str] = ("event-triggered",), batch: int = BATCH) -> None:
        self._tags = list(tags)  # what the runs are tagged with, to tell who started them
        self._batch = batch
        self._deployments: dict[str, UUID] = {}
        self._client: PrefectClient | None = None
        self._opening = asyncio.Lock()  # one client (and one temporary Prefect API), however many start at once
        self._waiting: dict[str, list[_Waiting]] = {}  # by deployment, oldest first
        self._sender: asyncio.Task[None] | None = None  # sends one request to Prefect at a time
        self.requests = 0  # requests sent to create runs: how well starts were batched

    async def _opened(self) -> PrefectClient:
        async with self._opening:
            if self._client is None:
                self._client = await get_client().__aenter__()
            return self._client

    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        waiting = _Waiting(parameters, idempotency_key)
        self._waiting.setdefault(deployment, []).append(waiting)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all())
        return await waiting.run

    async def _send_all(self) -> None:
        """Send what waits, a batch at a time, until nothing does."""
        while any(self._waiting.values()):
            for deployment in list(self._waiting):
                queued = [waiting for waiting in self._waiting[deployment] if not waiting.run.done()]
                batch, self._waiting[deployment] = queued[: self._batch], queued[self._batch:]
                if batch:
                    await self._send(deployment, batch)

    async def _send(self, deployment: str, batch: list[_Waiting]) -> None:
        """Create `batch`'s runs in one request; settle each start with its run id or why not."""
        try:
            created = await self._create(deployment, batch)
        except Exception as exc:  # deleted and registered again since, maybe: look it up again next time
            self._deployments.pop(deployment, None)
            created = [exc] * len(batch)
        except BaseException:  # cancelled on the way (closing): no start waits for an answer forever
            _settle(batch, [RunNotCreatedError("its request to Prefect was interrupted")] * len(batch))
            raise
        # A run refused within a batch was refused by the database (a write that met another,
        # on SQLite), not by an unreachable Prefect: it goes with the next request, a few times,
        # before its start fails and waits out the dispatcher's backoff.
        again = [waiting for waiting, outcome in zip(batch, created, strict=True)
                 if isinstance(outcome, RunNotCreatedError) and waiting.refused < REFUSALS_RESENT]
        for waiting in again:
            waiting.refused += 1
        self._waiting[deployment] = again + self._waiting.get(deployment, [])
        _settle([waiting for waiting in batch if waiting not in again],
                [outcome for waiting, outcome in zip(batch, created, strict=True) if waiting not in again])

    async def _create(self, deployment: str, batch: list[_Waiting]) -> list[str | Exception]:
        client = await self._opened()
        if deployment not in self._deployments:
            self._deployments[deployment] = (await client.read_deployment_by_name(deployment)).id
        body = [DeploymentFlowRunCreate(parameters=waiting.parameters, idempotency_key=waiting.idempotency_key,
                                        tags=self._tags).model_dump(mode="json", exclude_unset=True) for waiting in batch]
        self.requests += 1
        # Prefect 3.9's client has no method for the bulk route, nor the route in its list of them.
        reply = await client.request("POST", "/deployments/{id}/create_flow_run/bulk",  # type: ignore[arg-type]
                                     path_params={"id": self._deployments[deployment]}, json=body)
        results = reply.json()["results"]
        if len(results) != len(batch):
            raise RunNotCreatedError(f"Prefect answered {len(results)} results for {len(batch)} runs")
        outcomes: list[str | Exception] = [
            str(result["flow_run_id"]) if result["status"] == "CREATED" and result.get("flow_run_id")
            else RunNotCreatedError(str(result.get("error") or result["status"]))
            for result in results
        ]
        if any(isinstance(outcome, Exception) for outcome in outcomes):
            # A batch's runs are created in one transaction: after a failure in it, record only
            # the runs that can be read back.
            await _confirm(client, outcomes)
        return outcomes

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for queued in self._waiting.values():
            _settle(queued, [RunNotCreatedError("the receiver stopped before it was sent")] * len(queued))
        self._waiting.clear()
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None


async def _confirm(client: PrefectClient, outcomes: list[str | Exception]) -> None:
    """Turn each run id in `outcomes` that Prefect cannot find into an error."""
    claimed = [UUID(outcome) for outcome in outcomes if isinstance(outcome, str)]
    if not claimed:
        return
    found = {str(run.id) for run in await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=claimed)), limit=len(claimed))}
    for n, outcome in enumerate(outcomes):
        if isinstance(outcome, str) and outcome not in found:
            outcomes[n] = RunNotCreatedError(f"flow run {outcome} was reported created but cannot be found")


def _settle(batch: list[_Waiting], outcomes: list[str | Exception]) -> None:
    for waiting, outcome in zip(batch, outcomes, strict=True):
        if waiting.run.done():  # its start was cancelled meanwhile
            continue
        if isinstance(outcome, Exception):
            waiting.run.set_exception(outcome)
        else:
            waiting.run.set_result(outcome)
