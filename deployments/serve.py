"""Serve the nightly deployment from this process, on its cron schedule.

For a quick local setup: `prefect server start` in one terminal, then
`PREFECT_API_URL=http://127.0.0.1:4200/api python -m deployments.serve` in another.
Production setups deploy `prefect.yaml` to a work pool instead.
"""

from __future__ import annotations

from flows.nightly import nightly_optimization

NIGHTLY_CRON = "0 2 * * *"  # 02:00 UTC, after the previous day's late records have arrived


def main() -> None:
    nightly_optimization.serve(
        name="nightly",
        cron=NIGHTLY_CRON,
        parameters={"backfill_days": 7, "lookback_hours": 6},
        tags=["nightly", "optimization"],
    )


if __name__ == "__main__":
    main()
