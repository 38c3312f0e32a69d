"""LLM Auto-Optimizer: read what LLM traffic costs and how good it is, prove where a cheaper
setup does as well, and roll it out after a person approves.

The package root names what users import; modules with a leading underscore are private.
"""

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
from optimizer.schemas import RequestRecord
from optimizer.schemas.loads import LoadBatch, LoadResult
from optimizer.settings import Settings
from optimizer.warehouse import Warehouse

__version__ = "0.1.0"

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
    "Settings",
    "Warehouse",
    "WarehouseError",
    "__version__",
]
