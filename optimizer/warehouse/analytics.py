"""The sufficient statistics the analyses need, computed in DuckDB.

Millions of request rows become a few hundred numbers here; the pure functions in
`optimizer.analysis` take it from there. The source is either the warehouse's `requests`
table or Parquet files, checked against the request record and typed the same way a load
would, with rows that break its rules left out and counted.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from optimizer.analysis.cascade_pairs import (
    NO_LEVEL,
    ApplicationPairs,
    CandidatePairs,
    PairBin,
    latency_tails,
)
from optimizer.analysis.compression import CompressionData, PromptBucket
from optimizer.analysis.experiments import VariantStatistics
from optimizer.analysis.statistics import Proportion, SampleMean
from optimizer.errors import BadInputError
from optimizer.schemas.analysis import InputSummary, VariantUsage
from optimizer.schemas.applications import ApplicationProfile
from optimizer.schemas.records import REQUIRED_COLUMN_NAMES
from optimizer.warehouse import partial_queries as partials
from optimizer.warehouse._validation import (
    TEXT_COLUMN_NAMES,
    changed_by_typing,
    count_reasons,
    literal,
    suspect_conditions,
    typed_projection,
)
from optimizer.warehouse.day_partials import (
    FAR_FUTURE,
    FAR_PAST,
    DayPartial,
    StoredDayPartials,
    fresh_partial,
    used_parameters,
    window_days,
)
from optimizer.warehouse.parquet_input import parquet_columns
from optimizer.warehouse.traffic_queries import IN_WINDOW, TrafficQueries

# The columns each family of queries reads: a file source built for one keeps only those.
EXPERIMENT_READS = ("ts", "experiment_id", "variant_id", "shadow", "cost_usd", "latency_ms", "quality_score", "status")
CASCADE_READS = ("ts", "application_id", "model", "shadow", "pair_id", "status", "quality_score", "confidence_score",
                 "cost_usd", "latency_ms", "complexity")
COMPRESSION_READS = ("ts", "application_id", "model", "shadow", "compression_technique", "original_prompt_tokens",
                     "prompt_tokens", "experiment_id", "quality_score", "status", "latency_ms")
_SOURCES = itertools.count()  # each source's temporary tables are its own


_PLACE = "s.file_index, s.file_row_number"  # a row of Parquet input: its file and its place in it


def _check_in_place(db: duckdb.DuckDBPyConnection, source: str, types: Mapping[str, str]) -> tuple[int, int]:
    """Rows of `source` and rows that break a rule, those kept in the temporary table `broken`
    (their place and `_problems`): the suspects of one scan per column, then every rule on
    the suspects alone (on a clean file, none)."""
    suspects = " UNION ALL ".join(f"SELECT {_PLACE} FROM {source} AS s WHERE {condition}"
                                  for condition in suspect_conditions(types))
    db.execute(f"CREATE TEMP TABLE suspect AS {suspects}")
    db.execute(
        f"CREATE TEMP TABLE broken AS SELECT * FROM (SELECT {_PLACE}, {typed_projection(types, with_raw=False, columns=())} "
        f"FROM {source} AS s SEMI JOIN suspect AS x ON x.file_index = s.file_index AND x.file_row_number = s.file_row_number"
        ") WHERE _problems IS NOT NULL"
        if db.execute("SELECT count(*) FROM suspect").fetchone() != (0,) else
        "CREATE TEMP TABLE broken (file_index UBIGINT, file_row_number BIGINT, _problems VARCHAR)"
    )
    counts = db.execute(f"SELECT (SELECT count(*) FROM {source}), (SELECT count(*) FROM broken)").fetchone()
    assert counts is not None
    return int(counts[0]), int(counts[1])


def _as_is(db: duckdb.DuckDBPyConnection, source: str, types: Mapping[str, str], reads: Collection[str]) -> set[str]:
    """The text columns among `reads` with no value that typing changes (trimmed, or blank):
    each query reads them as they are. One scan per column, the filter evaluated per
    dictionary value and stopping at the first such value."""
    text = sorted(name for name in reads if name in TEXT_COLUMN_NAMES and types.get(name) == "VARCHAR")
    if not text:
        return set()
    probes = ", ".join(f"(SELECT count(*) FROM (SELECT 1 FROM {source} AS s WHERE {changed_by_typing(name)} LIMIT 1))"
                       for name in text)
    found = db.execute(f"SELECT {probes}").fetchone()
    assert found is not None
    return {name for name, changed in zip(text, found, strict=True) if not changed}


class RequestSource(TrafficQueries):
    """Request records ready for analysis in a DuckDB relation named `requests`,
    optionally restricted to the time window [start, end)."""

    def __init__(self, db: duckdb.DuckDBPyConnection, summary: InputSummary,
                 window: tuple[datetime, datetime] | None = None, *, stored_previous_prompts: bool = False,
                 kept_partials: bool = False) -> None:
        """`stored_previous_prompts`: `requests` keeps each row's previous answer to its prompt
        (`previous_prompt_ts`, as the warehouse does) rather than the queries working it out.
        `kept_partials`: `requests` is the warehouse's, whose per-day partials are kept
        (`optimizer.warehouse.day_partials`)."""
        self._db, self.summary = db, summary
        if stored_previous_prompts:
            self._previous_prompt = "previous_prompt_ts"
        self._window: dict[str, Any] = {"start": window[0] if window else FAR_PAST,
                                        "end": window[1] if window else FAR_FUTURE}
        self._window.update(window_days(self._window))
        self._kept = StoredDayPartials(db, self._previous_prompt) if kept_partials and window else None
        self._partials: dict[str, str] = {}
        self._name = f"source{next(_SOURCES)}"

    @property
    def days_computed(self) -> dict[str, int]:
        """Per partial, the days this source computed rather than read as kept."""
        return dict(self._kept.computed) if self._kept else {}

    def _partial(self, partial: DayPartial) -> str:
        """The temporary relation holding `partial` over the window, made on first use."""
        key = f"{partial.name}_{partial.version}"
        if key not in self._partials:
            target, bounds = f"{self._name}_{key}", {"start": self._window["start"], "end": self._window["end"]}
            if self._kept:
                self._kept.assemble(partial, target, bounds)
            else:
                fresh_partial(self._db, partial, target, bounds, self._previous_prompt)
            self._partials[key] = target
        return self._partials[key]

    def _rows(self, sql: str, parameters: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]:
        """Run an analysis query; `$start`/`$end` bound the window it may read."""
        return self._db.execute(sql, used_parameters(sql, {**self._window, **(parameters or {})})).fetchall()

    @classmethod
    def from_parquet(cls, paths: Sequence[Path], *, label: str, needs: Collection[str] = (),
                     reads: Collection[str] | None = None) -> RequestSource:
        """Check, type and filter Parquet files of request records (`label` names them in errors).

        Every rule is checked on every row. With `reads` (the columns the analyses to run
        read, e.g. `EXPERIMENT_READS`), the files are scanned once per column for rows that
        might break a rule about it (DuckDB evaluates such a filter in the scan, once per
        distinct value of a dictionary-encoded column), and only those suspects are checked
        row by row, their reasons kept; each query then reads its columns from the files
        again, typed, leaving the broken rows out: Parquet is columnar, and reading a few
        columns again costs less than copying them. Without `reads`, every column of every
        row is checked and copied once.

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
            rows, excluded = _check_in_place(db, source, types)
            typed = typed_projection(types, with_raw=False, columns=reads, as_is=_as_is(db, source, types, reads or ()))
            if excluded:
                db.execute(
                    f"CREATE TEMP VIEW requests AS SELECT * EXCLUDE (file_index, file_row_number, _problems) FROM "
                    f"(SELECT {_PLACE}, {typed} FROM {source} AS s) ANTI JOIN broken USING (file_index, file_row_number)"
                )
            else:
                db.execute(f"CREATE TEMP VIEW requests AS SELECT * EXCLUDE (_problems) FROM (SELECT {typed} FROM {source} AS s)")
            reasons_from = "broken"
        else:
            db.execute(f"CREATE TEMP TABLE checked AS SELECT {typed_projection(types, with_raw=False, columns=reads)} "
                       f"FROM {source} AS s")
            counts = db.execute("SELECT count(*), count(_problems) FROM checked").fetchone()
            assert counts is not None
            rows, excluded = int(counts[0]), int(counts[1])
            db.execute("CREATE TEMP VIEW requests AS SELECT * EXCLUDE (_problems) FROM checked WHERE _problems IS NULL")
            reasons_from = "checked"
        if rows == 0:
            raise BadInputError(f"{label}: no rows")
        reasons = count_reasons(db, f"SELECT _problems AS reason FROM {reasons_from}") if excluded else {}
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
            WITH {partials.current_model(self._partial(partials.MODEL_COUNTS))}, served AS (SELECT * FROM {self._partial(partials.SERVED)}),
            team AS (
                SELECT application_id, team_id FROM served WHERE team_id IS NOT NULL GROUP BY application_id, team_id
                QUALIFY row_number() OVER (PARTITION BY application_id ORDER BY sum(n) DESC, team_id) = 1
            )
            SELECT application_id, any_value(t.team_id), any_value(c.model),
                   sum(s.n), fsum(s.cost), sum(s.prompt) / sum(s.prompted), sum(s.completion) / sum(s.completed),
                   greatest(epoch(max(s.last_ts)) - epoch(min(s.first_ts)), 3600) / 86400
            FROM served AS s JOIN current_model AS c USING (application_id) LEFT JOIN team AS t USING (application_id)
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
        # The pairs of each application's current model go into a temporary table (with one
        # empty row per application without any): the bins' sums come from it in SQL, and
        # each candidate's p95 latencies at every LATENCY_STEP-th threshold, for the cascade
        # routing every request to the primary and those routing only requests up to a
        # complexity level, from its latencies in one pass (`latency_tails`).
        self._db.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE cascade_pairs AS
            WITH {partials.current_model(self._partial(partials.MODEL_COUNTS))}
            SELECT m.application_id, m.model AS fallback_model, p.* EXCLUDE (day, partner_day, application_id, fallback_model)
            FROM current_model AS m
            LEFT JOIN (SELECT * FROM {self._partial(partials.PAIRS)} WHERE partner_day >= $first_day AND partner_day < $past_day) AS p
                ON p.application_id = m.application_id AND p.fallback_model = m.model
            """,
            {name: self._window[name] for name in ("first_day", "past_day")},
        )
        try:
            rows = self._db.execute(
                """
                SELECT application_id, fallback_model, primary_model, bin, level, count(bin), fsum(diff),
                       fsum(diff * diff), fsum(primary_cost), fsum(fallback_cost), fsum(primary_latency),
                       fsum(fallback_latency), fsum((primary_latency - fallback_latency) * (primary_latency - fallback_latency)),
                       fsum(primary_latency * primary_latency)
                FROM cascade_pairs GROUP BY ALL ORDER BY ALL
                """
            ).fetchall()
            # In the order of the rows above, so each candidate's pairs are the next n_pairs.
            latencies = self._db.execute(
                f"""
                SELECT bin, coalesce(level, {NO_LEVEL}) AS level, primary_latency, fallback_latency
                FROM cascade_pairs WHERE primary_model IS NOT NULL ORDER BY application_id, primary_model
                """
            ).fetchnumpy()
        finally:
            self._db.execute("DROP TABLE IF EXISTS temp.cascade_pairs")
        fallbacks: dict[str, str] = {}
        bins: dict[str, dict[str, list[PairBin]]] = {}
        for app, fallback, model, bin_, level, n, d, d2, pc, fc, pl, fl, kept2, primary2 in rows:
            fallbacks[app] = fallback
            candidates = bins.setdefault(app, {})
            if model is not None:
                candidates.setdefault(model, []).append(
                    PairBin(int(bin_), int(n), float(d), float(d2), float(pc), float(fc), float(pl), float(fl),
                            float(kept2), float(primary2), None if level is None else int(level))
                )
        found = []
        start = 0
        for app, models in bins.items():  # in the order of the latencies' rows
            tails = []
            for model, pair_bins in models.items():
                end = start + sum(b.n for b in pair_bins)
                fallback_p95, by_cutoff = latency_tails(*(np.asarray(latencies[column][start:end]) for column in (
                    "bin", "level", "primary_latency", "fallback_latency")))
                start = end
                tails.append(CandidatePairs(
                    model, tuple(pair_bins), p95_latency_ms=tuple(by_cutoff[-1]), fallback_p95_latency_ms=fallback_p95,
                    routed_p95_latency_ms=tuple((k, s, p) for k in range(len(by_cutoff) - 1) for s, p in by_cutoff[k]),
                ))
            found.append(ApplicationPairs(application_id=str(app), fallback_model=str(fallbacks[app]),
                                          candidates=tuple(sorted(tails, key=lambda c: c.primary_model))))
        return sorted(found, key=lambda a: a.application_id)

    # ---- compression -----------------------------------------------------------------

    def compression_data(self, input_prices: Mapping[str, float]) -> list[CompressionData]:
        """Buckets of prompt length for each application's most-compressed model, by arm; their
        latency is that of answered requests (a failure's latency is the time to a timeout or
        an error, unrelated to the prompt)."""
        partial = self._partial(partials.COMPRESSION)
        targets = self._rows(
            f"""
            WITH techniques AS (
                SELECT application_id, model, technique, sum(n) AS n FROM {partial}
                WHERE technique IS NOT NULL AND NOT shadow GROUP BY ALL
            ), models AS (
                SELECT application_id, model FROM techniques GROUP BY application_id, model
                QUALIFY row_number() OVER (PARTITION BY application_id ORDER BY sum(n) DESC, model) = 1
            )
            SELECT application_id, model, t.technique FROM models JOIN techniques AS t USING (application_id, model)
            QUALIFY row_number() OVER (PARTITION BY application_id ORDER BY t.n DESC, t.technique) = 1
            ORDER BY application_id
            """
        )
        spans = dict(self._rows(f"SELECT application_id, epoch(max(last_ts)) - epoch(min(first_ts)) FROM {partial} GROUP BY 1"))
        found = []
        for app, model, technique in targets:
            span = spans.get(app)
            rows = self._rows(
                f"""
                SELECT floor, technique IS NOT NULL AS compressed, experiment, sum(n), sum(scored), fsum(quality),
                       fsum(quality2), sum(sent), sum(original), sum(answered), fsum(latency), fsum(latency2)
                FROM {partial} WHERE application_id = $app AND model = $model AND NOT shadow
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
