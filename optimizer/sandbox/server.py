"""Running the sandbox: in the foreground (the CLI) or on a background thread (demo, tests)."""

from __future__ import annotations

from optimizer._serving import BackgroundServer
from optimizer.processes import serve_until_stopped
from optimizer.sandbox.app import create_app
from optimizer.sandbox.state import SandboxConfig, SandboxState


def serve(config: SandboxConfig, host: str, port: int) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    serve_until_stopped(create_app(config), host, port)


class SandboxServer(BackgroundServer):
    """A sandbox on a free loopback port for the lifetime of a `with` block."""

    def __init__(self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SandboxConfig()
        super().__init__(create_app(self.config), host=host, port=port)

    @property
    def state(self) -> SandboxState:
        """The sandbox's memory: tests move its clock and set its faults here."""
        state: SandboxState = self.app.state.sandbox
        return state

    def __enter__(self) -> SandboxServer:
        self.start()
        return self
