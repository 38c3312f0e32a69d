"""Which task runner the nightly flow's fanned-out tasks use, from settings.

Chosen when the flow module is imported, so a deployment's environment decides it the
same way for `make serve`, a process worker or a Kubernetes job:
`AUTO_OPTIMIZER_TASK_RUNNER=dask` with `AUTO_OPTIMIZER_DASK_ADDRESS=tcp://scheduler:8786`
uses an existing cluster; without an address a local cluster starts with the run.
"""

from __future__ import annotations

from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from optimizer.settings import Settings


def dask_runner(address: str | None = None, workers: int = 2) -> TaskRunner[Any]:
    """Dask, on the cluster at `address` or on a local cluster of `workers` processes.

    One thread per worker process: the tasks are CPU-bound in Python (parsing, mapping),
    so processes, not threads, are what run them side by side.
    """
    from prefect_dask.task_runners import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"}
    )


def task_runner(settings: Settings | None = None) -> TaskRunner[Any]:
    config = settings or Settings()
    if config.task_runner == "dask":
        return dask_runner(config.dask_address, config.dask_workers)
    return ThreadPoolTaskRunner()
