"""The per-day partials of the window queries (see `optimizer.warehouse.day_partials`): each
reads only the columns its analyses need, so a Parquet source built for one family of
analyses has them all."""

from __future__ import annotations

from collections.abc import Sequence

from optimizer.analysis.caching import CANDIDATE_TTLS_S
from optimizer.analysis.cascade_pairs import FAILED_PRIMARY_BIN, GRID_STEPS
from optimizer.analysis.compression import FLOOR_GRID
from optimizer.analysis.models import LATENCY_BUCKET_RATIO
from optimizer.warehouse._prompt_repeats import CACHEABLE
from optimizer.warehouse.day_partials import (
    DAY,
    NEIGHBOUR_ROWS,
    PREVIOUS_ANSWER,
    ROWS,
    DayPartial,
    day_of,
)

# Each application's own (non-shadow) requests per model: the current model is the one serving most.
MODEL_COUNTS = DayPartial("model_counts", f"""
    SELECT {DAY} AS day, application_id, model, count(*) AS n
    FROM requests WHERE NOT shadow AND {ROWS} GROUP BY ALL""")


def current_model(model_counts: str) -> str:
    """The model serving most of each application's own (non-shadow) traffic in the window;
    ties go to the first model by name."""
    return f"""current_model AS (
        SELECT application_id, model FROM {model_counts} GROUP BY application_id, model
        QUALIFY row_number() OVER (PARTITION BY application_id ORDER BY sum(n) DESC, model) = 1
    )"""


# Each application's own requests per team: volume, cost, tokens, first and last.
SERVED = DayPartial("served", f"""
    SELECT {DAY} AS day, application_id, team_id, count(*) AS n, fsum(cost_usd) AS cost,
           sum(prompt_tokens) AS prompt, count(prompt_tokens) AS prompted,
           sum(completion_tokens) AS completion, count(completion_tokens) AS completed,
           count(prompt_hash) AS hashed, min(ts) AS first_ts, max(ts) AS last_ts
    FROM requests WHERE NOT shadow AND {ROWS} GROUP BY ALL""")

# Each shadow pair of two models' answers to one request, once as seen from either model (the
# fallback, `f`, on the partial's days) and the other (a cascade's primary, on `partner_day`):
# the primary's confidence bin, the quality difference, both costs and latencies. The two calls
# of a pair are made together; a partner more than a day away is not one. Only paired rows (a
# small share) and only the columns the join reads are scanned.
PAIRS = DayPartial("pairs", f"""
    WITH paired AS MATERIALIZED (
        SELECT {DAY} AS day, ts, pair_id, application_id, model, status, quality_score, confidence_score,
               cost_usd, latency_ms,
               CASE complexity WHEN 'simple' THEN 0 WHEN 'moderate' THEN 1 WHEN 'complex' THEN 2 END AS level
        FROM requests WHERE pair_id IS NOT NULL AND {NEIGHBOUR_ROWS}
    )
    SELECT f.day, c.day AS partner_day, f.application_id, f.model AS fallback_model, c.model AS primary_model,
           CASE WHEN c.status = 'error' THEN {FAILED_PRIMARY_BIN}
                ELSE least(CAST(floor(round(c.confidence_score * {GRID_STEPS}, 6)) AS INTEGER), {GRID_STEPS})
           END AS bin,
           CASE WHEN c.status = 'error' THEN 0.0 ELSE c.quality_score - f.quality_score END AS diff,
           c.cost_usd AS primary_cost, f.cost_usd AS fallback_cost,
           c.latency_ms AS primary_latency, f.latency_ms AS fallback_latency,
           coalesce(f.level, c.level) AS level
    FROM paired AS f JOIN paired AS c ON c.pair_id = f.pair_id AND c.model <> f.model AND c.day BETWEEN f.day - 1 AND f.day + 1
    WHERE f.ts >= $lo AND f.ts < $hi AND f.status = 'ok' AND f.quality_score IS NOT NULL
      AND (c.status = 'error' OR (c.quality_score IS NOT NULL AND c.confidence_score IS NOT NULL))""",
    neighbours=1)

_FLOOR = "CASE " + " ".join(f"WHEN coalesce(original_prompt_tokens, prompt_tokens) >= {floor} THEN {floor}"
                            for floor in sorted(FLOOR_GRID, reverse=True)) + " ELSE 0 END"
# Per application and model, own requests by technique, prompt-length floor and experiment:
# quality, tokens and answered latency; and every row's first and last ts (shadow calls too).
COMPRESSION = DayPartial("compression", f"""
    SELECT {DAY} AS day, application_id, model, shadow,
           CASE WHEN NOT shadow THEN compression_technique END AS technique,
           CASE WHEN NOT shadow THEN {_FLOOR} END AS floor,
           CASE WHEN NOT shadow THEN coalesce(experiment_id, '') END AS experiment,
           count(*) AS n, count(quality_score) AS scored, fsum(quality_score) AS quality,
           fsum(quality_score * quality_score) AS quality2, sum(prompt_tokens) AS sent,
           sum(coalesce(original_prompt_tokens, prompt_tokens)) AS original,
           count(*) FILTER (WHERE status = 'ok') AS answered, fsum(latency_ms) FILTER (WHERE status = 'ok') AS latency,
           fsum(latency_ms * latency_ms) FILTER (WHERE status = 'ok') AS latency2,
           min(ts) AS first_ts, max(ts) AS last_ts
    FROM requests WHERE {ROWS} GROUP BY ALL""")

# Own latency-tolerant-or-not requests per model and task type: batching picks the task types.
BATCHING = DayPartial("batching", f"""
    SELECT {DAY} AS day, application_id, model, task_type, count(*) AS n, fsum(cost_usd) AS cost,
           sum(prompt_tokens) AS prompt, sum(completion_tokens) AS completion
    FROM requests WHERE NOT shadow AND {ROWS} GROUP BY ALL""")

# Per application, task type, model and latency bucket (shadow calls too: they measure the
# model on the same prompts): counts and sums of cost, quality, errors and tokens.
CELLS = DayPartial("cells", f"""
    SELECT {DAY} AS day, application_id, task_type, model,
           CASE WHEN status = 'ok' THEN CAST(floor(ln(greatest(latency_ms, 1.0)) / ln({LATENCY_BUCKET_RATIO})) AS INTEGER)
           END AS bucket,
           count(*) AS n, fsum(coalesce(cost_usd, 0)) AS cost, count(quality_score) AS scored,
           fsum(coalesce(quality_score, 0)) AS quality, count(*) FILTER (WHERE status = 'error') AS errors,
           sum(prompt_tokens) AS prompt, sum(completion_tokens) AS completion
    FROM requests WHERE {ROWS} GROUP BY ALL""")


def caching_partial(ttls: Sequence[int] = CANDIDATE_TTLS_S) -> DayPartial:
    """Cacheable requests per application and day, and for each TTL those whose previous answer
    came at most that long before (hits), and their cost; by the day of the previous answer, as
    a merge counts only hits answered before from inside its window."""
    chosen = sorted({int(ttl) for ttl in ttls})
    per_ttl = "".join(f", count(*) FILTER (WHERE gap_s <= {ttl}) AS hits_{ttl}, "
                      f"coalesce(fsum(cost_usd) FILTER (WHERE gap_s <= {ttl}), 0) AS cost_{ttl}" for ttl in chosen)
    return DayPartial("caching", f"""
        WITH cacheable AS (
            SELECT application_id, cost_usd, ts, {PREVIOUS_ANSWER} AS previous_ts
            FROM requests WHERE {CACHEABLE} AND {ROWS}
        ), gaps AS (
            SELECT *, CASE WHEN previous_ts >= $start THEN epoch(ts) - epoch(previous_ts) END AS gap_s FROM cacheable
        )
        SELECT {DAY} AS day, application_id,
               CASE WHEN gap_s <= {max(chosen, default=0)} THEN {day_of('previous_ts')} END
                   AS previous_day,
               count(*) AS n{per_ttl}
        FROM gaps GROUP BY ALL""")
