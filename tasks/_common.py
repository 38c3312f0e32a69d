"""What every task shares: which failures are worth a retry, and running use-case steps as
tasks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun
from prefect.futures import PrefectFuture
from prefect.utilities.annotations import quote

from optimizer.errors import BadInputError, PlatformRequestError, PlatformUnavailableError

P = ParamSpec("P")
T = TypeVar("T")


def retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry outages; never retry bad input or a refusal, which would fail the same way."""
    try:
        state.result()
    except (BadInputError, PlatformRequestError):
        return False
    except PlatformUnavailableError:
        return True
    except Exception:
        return True
    return False


@dataclass(frozen=True)
class TaskSteps:
    """Runs each use-case step as the task that wraps it (`tasks` maps one to the other).

    A step that is called goes in with its arguments quoted: analysis results are deep
    pydantic trees, which Prefect would otherwise walk looking for futures, about 50 ms each
    per call; Prefect unwraps them before the task sees them. A submitted step goes to the
    task runner as it is: its arguments are small, and a Dask worker would get the wrapper.
    """

    tasks: Mapping[Callable[..., Any], Task[Any, Any]]

    @property
    def local(self) -> bool:
        """Whether the flow run's task runner runs tasks on threads of this process."""
        from prefect.context import FlowRunContext
        from prefect.task_runners import ThreadPoolTaskRunner

        context = FlowRunContext.get()
        return context is not None and isinstance(context.task_runner, ThreadPoolTaskRunner)

    def _task(self, step: Callable[..., T]) -> Task[Any, T]:
        if step not in self.tasks:
            raise LookupError(f"no task runs the step {step.__module__}.{step.__qualname__}")
        return cast(Task[Any, T], self.tasks[step])

    def submit(self, step: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> PrefectFuture[T]:
        return self._task(step).submit(*args, **kwargs)

    def call(self, step: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._task(step)(*(quote(a) for a in args), **{k: quote(v) for k, v in kwargs.items()})
