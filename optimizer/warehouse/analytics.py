"""The sufficient statistics the analyses need, computed in DuckDB.

Millions of request rows become a few hundred numbers here; the pure functions in
`optimizer.analysis` take it from there. The source is either the warehouse's `requests`
table or Parquet files, checked against the request record and typed the same way a load
would, with rows that break its rules left out and counted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from optimizer.analysis.cascade_pairs import (
    FAILED_PRIMARY_BIN,
    GRID_STEPS,
    LATENCY_STEP,
    ApplicationPairs,
    CandidatePairs,
    PairBin,
)
from optimizer.analysis.compression import FLOOR_GRID, CompressionData, PromptBucket
from optimizer.analysis.experiments import VariantStatistics
from optimizer.analysis.statistics import Proportion, SampleMean
from optimizer.errors import BadInputError
from optimizer.schemas.analysis import InputSummary, VariantUsage
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.records import REQUIRED_COLUMN_NAMES
from optimizer.warehouse._validation import count_reasons, literal, typed_projection
from optimizer.warehouse.parquet_input import parquet_columns
from optimizer.warehouse.traffic_queries import IN_WINDOW, TrafficQueries

# The columns each family of queries reads: a file source built for one keeps only those.
EXPERIMENT_READS = ("ts", "experiment_id", "variant_id", "shadow", "cost_usd", "latency_ms", "quality_score", "status")
CASCADE_READS = ("ts", "application_id", "model", "shadow", "pair_id", "status", "quality_score", "confidence_score",
                 "cost_usd", "latency_ms", "complexity")
COMPRESSION_READS = ("ts", "application_id", "model", "shadow", "compression_technique", "original_prompt_tokens",
                     "prompt_tokens", "experiment_id", "quality_score", "status", "latency_ms")
_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
# The model serving most of each application's own (non-shadow) traffic in the window; ties
# go to the first model by name.
CURRENT_MODEL = f"""current_model AS (
    SELECT application_id, model FROM requests WHERE NOT shadow AND {IN_WINDOW}
    GROUP BY application_id, model
    QUALIFY row_number() OVER (PARTITION BY application_id ORDER BY count(*) DESC, model) = 1
)"""
# Each shadow pair of an application's current model (the fallback) with another model (a
# cascade's primary): the primary's confidence bin, the quality difference, both costs and
# latencies. Only paired rows (a small share) and only the columns the join reads are scanned,
# once: three times faster than joining the whole window with itself.
_PAIRS = f"""paired AS MATERIALIZED (
    SELECT pair_id, application_id, model, status, quality_score, confidence_score, cost_usd, latency_ms,
           CASE complexity WHEN 'simple' THEN 0 WHEN 'moderate' THEN 1 WHEN 'complex' THEN 2 END AS level
    FROM requests WHERE pair_id IS NOT NULL AND {IN_WINDOW}
), pairs AS (
    SELECT f.application_id, c.model AS primary_model,
           CASE WHEN c.status = 'error' THEN {FAILED_PRIMARY_BIN}
                ELSE least(CAST(floor(round(c.confidence_score * {GRID_STEPS}, 6)) AS INTEGER), {GRID_STEPS})
           END AS bin,
           CASE WHEN c.status = 'error' THEN 0.0 ELSE c.quality_score - f.quality_score END AS diff,
           c.cost_usd AS primary_cost, f.cost_usd AS fallback_cost,
           c.latency_ms AS primary_latency, f.latency_ms AS fallback_latency,
           coalesce(f.level, c.level) AS level
    FROM paired AS f
    JOIN current_model AS m ON m.application_id = f.application_id AND m.model = f.model
    JOIN paired AS c ON c.pair_id = f.pair_id AND c.model <> f.model
    WHERE f.status = 'ok' AND f.quality_score IS NOT NULL
      AND (c.status = 'error' OR (c.quality_score IS NOT NULL AND c.confidence_score IS NOT NULL))
)"""


def _routed_latency(cutoff: int, step: int) -> str:
    """A pair's latency under the cascade with threshold `step` (on the grid) routing requests up
    to complexity level `cutoff` (2: all of them) to the primary: the fallback's alone for a
    request it does not route, the primary's when its confidence reaches the threshold, else
    both (the primary answered, then escalated)."""
    return (f"CASE WHEN {cutoff} < 2 AND (level IS NULL OR level > {cutoff}) THEN fallback_latency "
            f"WHEN bin >= {step} THEN primary_latency ELSE primary_latency + fallback_latency END")


class RequestSource(TrafficQueries):
    """Request records ready for analysis in a DuckDB relation named `requests`,
    optionally restricted to the time window [start, end)."""

    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        summary: InputSummary,
        window: tuple[datetime, datetime] | None = None,
        *,
        stored_previous_prompts: bool = False,
    ) -> None:
        """`stored_previous_prompts`: `requests` keeps each row's previous answer to its prompt
        (`previous_prompt_ts`, as the warehouse does) rather than the queries working it out."""
        self._db = db
        self.summary = summary
        if stored_previous_prompts:
            self._previous_prompt = "previous_prompt_ts"
        self._window = {
            "start": window[0] if window else _FAR_PAST,
            "end": window[1] if window else _FAR_FUTURE,
        }

    def _rows(self, sql: str, parameters: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]:
        """Run an analysis query; `$start`/`$end` bound the window it may read."""
        return self._db.execute(sql, {**self._window, **(parameters or {})}).fetchall()

    @classmethod
    def from_parquet(cls, paths: Sequence[Path], *, label: str, needs: Collection[str] = (),
                     reads: Collection[str] | None = None) -> RequestSource:
        """Check, type and filter Parquet files of request records (`label` names them in errors).

        Every rule is checked on every column, in one pass over the files. With `reads` (the
        columns the analyses to run read, e.g. `EXPERIMENT_READS`), that pass keeps only the
        rows that break a rule, and each query reads its columns from the files again, typed,
        leaving those rows out: Parquet is columnar, and reading a few columns again costs less
        than copying them. Without it, every column of every row is copied once.

        Raises BadInputError naming the input and column when it cannot be read, is empty,
        lacks a column the analysis `needs` (or the record requires), or holds a column of
        the wrong type.
        """
        files = [str(p) for p in paths]
        db = duckdb.connect(":memory:")
        db.execute("SET TimeZone = 'UTC'")
        # Unlike a load, an analysis needs cost_usd itself: it has no catalog to price a row with.
        types = parquet_columns(db, files, label=label, required=(*REQUIRED_COLUMN_NAMES, *needs),
                                check_types=True, missing="missing column(s)")
        # A row is told apart by DuckDB's virtual columns of its file and its place in it; a file
        # with a column of either name (which would hide them) is copied instead.
        rereads = reads is not None and not {"file_index", "file_row_number"} & set(types)
        source = f"read_parquet([{', '.join(literal(f) for f in files)}], union_by_name = true)"
        if rereads:
            place = "s.file_index, s.file_row_number"
            db.execute(
                f"CREATE TEMP TABLE broken AS SELECT * FROM (SELECT {place}, "
                f"{typed_projection(types, with_raw=False, columns=())} FROM {source} AS s) WHERE _problems IS NOT NULL"
            )
            counts = db.execute(f"SELECT (SELECT count(*) FROM {source}), (SELECT count(*) FROM broken)").fetchone()
            typed = f"SELECT {place}, {typed_projection(types, with_raw=False, columns=reads)} FROM {source} AS s"
            db.execute(
                f"CREATE TEMP VIEW requests AS SELECT * EXCLUDE (file_index, file_row_number, _problems) FROM ({typed}) "
                "ANTI JOIN broken USING (file_index, file_row_number)"
            )
            reasons_from = "broken"
        else:
            db.execute(f"CREATE TEMP TABLE checked AS SELECT {typed_projection(types, with_raw=False, columns=reads)} "
                       f"FROM {source} AS s")
            counts = db.execute("SELECT count(*), count(_problems) FROM checked").fetchone()
            db.execute("CREATE TEMP VIEW requests AS SELECT * EXCLUDE (_problems) FROM checked WHERE _problems IS NULL")
            reasons_from = "checked"
        assert counts is not None
        rows, excluded = int(counts[0]), int(counts[1])
        if rows == 0:
            raise BadInputError(f"{label}: no rows")
        reasons = count_reasons(db, f"SELECT _problems AS reason FROM {reasons_from}")
        return cls(db, InputSummary(rows=rows, rows_excluded=excluded, exclusion_reasons=reasons))

    # ---- experiments -----------------------------------------------------------------

    def experiment_ids(self) -> list[str]:
        rows = self._rows(
            f"SELECT DISTINCT experiment_id FROM requests WHERE experiment_id IS NOT NULL AND {IN_WINDOW} ORDER BY 1"
        )
        return [str(r[0]) for r in rows]

    def experiment_variants(self, experiment_id: str) -> list[VariantStatistics]:
        """Per variant: cost, latency and quality as (n, mean, variance); errors as a count."""
        return self.variants_by_experiment([experiment_id]).get(experiment_id, [])

    def variants_by_experiment(self, experiment_ids: Sequence[str] | None = None) -> dict[str, list[VariantStatistics]]:
        """`experiment_variants` of these experiments (default every one), in one scan."""
        chosen = "" if experiment_ids is None else "AND list_contains($ids, experiment_id)"
        rows = self._rows(
            f"""
            SELECT experiment_id, variant_id, count(*),
                   fsum(cost_usd), fsum(cost_usd * cost_usd), fsum(latency_ms), fsum(latency_ms * latency_ms),
                   count(quality_score), fsum(quality_score), fsum(quality_score * quality_score),
                   count(*) FILTER (WHERE status = 'error')
            FROM requests
            WHERE experiment_id IS NOT NULL {chosen} AND variant_id IS NOT NULL AND NOT shadow AND {IN_WINDOW}
            GROUP BY experiment_id, variant_id ORDER BY experiment_id, variant_id
            """,
            None if experiment_ids is None else {"ids": list(experiment_ids)},
        )
        found: dict[str, list[VariantStatistics]] = {}
        for experiment, variant, n, cost, cost2, latency, latency2, nq, q, q2, errors in rows:
            found.setdefault(str(experiment), []).append(VariantStatistics(
                variant_id=str(variant),
                cost_usd=SampleMean.from_sums(int(n), float(cost), float(cost2)),
                latency_ms=SampleMean.from_sums(int(n), float(latency), float(latency2)),
                quality_score=SampleMean.from_sums(int(nq), float(q or 0.0), float(q2 or 0.0)),
                errors=Proportion(int(n), int(errors)),
            ))
        return found

    def experiment_usage(self, experiment_id: str) -> dict[str, VariantUsage]:
        """Per variant: requests by answering model, cascade escalations, compressed prompt tokens."""
        rows = self._rows(
            f"""
            SELECT variant_id, model, count(*), count(escalated), count(*) FILTER (WHERE escalated),
                   count(original_prompt_tokens), fsum(prompt_tokens) FILTER (WHERE original_prompt_tokens IS NOT NULL),
                   fsum(original_prompt_tokens)
            FROM requests
            WHERE experiment_id = $id AND variant_id IS NOT NULL AND NOT shadow AND {IN_WINDOW}
            GROUP BY variant_id, model ORDER BY variant_id, model
            """,
            {"id": experiment_id},
        )
        usage: dict[str, VariantUsage] = {}
        for variant, model, n, cascade, escalated, compressed, sent, original in rows:
            u = usage.setdefault(str(variant), VariantUsage())
            u.requests_by_model[str(model)] = int(n)
            u.cascade_requests += int(cascade)
            u.escalated += int(escalated)
            u.compressed += int(compressed)
            u.prompt_tokens += int(sent or 0)
            u.original_prompt_tokens += int(original or 0)
        return usage

    # ---- applications ----------------------------------------------------------------

    def application_profiles(self) -> list[ApplicationProfile]:
        """Each application's served traffic (shadow calls excluded) in the window."""
        rows = self._rows(
            f"""
            WITH served AS (SELECT * FROM requests WHERE NOT shadow AND {IN_WINDOW}), {CURRENT_MODEL}
            SELECT application_id, mode(s.team_id), any_value(c.model),
                   count(*), fsum(s.cost_usd), avg(s.prompt_tokens), avg(s.completion_tokens),
                   greatest(epoch(max(s.ts)) - epoch(min(s.ts)), 3600) / 86400
            FROM served AS s JOIN current_model AS c USING (application_id)
            GROUP BY application_id ORDER BY application_id
            """
        )
        return [
            ApplicationProfile(str(app), team, str(model), int(n), float(cost), float(prompt), float(completion),
                               float(days))
            for app, team, model, n, cost, prompt, completion, days in rows
        ]

    # ---- cascades --------------------------------------------------------------------

    def cascade_pairs(self) -> list[ApplicationPairs]:
        """Shadow pairs of each application's current model with every other model, binned
        by the other model's confidence on the threshold grid (and by complexity level)."""
        # One query, so the window is scanned for pairs once: the bins' sums, and beside them each
        # candidate's p95 latency at every LATENCY_STEP-th threshold and the fallback's, for the
        # cascade routing every request to the primary (cutoff 2) and those routing only requests
        # up to a complexity level (the others are answered by the fallback alone). The 63 p95s
        # are aggregates of one group per candidate, not one group per threshold and cutoff: the
        # pairs are grouped once instead of 63 times over.
        p95s = ", ".join(f"quantile_cont({_routed_latency(cutoff, step)}, 0.95)"
                         for cutoff in range(3) for step in range(0, GRID_STEPS + 1, LATENCY_STEP))
        rows = self._rows(
            f"""
            WITH {CURRENT_MODEL}, {_PAIRS},
            tails AS (
                SELECT application_id, primary_model, [{p95s}] AS p95s,
                       quantile_cont(fallback_latency, 0.95) AS fallback_p95
                FROM pairs GROUP BY ALL
            )
            SELECT m.application_id, m.model, p.primary_model, p.bin, p.level, count(p.bin), fsum(p.diff),
                   fsum(p.diff * p.diff), fsum(p.primary_cost), fsum(p.fallback_cost), fsum(p.primary_latency),
                   fsum(p.fallback_latency), fsum((p.primary_latency - p.fallback_latency) * (p.primary_latency - p.fallback_latency)),
                   fsum(p.primary_latency * p.primary_latency), any_value(t.p95s), any_value(t.fallback_p95)
            FROM current_model AS m LEFT JOIN pairs AS p USING (application_id)
            LEFT JOIN tails AS t ON t.application_id = p.application_id AND t.primary_model = p.primary_model
            GROUP BY m.application_id, m.model, p.primary_model, p.bin, p.level ORDER BY ALL
            """
        )
        steps = range(0, GRID_STEPS + 1, LATENCY_STEP)
        fallbacks: dict[str, str] = {}
        bins: dict[str, dict[str, list[PairBin]]] = {}
        latency: dict[tuple[str, str], dict[str, Any]] = {}
        for app, fallback, model, bin_, level, n, d, d2, pc, fc, pl, fl, kept2, primary2, p95s, fallback_p95 in rows:
            fallbacks[app] = fallback
            candidates = bins.setdefault(app, {})
            if model is not None:
                candidates.setdefault(model, []).append(
                    PairBin(int(bin_), int(n), float(d), float(d2), float(pc), float(fc), float(pl), float(fl),
                            float(kept2), float(primary2), None if level is None else int(level))
                )
                by_cutoff = [list(zip(steps, map(float, p95s[k * len(steps):(k + 1) * len(steps)]), strict=True))
                             for k in range(3)]
                latency[(app, model)] = {
                    "p95_latency_ms": tuple(by_cutoff[2]), "fallback_p95_latency_ms": float(fallback_p95),
                    "routed_p95_latency_ms": tuple((k, s, p) for k in range(2) for s, p in by_cutoff[k]),
                }
        return [
            ApplicationPairs(
                application_id=str(app),
                fallback_model=str(fallbacks[app]),
                candidates=tuple(CandidatePairs(m, tuple(b), **latency[(app, m)]) for m, b in sorted(models.items())),
            )
            for app, models in sorted(bins.items())
        ]

    # ---- compression -----------------------------------------------------------------

    def compression_data(self, input_prices: Mapping[str, float]) -> list[CompressionData]:
        """Buckets of prompt length for each application's most-compressed model, by arm; their
        latency is that of answered requests (a failure's latency is the time to a timeout or
        an error, unrelated to the prompt)."""
        floor_case = "CASE " + " ".join(
            f"WHEN coalesce(original_prompt_tokens, prompt_tokens) >= {floor} THEN {floor}"
            for floor in sorted(FLOOR_GRID, reverse=True)
        ) + " ELSE 0 END"
        targets = self._rows(
            f"""
            SELECT application_id, model, mode(compression_technique)
            FROM requests WHERE compression_technique IS NOT NULL AND NOT shadow AND {IN_WINDOW}
            GROUP BY application_id, model
            QUALIFY row_number() OVER (PARTITION BY application_id ORDER BY count(*) DESC, model) = 1
            """
        )
        found = []
        for app, model, technique in targets:
            (span,), = self._rows(
                f"SELECT epoch(max(ts)) - epoch(min(ts)) FROM requests WHERE application_id = $app AND {IN_WINDOW}",
                {"app": app},
            )
            rows = self._rows(
                f"""
                SELECT {floor_case} AS floor, compression_technique IS NOT NULL AS compressed,
                       coalesce(experiment_id, '') AS experiment, count(*),
                       count(quality_score), fsum(quality_score), fsum(quality_score * quality_score),
                       sum(prompt_tokens), sum(coalesce(original_prompt_tokens, prompt_tokens)),
                       count(*) FILTER (WHERE status = 'ok'), fsum(latency_ms) FILTER (WHERE status = 'ok'),
                       fsum(latency_ms * latency_ms) FILTER (WHERE status = 'ok')
                FROM requests
                WHERE application_id = $app AND model = $model AND NOT shadow AND {IN_WINDOW}
                GROUP BY ALL ORDER BY ALL
                """,
                {"app": app, "model": model},
            )
            if {bool(r[1]) for r in rows} != {True, False}:
                continue
            found.append(
                CompressionData(
                    application_id=str(app), model=str(model), technique=str(technique),
                    input_cost_per_1k=input_prices.get(str(model)),
                    days_observed=float(span or 0.0) / 86400,
                    buckets=tuple(
                        PromptBucket(
                            floor=int(floor), compressed=bool(compressed), experiment_id=str(experiment),
                            requests=int(n),
                            quality=SampleMean.from_sums(int(nq), float(q or 0.0), float(q2 or 0.0)),
                            prompt_tokens=int(sent), original_prompt_tokens=int(original),
                            latency=SampleMean.from_sums(int(n_ok), float(lat or 0.0), float(lat2 or 0.0)),
                        )
                        for floor, compressed, experiment, n, nq, q, q2, sent, original, n_ok, lat, lat2 in rows
                    ),
                )
            )
        return found
