"""A long-running command under test and everything it starts, read from /proc: its
descendants (by parent links, whatever process group they moved to), the ports they listen
on, and whether any of them outlives the command."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from optimizer.processes import wait_until_answers

PROC = Path("/proc")
STOP_BOUND_S = 10.0  # every long-running command stops everything it started within this


@dataclass(frozen=True)
class Proc:
    """A process, told apart from a later one that reuses its pid by its start time."""

    pid: int
    parent: int
    started: int
    command: str


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of `pid`, or None once it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), fields[0], int(fields[19])


def _command(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def descendants(root: int) -> set[Proc]:
    """Every live process below `root`, `root` excluded."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None and stat[1] != "Z":
            children.setdefault(stat[0], []).append(int(entry.name))
    found: set[Proc] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        stat = _stat(pid)
        if stat is not None:
            found.add(Proc(pid, stat[0], stat[2], _command(pid)))
        todo.extend(children.get(pid, []))
    return found


def alive(proc: Proc) -> bool:
    stat = _stat(proc.pid)
    return stat is not None and stat[2] == proc.started and stat[1] != "Z"


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports (IPv4 and IPv6) that any of `pids` listens on."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in (PROC / str(pid) / "fd").iterdir()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        inodes.update(link[len("socket:["):-1] for link in links if link.startswith("socket:["))
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        for line in (PROC / "net" / table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Command:
    """A command in a session of its own; whatever happens, the `with` block leaves nothing
    running: the session's group and every descendant ever recorded are killed."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None,
                 log: Path | None = None, in_background: bool = False) -> None:
        """`in_background`: started as a shell script's `command &` starts it, with SIGINT
        ignored (which its children inherit)."""
        self._log = open(log, "wb") if log is not None else None  # noqa: SIM115 (closed in __exit__)
        ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if in_background else None
        self.process = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, start_new_session=True,
                                        stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        preexec_fn=ignore_sigint)
        self.recorded: set[Proc] = set()

    @property
    def pid(self) -> int:
        return self.process.pid

    def record(self) -> tuple[set[Proc], set[int]]:
        """Its descendants now, and the ports they and it listen on."""
        tree = descendants(self.pid)
        self.recorded |= tree
        return tree, listening_ports({self.pid} | {p.pid for p in tree})

    def stop_and_check(self, sig: signal.Signals, *, whole_group: bool = False) -> int:
        """Record everything, send `sig` (to the top process, or to its whole process group as
        a terminal's Ctrl-C does), and check that within STOP_BOUND_S the command exited, no
        recorded descendant is left and no recorded port accepts connections. Returns the
        command's exit status."""
        tree, ports = self.record()
        sent = time.monotonic()
        if whole_group:
            os.killpg(self.pid, sig)
        else:
            self.process.send_signal(sig)
        status = self.process.wait(timeout=STOP_BOUND_S)
        while time.monotonic() - sent < STOP_BOUND_S and (
            any(alive(p) for p in tree) or any(accepts(port) for port in ports)
        ):
            time.sleep(0.1)
        left = sorted(f"{p.pid} {p.command}" for p in tree if alive(p))
        assert not left, f"still running {time.monotonic() - sent:.1f} s after {sig.name}: {left}"
        assert not [port for port in ports if accepts(port)], f"ports still open: {ports}"
        return status

    def __enter__(self) -> Command:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.recorded |= descendants(self.pid)
        for proc in self.recorded:
            if alive(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()


@contextlib.contextmanager
def prefect_server(home: Path, env: Mapping[str, str], log: Path) -> Iterator[str]:
    """`prefect server start` on a free loopback port with its UI and PREFECT_HOME `home` (a
    migrated copy starts in seconds), ended with the block; yields its address (the API is
    under /api)."""
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    env = {**env, "PREFECT_HOME": str(home), "PREFECT_UI_API_URL": f"{address}/api"}
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with Command(command, env=env, log=log) as server:
        wait_until_answers(f"{address}/api/health", 180, process=server.process)
        yield address
