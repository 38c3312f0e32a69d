"""The statistics behind caching, batch pricing and model choice, computed in DuckDB over the
same `requests` relation and window as the rest of `RequestSource`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optimizer.analysis.batching import BatchingData, TolerantDay
from optimizer.analysis.caching import CANDIDATE_TTLS_S, CacheDay, CachingData
from optimizer.schemas.selection import TrafficCell
from optimizer.warehouse._prompt_repeats import PREVIOUS_PROMPT
from optimizer.warehouse.day_partials import DayPartial
from optimizer.warehouse.partial_queries import BATCHING, CELLS, SERVED, caching_partial

IN_WINDOW = "ts >= $start AND ts < $end"


class TrafficQueries:
    """Part of `RequestSource`: queries that read whole days of traffic rather than pairs or
    arms; `_rows` runs them inside the source's window."""

    # The ts of each cacheable row's previous answer to its prompt: worked out over the source's
    # rows, unless the source keeps it with every row (the warehouse does).
    _previous_prompt = PREVIOUS_PROMPT

    def _rows(self, sql: str, parameters: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _partial(self, partial: DayPartial) -> str:
        raise NotImplementedError

    # ---- caching and batch pricing -----------------------------------------------------

    def caching_data(self, ttls: Sequence[int] = CANDIDATE_TTLS_S) -> list[CachingData]:
        """Per application with prompt hashes, per UTC day and candidate TTL: successful served
        requests with a hash, those whose application and model saw the same hash answered at
        most TTL seconds before (hits), and what the hits cost."""
        totals = self._rows(
            f"""SELECT application_id, sum(n), sum(hashed) FROM {self._partial(SERVED)}
                GROUP BY ALL HAVING sum(hashed) > 0 ORDER BY 1"""
        )
        chosen = sorted({int(ttl) for ttl in ttls})
        # A previous answer counts only from inside the window, as if the window were all there is.
        inside = "previous_day >= $first_day"
        per_ttl = "".join(f", coalesce(sum(hits_{ttl}) FILTER (WHERE {inside}), 0), "
                          f"coalesce(fsum(cost_{ttl}) FILTER (WHERE {inside}), 0)" for ttl in chosen)
        rows = self._rows(
            f"SELECT application_id, day, sum(n){per_ttl} FROM {self._partial(caching_partial(chosen))} GROUP BY ALL ORDER BY ALL"
        )
        days: dict[str, list[CacheDay]] = {}
        for app, day, n, *by_ttl in rows:
            days.setdefault(str(app), []).extend(
                CacheDay(int(day), int(ttl), int(n), int(hits), float(cost))
                for ttl, hits, cost in zip(chosen, by_ttl[::2], by_ttl[1::2], strict=True))
        return [CachingData(str(app), int(n), int(hashed), tuple(days.get(str(app), ())))
                for app, n, hashed in totals]

    def batching_data(self, task_types: Sequence[str]) -> list[BatchingData]:
        """Per application with latency-tolerant traffic (`task_types`), per UTC day, model and
        task type: its served requests, their cost and tokens; and the application's first and
        last day in the window."""
        rows = self._rows(
            f"""
            WITH served AS (SELECT * FROM {self._partial(BATCHING)}),
            spans AS (SELECT application_id, sum(n) AS n, min(day) AS first_day, max(day) AS last_day FROM served GROUP BY ALL)
            SELECT s.application_id, any_value(p.n), any_value(p.first_day), any_value(p.last_day),
                   s.day, s.model, s.task_type, sum(s.n), fsum(s.cost), sum(s.prompt), sum(s.completion)
            FROM served AS s JOIN spans AS p USING (application_id)
            WHERE s.task_type IN (SELECT unnest($types))
            GROUP BY s.application_id, s.day, s.model, s.task_type ORDER BY ALL
            """,
            {"types": list(task_types) or [""]},
        )
        found: dict[str, tuple[int, int, int, list[TolerantDay]]] = {}
        for app, n, first, last, day, model, task, k, cost, prompt, completion in rows:
            entry = found.setdefault(str(app), (int(n), int(first), int(last), []))
            entry[3].append(TolerantDay(int(day), str(model), str(task), int(k), float(cost), int(prompt),
                                        int(completion)))
        return [BatchingData(app, n, first, last, tuple(days)) for app, (n, first, last, days) in found.items()]

    # ---- models ----------------------------------------------------------------------

    def traffic_cells(self) -> list[TrafficCell]:
        """Per application, task type and model: counts and sums of cost, quality, errors and
        tokens, and successful requests' latencies in buckets (shadow calls included: they
        measure the model on the same prompts)."""
        rows = self._rows(
            f"""
            WITH cells AS (
                SELECT application_id, task_type, model, bucket, sum(n) AS n, fsum(cost) AS cost, sum(scored) AS scored,
                       fsum(quality) AS quality, sum(errors) AS errors, sum(prompt) AS prompt, sum(completion) AS completion
                FROM {self._partial(CELLS)} GROUP BY ALL
            )
            SELECT application_id, task_type, model, sum(n), fsum(cost), sum(scored), fsum(quality), sum(errors),
                   sum(prompt), sum(completion), list((bucket, n) ORDER BY bucket) FILTER (WHERE bucket IS NOT NULL)
            FROM cells GROUP BY ALL ORDER BY ALL
            """
        )
        return [
            TrafficCell(str(app), None if task is None else str(task), str(model), int(n), float(cost), int(scored),
                        float(quality), int(errors), int(prompt or 0), int(completion or 0),
                        tuple((int(bucket), int(count)) for bucket, count in buckets or ()))
            for app, task, model, n, cost, scored, quality, errors, prompt, completion, buckets in rows
        ]
