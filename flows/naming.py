"""Run names a person can scan in the Prefect UI's run list: what the run is about and the
UTC day it ran for, e.g. `rollout-support-bot+doc-qa-2026-11-25`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run


def run_day() -> date:
    """The UTC day the current run was scheduled for (its start, for a run started by hand)."""
    return flow_run.get_scheduled_start_time().astimezone(UTC).date()


def run_name(kind: str, subjects: Iterable[str], day: date | None = None) -> str:
    """`kind`, the subjects (sorted, once each, joined by '+') and the day."""
    named = sorted(set(subjects))
    return "-".join([kind, *(["+".join(named)] if named else []), (day or run_day()).isoformat()])


def rename_run(name: str) -> None:
    """Rename the current flow run, for names that are known only once the run has read its
    input (the applications a proposal touches)."""
    run_id = flow_run.get_id()
    if run_id is None or flow_run.get_name() == name:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_name(UUID(run_id), name)
