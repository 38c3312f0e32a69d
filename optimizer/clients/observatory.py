"""Observatory: telemetry queries and the per-request log search the extractor pages through."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from optimizer.clients._http import ServiceClient
from optimizer.schemas.observatory import (
    Aggregation,
    LogSearchPage,
    LogSearchRequest,
    MetricQueryResult,
    Trace,
)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class ObservatoryClient(ServiceClient):
    service = "observatory"

    def query_metrics(
        self,
        metric_name: str,
        start: datetime,
        end: datetime,
        aggregation: Aggregation = "sum",
        *,
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
        interval: str | None = None,
    ) -> MetricQueryResult:
        params: list[tuple[str, str]] = [
            ("metric_name", metric_name),
            ("start_time", _iso(start)),
            ("end_time", _iso(end)),
            ("aggregation", aggregation),
        ]
        params += [("group_by", name) for name in group_by]
        if filters:
            params.append(("filters", json.dumps(dict(filters))))
        if interval:
            params.append(("interval", interval))
        return self.call("GET", "metrics/query", MetricQueryResult, params=params)

    def search_logs(
        self, start: datetime, end: datetime, *, query: str = "", page_size: int = 1000
    ) -> Iterator[LogSearchPage]:
        """Every log record in [start, end), oldest first, one page at a time."""
        request = LogSearchRequest(
            query=query, start_time=start, end_time=end, limit=page_size
        )
        yield from self.paginate(
            "POST", "logs/search", LogSearchPage, request.model_dump(mode="json", exclude_none=True)
        )

    def get_trace(self, trace_id: str) -> Trace:
        return self.call("GET", f"traces/{trace_id}", Trace)
