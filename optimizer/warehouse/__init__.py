"""The DuckDB warehouse: schema migrations, atomic idempotent loads, and every query.

`Warehouse` is the one way in; it owns the connection and names each concern (see its module).
It is resolved on first use, as at the package root: a reader of Parquet that needs only
`analytics` does not load every concern's module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optimizer.warehouse.warehouse import Warehouse

__all__ = ["Warehouse"]


def __getattr__(name: str) -> Any:
    if name != "Warehouse":
        raise AttributeError(f"module 'optimizer.warehouse' has no attribute {name!r}")
    from optimizer.warehouse.warehouse import Warehouse

    return Warehouse
