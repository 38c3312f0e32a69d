-- When the same application and model last answered the same prompt hash (a served, successful
-- request), kept with each such request: caching's hits are the requests answered recently
-- enough, and a night then reads them with a filter instead of ordering every prompt's requests
-- in its window again. NULL for the first answer to a prompt and for rows a cache would not
-- answer (no hash, a shadow call, an error). Every load keeps it for its own rows and for the
-- stored rows one of them now comes just before (optimizer/warehouse/_prompt_repeats.py, whose
-- definition this fill repeats: a migration stays as it was written).
ALTER TABLE requests ADD COLUMN previous_prompt_ts TIMESTAMPTZ;
UPDATE requests SET previous_prompt_ts = p.previous
FROM (
    SELECT request_key, request_id,
           lag(ts) OVER (PARTITION BY application_id, model, prompt_hash ORDER BY ts, request_id) AS previous
    FROM requests WHERE prompt_hash IS NOT NULL AND NOT shadow AND status = 'ok'
) AS p
WHERE p.previous IS NOT NULL AND requests.request_key = p.request_key AND requests.request_id = p.request_id;
