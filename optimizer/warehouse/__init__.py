"""The DuckDB warehouse: schema migrations, atomic idempotent loads, and every query.

`Warehouse` is the one way in; it owns the connection and names each concern (see its module).
"""

from optimizer.warehouse.warehouse import Warehouse

__all__ = ["Warehouse"]
