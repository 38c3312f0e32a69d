"""The statistics behind caching, batch pricing and model choice, computed in DuckDB over the
same `requests` relation and window as the rest of `RequestSource`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optimizer.analysis.batching import BatchingData, TolerantDay
from optimizer.analysis.caching import CANDIDATE_TTLS_S, CacheDay, CachingData
from optimizer.analysis.models import LATENCY_BUCKET_RATIO
from optimizer.schemas.selection import TrafficCell
from optimizer.warehouse._prompt_repeats import CACHEABLE, PREVIOUS_PROMPT

IN_WINDOW = "ts >= $start AND ts < $end"


class TrafficQueries:
    """Part of `RequestSource`: queries that read whole days of traffic rather than pairs or
    arms; `_rows` runs them inside the source's window."""

    # The ts of each cacheable row's previous answer to its prompt: worked out over the source's
    # rows, unless the source keeps it with every row (the warehouse does).
    _previous_prompt = PREVIOUS_PROMPT

    def _rows(self, sql: str, parameters: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    # ---- caching and batch pricing -----------------------------------------------------

    def caching_data(self, ttls: Sequence[int] = CANDIDATE_TTLS_S) -> list[CachingData]:
        """Per application with prompt hashes, per UTC day and candidate TTL: successful served
        requests with a hash, those whose application and model saw the same hash answered at
        most TTL seconds before (hits), and what the hits cost."""
        totals = self._rows(
            f"""SELECT application_id, count(*), count(prompt_hash) FROM requests
                WHERE NOT shadow AND {IN_WINDOW} GROUP BY ALL HAVING count(prompt_hash) > 0 ORDER BY 1"""
        )
        # Every TTL's hits in one pass. A previous answer counts only from inside the window, as if
        # the window were all there is.
        chosen = sorted({int(ttl) for ttl in ttls})
        per_ttl = "".join(f", count(*) FILTER (WHERE gap_s <= {ttl}), coalesce(fsum(cost_usd) FILTER (WHERE gap_s <= {ttl}), 0)"
                          for ttl in chosen)
        rows = self._rows(
            f"""
            WITH cacheable AS (
                SELECT application_id, cost_usd, ts, {self._previous_prompt} AS previous_ts
                FROM requests WHERE {CACHEABLE} AND {IN_WINDOW}
            ), hashed AS (
                SELECT application_id, cost_usd, CAST(epoch(ts) // 86400 AS INTEGER) AS day,
                       CASE WHEN previous_ts >= $start THEN epoch(ts) - epoch(previous_ts) END AS gap_s
                FROM cacheable
            )
            SELECT application_id, day, count(*){per_ttl} FROM hashed GROUP BY ALL ORDER BY ALL
            """
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
            WITH served AS (SELECT * FROM requests WHERE NOT shadow AND {IN_WINDOW}),
            spans AS (
                SELECT application_id, count(*) AS n, CAST(min(epoch(ts)) // 86400 AS INTEGER) AS first_day,
                       CAST(max(epoch(ts)) // 86400 AS INTEGER) AS last_day
                FROM served GROUP BY ALL
            )
            SELECT s.application_id, any_value(p.n), any_value(p.first_day), any_value(p.last_day),
                   CAST(epoch(s.ts) // 86400 AS INTEGER), s.model, s.task_type, count(*), fsum(s.cost_usd),
                   sum(s.prompt_tokens), sum(s.completion_tokens)
            FROM served AS s JOIN spans AS p USING (application_id)
            WHERE s.task_type IN (SELECT unnest($types))
            GROUP BY s.application_id, 5, s.model, s.task_type ORDER BY ALL
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
        # One scan: grouped by latency bucket too, then the few thousand groups summed up.
        rows = self._rows(
            f"""
            WITH cells AS (
                SELECT application_id, task_type, model,
                       CASE WHEN status = 'ok' THEN CAST(floor(ln(greatest(latency_ms, 1.0))
                                                             / ln({LATENCY_BUCKET_RATIO})) AS INTEGER) END AS bucket,
                       count(*) AS n, fsum(coalesce(cost_usd, 0)) AS cost, count(quality_score) AS scored,
                       fsum(coalesce(quality_score, 0)) AS quality, count(*) FILTER (WHERE status = 'error') AS errors,
                       sum(prompt_tokens) AS prompt, sum(completion_tokens) AS completion
                FROM requests WHERE {IN_WINDOW}
                GROUP BY ALL
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
