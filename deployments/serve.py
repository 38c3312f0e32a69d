"""`make serve-nightly`: serve every deployment (deployments/runner.py) against the Prefect
API in PREFECT_API_URL, and stop it, flow runs included, within ten seconds of SIGTERM or
Ctrl-C.

Prefect's runner stops by cancelling its flow runs one at a time, each after a wait of its
own, so its stop has no useful bound. It runs here as a child in a process group of its own:
asked to stop, it gets what is left of the time budget, then its whole group is killed.
"""

from __future__ import annotations

import sys

from optimizer.processes import ChildProcesses, stop_on_signals

RUNNER = [sys.executable, "-m", "deployments.runner"]


def main() -> int:
    stop_on_signals()
    try:
        with ChildProcesses() as children:
            children.start("runner", RUNNER)
            children.wait_for_first_exit()
            return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
