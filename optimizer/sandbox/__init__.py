"""The platform sandbox: the five platform services' REST APIs over loopback, with
seeded traffic and injectable faults. Users try the optimizer against it; tests use it
as the real server."""

from optimizer.sandbox.app import create_app
from optimizer.sandbox.faults import FaultSettings
from optimizer.sandbox.server import SandboxServer, serve
from optimizer.sandbox.state import SandboxConfig, SandboxState

__all__ = ["FaultSettings", "SandboxConfig", "SandboxServer", "SandboxState", "create_app", "serve"]
