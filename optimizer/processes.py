"""Long-running commands and the processes they start: run until SIGTERM or Ctrl-C, then
stop every child within a bounded time.

Python's default SIGTERM ends a process without running `finally` blocks or atexit
handlers, so whatever it started (Prefect's temporary API server, a runner's flow runs) is
left running. Here SIGTERM raises the same KeyboardInterrupt as Ctrl-C, so the same cleanup
runs for both. Children run in process groups of their own: a Ctrl-C at the terminal
reaches only their parent, which stops them in order, newest first (a Prefect runner pauses
its schedules through the Prefect API, so that API must outlive it); each child gets what
is left of one time budget, then it and everything it left behind in its group is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType, TracebackType
from typing import IO, Any, Literal

import httpx

from optimizer.errors import ServiceStartError
from optimizer.redaction import redact_url

logger = logging.getLogger(__name__)

# All children together, so a command stops within ten seconds of being asked, with time
# left for the processes to exit on a busy machine (8 s was too close there).
STOP_TIMEOUT_S = 6.0
# What each child is sure to get to stop by itself (a uvicorn server needs about a second),
# however long the ones stopped before it took.
MIN_STOP_WAIT_S = 1.0
# How long a server lets requests still in flight finish once asked to stop.
SERVER_GRACE_S = 3

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """Make SIGTERM and SIGINT raise KeyboardInterrupt in the main thread, so `finally` blocks
    and atexit handlers run before the process exits.

    SIGINT too, because a process started in the background by a shell (`cmd &` in a
    script, as some CI runners do) inherits SIGINT ignored: asked to stop by SIGINT, it
    would not, and neither would anything it started.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def _stop_signals_ignored() -> Iterator[None]:
    """Hold SIGINT and SIGTERM off while children are being stopped: a second Ctrl-C must not
    interrupt the stopping and leave the rest running (the stopping is bounded anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def wait_until_answers(
    url: str, timeout_s: float, *, process: subprocess.Popen[bytes] | None = None, name: str | None = None
) -> None:
    """Poll `url` until it answers below 500; raises ServiceStartError when `timeout_s` passes
    or when `process`, the one meant to answer, exits first."""
    shown = redact_url(url)  # a Prefect API's address may carry a credential
    what = name or shown
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise ServiceStartError(f"{what} exited with status {process.returncode} before answering at {shown}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ServiceStartError(f"{what} did not answer at {shown} within {timeout_s:.0f} s")
        time.sleep(0.25)


class ChildProcesses:
    """Commands started in process groups of their own, stopped newest first on leaving the
    `with` block, however it is left (return, error, Ctrl-C or SIGTERM)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = None if env is None else dict(env)  # None: this process's environment
        self._children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, command: Sequence[str], *, ready_url: str | None = None, ready_timeout_s: float = 60.0,
        output: IO[bytes] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `command`; with `ready_url`, return only once it answers there. Its output
        goes to `output` when given, else where this process's goes."""
        process = subprocess.Popen(list(command), env=self._env, process_group=0, stdout=output,
                                   stderr=None if output is None else subprocess.STDOUT)
        self._children.append((name, process))
        if ready_url is not None:
            wait_until_answers(ready_url, ready_timeout_s, process=process, name=name)
        return process

    def wait_for_first_exit(self, poll_s: float = 0.5) -> str:
        """Block until a child exits (a crash, or someone stopped it) and return its name."""
        while True:
            for name, process in self._children:
                if process.poll() is not None:
                    return name
            time.sleep(poll_s)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to each child, newest first, waiting for it within what is left of
        `timeout_s` less MIN_STOP_WAIT_S for each child still to stop; then SIGKILL to its
        process group, which also ends whatever it started and left behind."""
        with _stop_signals_ignored():
            deadline = time.monotonic() + timeout_s
            while self._children:
                name, process = self._children.pop()
                if process.poll() is None:
                    process.terminate()
                    reserved = MIN_STOP_WAIT_S * len(self._children)
                    try:
                        process.wait(timeout=max(deadline - reserved - time.monotonic(), MIN_STOP_WAIT_S))
                    except subprocess.TimeoutExpired:
                        logger.warning("%s did not stop when asked; killing it", name)
                _kill_group(process.pid)
                process.wait()

    def __enter__(self) -> ChildProcesses:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def serve_until_stopped(
    app: Any, host: str, port: int, *, http: type[asyncio.Protocol] | Literal["auto"] = "auto"
) -> None:
    """Serve an ASGI app in the foreground until SIGTERM or Ctrl-C, then return normally so
    the caller's cleanup and atexit handlers run; requests in flight get SERVER_GRACE_S.
    `http`: the protocol class to serve with (the receiver's has its deadlines)."""
    import uvicorn

    stop_on_signals()
    # uvicorn handles both signals while serving and raises the captured one again once it
    # has shut down: with the handler above, that is a KeyboardInterrupt here.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=SERVER_GRACE_S, http=http)
