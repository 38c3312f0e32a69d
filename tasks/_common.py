"""What every task shares: settings, clients, and which failures are worth a retry."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun

from optimizer.errors import BadInputError, PlatformRequestError, PlatformUnavailableError
from optimizer.settings import Settings


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
