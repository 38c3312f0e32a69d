"""Each request's previous answer to the same prompt, for caching.

A response cache answers a request from the answer the same application and model gave the
same prompt hash before. Which request came just before is a window function over every
cacheable request of a prompt; the warehouse keeps its result with each stored row
(`previous_prompt_ts`, migration 0009), so a night reads it instead of ordering millions of
rows again. A Parquet source has no such column and works it out in its query.
"""

from __future__ import annotations

import duckdb

# The requests a cache could answer and be filled by: served, successful, with a prompt hash.
CACHEABLE = "prompt_hash IS NOT NULL AND NOT shadow AND status = 'ok'"
# Over cacheable rows: the ts of the one before in the same application, model and prompt (ties
# in ts go by request_id, so there is always exactly one before, or none).
PREVIOUS_PROMPT = "lag(ts) OVER (PARTITION BY application_id, model, prompt_hash ORDER BY ts, request_id)"


def update_previous_prompts(db: duckdb.DuckDBPyConnection, load_id: str) -> int:
    """Set `previous_prompt_ts` after load `load_id` stored its rows: for its cacheable rows,
    and for stored rows whose previous answer is now one of them (a late row landing between
    two stored ones). Every cacheable row of each prompt the load touched is ordered again, the
    rows whose value changed are written; returns how many."""
    db.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE changed_previous_prompts AS
        WITH touched AS (
            SELECT DISTINCT application_id, model, prompt_hash FROM requests WHERE load_id = $load_id AND {CACHEABLE}
        ), ordered AS (
            SELECT r.rowid AS row_id, r.previous_prompt_ts AS stored, {PREVIOUS_PROMPT} AS previous
            FROM requests AS r SEMI JOIN touched AS t
                 ON t.application_id = r.application_id AND t.model = r.model AND t.prompt_hash = r.prompt_hash
            WHERE {CACHEABLE}
        )
        SELECT row_id, previous FROM ordered WHERE previous IS DISTINCT FROM stored
        """,
        {"load_id": load_id},
    )
    updated = db.execute(
        "UPDATE requests SET previous_prompt_ts = c.previous FROM changed_previous_prompts AS c"
        " WHERE requests.rowid = c.row_id"
    ).fetchone()
    db.execute("DROP TABLE changed_previous_prompts")
    return int(updated[0]) if updated else 0
