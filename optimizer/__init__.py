"""LLM Auto-Optimizer: read what LLM traffic costs and how good it is, prove where a cheaper
setup does as well, and roll it out after a person approves.

The package root names what users import; modules with a leading underscore are private.
The names are resolved on first use, so importing one module of the package (the CLI's
start, a pure analysis) does not load the HTTP clients or the warehouse.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optimizer.clients import PlatformClients
    from optimizer.errors import (
        ApprovalRejectedError,
        AuthenticationError,
        BadInputError,
        OptimizerError,
        PlatformError,
        PlatformRequestError,
        PlatformUnavailableError,
        PolicyBlockedError,
        WarehouseError,
    )
    from optimizer.pipeline.runtime import Runtime
    from optimizer.schemas.loads import LoadBatch, LoadResult
    from optimizer.schemas.records import RequestRecord
    from optimizer.settings import Settings
    from optimizer.warehouse import Warehouse

__version__ = "0.1.0"

_EXPORTS = {
    "PlatformClients": "optimizer.clients",
    "Runtime": "optimizer.pipeline.runtime",
    "RequestRecord": "optimizer.schemas.records",
    "LoadBatch": "optimizer.schemas.loads",
    "LoadResult": "optimizer.schemas.loads",
    "Settings": "optimizer.settings",
    "Warehouse": "optimizer.warehouse",
    **{name: "optimizer.errors" for name in (
        "ApprovalRejectedError", "AuthenticationError", "BadInputError", "OptimizerError", "PlatformError",
        "PlatformRequestError", "PlatformUnavailableError", "PolicyBlockedError", "WarehouseError",
    )},
}

__all__ = [
    "ApprovalRejectedError",
    "AuthenticationError",
    "BadInputError",
    "LoadBatch",
    "LoadResult",
    "OptimizerError",
    "PlatformClients",
    "PlatformError",
    "PlatformRequestError",
    "PlatformUnavailableError",
    "PolicyBlockedError",
    "RequestRecord",
    "Runtime",
    "Settings",
    "Warehouse",
    "WarehouseError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'optimizer' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
