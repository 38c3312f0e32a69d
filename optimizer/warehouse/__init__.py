"""The DuckDB warehouse: schema migrations, atomic idempotent loads, and reads."""

from optimizer.warehouse.warehouse import LoadBatch, LoadResult, Warehouse

__all__ = ["LoadBatch", "LoadResult", "Warehouse"]
