"""The warehouse: one DuckDB file, one connection, and one object per concern over it.

Each concern keeps its SQL in its own module: `loads` (request records in, quarantine,
watermarks), `reference` (model prices, spend, experiments, application owners), `results`
(what the analyses found), `outbox` (events to send), `runs` and `rollouts` (what each run
did), `optimizations` (each change from finding to deployment), `realized` (what deployed ones saved), `audit` (who did what) and
`export` (Parquet out). They share the connection, so a
write that spans two of them (results with their events, a load with its reference data)
is still one transaction.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from optimizer.errors import WarehouseError
from optimizer.schemas.analysis import InputSummary
from optimizer.warehouse._connection import connect
from optimizer.warehouse._migrate import migrate
from optimizer.warehouse.analytics import RequestSource
from optimizer.warehouse.audit import AuditLog
from optimizer.warehouse.export import ParquetExport
from optimizer.warehouse.loads import Loads
from optimizer.warehouse.optimizations import Optimizations
from optimizer.warehouse.outbox import Outbox
from optimizer.warehouse.realized import Realized
from optimizer.warehouse.reference import ReferenceData
from optimizer.warehouse.results import Results
from optimizer.warehouse.runs import Rollouts, Runs
from optimizer.warehouse.traffic_queries import IN_WINDOW


class Warehouse:
    """A DuckDB file with the optimizer's schema, migrated on open (unless read-only).

    Opening waits up to `lock_timeout_s` while another process holds the file; raises
    WarehouseError when it cannot be opened. `memory_limit` (such as 3GB) caps DuckDB's memory.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        read_only: bool = False,
        lock_timeout_s: float = 120.0,
        memory_limit: str | None = None,
    ) -> None:
        self.path = Path(path)
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WarehouseError(f"cannot create the warehouse's folder {self.path.parent}: {exc.strerror}") from exc
        self._db = connect(self.path, read_only=read_only, lock_timeout_s=lock_timeout_s, memory_limit=memory_limit)
        if not read_only:
            migrate(self._db)
        self.loads = Loads(self._db)
        self.reference = ReferenceData(self._db)
        self.results = Results(self._db)
        self.outbox = Outbox(self._db, self.path)
        self.runs = Runs(self._db)
        self.rollouts = Rollouts(self._db)
        self.audit = AuditLog(self._db)
        self.export = ParquetExport(self._db)
        self.optimizations = Optimizations(self._db)
        self.realized = Realized(self._db)

    def request_source(self, window: tuple[datetime, datetime] | None = None) -> RequestSource:
        """The stored request records, restricted to [start, end) if a window is given, for the
        analyses' queries; its summary counts the rows it reads."""
        if window is None:
            return RequestSource(self._db, InputSummary(rows=self.loads.request_count()), stored_previous_prompts=True)
        (rows,) = self._db.execute(f"SELECT count(*) FROM requests WHERE {IN_WINDOW}",
                                   {"start": window[0], "end": window[1]}).fetchone() or (0,)
        return RequestSource(self._db, InputSummary(rows=int(rows)), window, stored_previous_prompts=True,
                             kept_partials=True)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
