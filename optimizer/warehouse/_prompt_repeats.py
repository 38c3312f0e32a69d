"""Each request's previous answer to the same prompt, for caching.

A response cache answers a request from the answer the same application and model gave the
same prompt hash before. Which request came just before is a window function over every
cacheable request of a prompt; the warehouse keeps its result with each stored row
(`previous_prompt_ts`, migration 0009), so a night reads it instead of ordering millions of
rows again. A Parquet source has no such column and works it out in its query.

A load keeps the column without reading any prompt's history: `last_prompt_answers` holds
each prompt's latest stored answer, which is the previous answer of the first new one when the
new answers come after it, as they usually do. A late answer (before the latest stored one)
changes the previous answer of the stored ones after it: those are ordered again, from the
stored answer just before the first new one, which the first of them knows.
"""

from __future__ import annotations

import duckdb

# The requests a cache could answer and be filled by: served, successful, with a prompt hash.
CACHEABLE = "prompt_hash IS NOT NULL AND NOT shadow AND status = 'ok'"
# Over cacheable rows: the ts of the one before in the same application, model and prompt (ties
# in ts go by request_id, so there is always exactly one before, or none).
PREVIOUS_PROMPT = "lag(ts) OVER (PARTITION BY application_id, model, prompt_hash ORDER BY ts, request_id)"
_PROMPT = ("application_id", "model", "prompt_hash")


def _same_prompt(a: str, b: str) -> str:
    return " AND ".join(f"{a}.{column} = {b}.{column}" for column in _PROMPT)


def update_previous_prompts(db: duckdb.DuckDBPyConnection, load_id: str) -> int:
    """Set `previous_prompt_ts` after load `load_id` stored its rows, for its cacheable rows and
    for stored rows whose previous answer is now one of them, and move each prompt's latest
    answer on; returns how many rows' previous answers were written. Inside the load's
    transaction."""
    new_answers = f"SELECT rowid AS row_id, * FROM requests WHERE load_id = $load_id AND {CACHEABLE}"
    # Each prompt answered, numbered (ordering by a number costs a third of ordering by three
    # texts): its latest stored answer before this load, its latest new one, and whether a new
    # answer comes before the latest stored one (late).
    db.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE touched_prompts AS
        SELECT row_number() OVER () AS prompt, * FROM (
            SELECT n.application_id, n.model, n.prompt_hash, min(n.ts) AS first_new_ts,
                   max({{'ts': n.ts, 'request_id': n.request_id}}) AS latest_new,
                   any_value(l.ts) AS last_ts, any_value(l.request_id) AS last_request_id,
                   coalesce(bool_or(n.ts < l.ts OR (n.ts = l.ts AND n.request_id < l.request_id)), false) AS late
            FROM ({new_answers}) AS n LEFT JOIN last_prompt_answers AS l ON {_same_prompt("l", "n")}
            GROUP BY n.application_id, n.model, n.prompt_hash
        )
        """,
        {"load_id": load_id},
    )
    # Of late prompts, the stored answers from the first new one's ts on (a constant bound, so
    # DuckDB skips the row groups before it).
    earliest = db.execute("SELECT min(first_new_ts) FROM touched_prompts WHERE late").fetchone()
    db.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE stored_after AS
        SELECT r.row_id, t.prompt, r.ts, r.request_id, r.stored, t.first_new_ts
        FROM (SELECT rowid AS row_id, {', '.join(_PROMPT)}, ts, request_id, previous_prompt_ts AS stored
              FROM requests WHERE {CACHEABLE} AND ts >= $earliest AND load_id <> $load_id) AS r
        JOIN touched_prompts AS t ON {_same_prompt("t", "r")} AND t.late AND r.ts >= t.first_new_ts
        """,
        {"earliest": earliest[0] if earliest else None, "load_id": load_id},
    )
    # Ordered again: the new answers, the stored ones after a late one, and before them each
    # prompt's answer just before (the latest stored one; for a late prompt, the previous answer
    # of its first stored row from the first new one's ts on: the only one before that ts).
    updated = db.execute(
        f"""
        UPDATE requests SET previous_prompt_ts = o.previous
        FROM (
            WITH seeds AS (
                SELECT prompt, last_ts AS ts FROM touched_prompts WHERE NOT late
                UNION ALL
                SELECT prompt, max(stored) FILTER (WHERE stored < first_new_ts) FROM stored_after GROUP BY prompt
            ), chain AS (
                SELECT row_id, prompt, ts, request_id, stored FROM stored_after
                UNION ALL
                SELECT n.row_id, t.prompt, n.ts, n.request_id, NULL
                FROM ({new_answers}) AS n JOIN touched_prompts AS t ON {_same_prompt("t", "n")}
                UNION ALL
                SELECT NULL, prompt, ts, '', NULL FROM seeds WHERE ts IS NOT NULL
            )
            SELECT row_id, stored, lag(ts) OVER (PARTITION BY prompt ORDER BY ts, request_id) AS previous FROM chain
        ) AS o
        WHERE requests.rowid = o.row_id AND o.previous IS DISTINCT FROM o.stored
        """,
        {"load_id": load_id},
    ).fetchone()
    # Each prompt's latest answer now: the latest stored one, unless a new one comes after it.
    db.execute(f"DELETE FROM last_prompt_answers AS l USING touched_prompts AS t WHERE {_same_prompt('l', 't')}")
    db.execute(
        """
        INSERT INTO last_prompt_answers
        SELECT application_id, model, prompt_hash, latest.ts, latest.request_id
        FROM (SELECT *, CASE WHEN last_ts IS NULL OR latest_new > {'ts': last_ts, 'request_id': last_request_id}
                             THEN latest_new ELSE {'ts': last_ts, 'request_id': last_request_id} END AS latest
              FROM touched_prompts)
        """
    )
    db.execute("DROP TABLE touched_prompts")
    db.execute("DROP TABLE stored_after")
    return int(updated[0]) if updated else 0
