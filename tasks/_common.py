"""What every task shares: settings, clients, and which failures are worth a retry."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun
from prefect.utilities.annotations import quote

from optimizer.errors import BadInputError, PlatformRequestError, PlatformUnavailableError
from optimizer.settings import Settings

T = TypeVar("T")


def as_is(value: T) -> T:
    """Pass a large argument to a task without Prefect walking it for futures.

    Analysis results are deep pydantic trees; the walk costs about 50 ms each on every
    call. Prefect unwraps the `quote` before the task sees it, so the task's type holds.
    """
    return cast(T, quote(value))


def settings() -> Settings:
    """Read at run time, so a worker's own environment decides where the platform is."""
    return Settings()


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
