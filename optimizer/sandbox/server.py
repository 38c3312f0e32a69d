"""Running the sandbox: in the foreground (the CLI) or on a background thread (demo, tests)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from optimizer.errors import OptimizerError
from optimizer.sandbox.app import create_app
from optimizer.sandbox.state import SandboxConfig, SandboxState


def serve(config: SandboxConfig, host: str, port: int) -> None:
    """Serve until interrupted."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")


class SandboxServer:
    """A sandbox on a free loopback port for the lifetime of a `with` block."""

    def __init__(self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SandboxConfig()
        self.app = create_app(self.config)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True, name="sandbox"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state(self) -> SandboxState:
        """The sandbox's memory: tests move its clock and set its faults here."""
        state: SandboxState = self.app.state.sandbox
        return state

    def start(self, timeout_s: float = 15.0) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OptimizerError(f"the sandbox did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
