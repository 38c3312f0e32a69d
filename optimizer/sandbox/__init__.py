"""The platform sandbox: the five platform services' REST APIs over loopback, with
seeded traffic and injectable faults. Users try the optimizer against it; tests use it
as the real server.

As at the package root, the names below are resolved on first use: the server (FastAPI,
pandas) loads only when it is asked for, not when the CLI reads `world`'s names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optimizer.sandbox.app import create_app
    from optimizer.sandbox.faults import FaultSettings
    from optimizer.sandbox.server import SandboxServer, serve
    from optimizer.sandbox.state import SandboxConfig, SandboxState

_EXPORTS = {
    "create_app": "optimizer.sandbox.app",
    "FaultSettings": "optimizer.sandbox.faults",
    "SandboxServer": "optimizer.sandbox.server",
    "serve": "optimizer.sandbox.server",
    "SandboxConfig": "optimizer.sandbox.state",
    "SandboxState": "optimizer.sandbox.state",
}

__all__ = ["FaultSettings", "SandboxConfig", "SandboxServer", "SandboxState", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'optimizer.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
