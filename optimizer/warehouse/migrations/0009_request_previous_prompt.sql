-- When the same application and model last answered the same prompt hash (a served, successful
-- request), kept with each such request: caching's hits are the requests answered recently
-- enough, and a night then reads them with a filter instead of ordering every prompt's requests
-- in its window again. NULL for the first answer to a prompt and for rows a cache would not
-- answer (no hash, a shadow call, an error). Every load keeps it for its own rows and for the
-- stored rows one of them now comes just before (optimizer/warehouse/_prompt_repeats.py, whose
-- definitions this fill repeats: a migration stays as it was written).
ALTER TABLE requests ADD COLUMN previous_prompt_ts TIMESTAMPTZ;
UPDATE requests SET previous_prompt_ts = p.previous
FROM (
    SELECT request_key, request_id,
           lag(ts) OVER (PARTITION BY application_id, model, prompt_hash ORDER BY ts, request_id) AS previous
    FROM requests WHERE prompt_hash IS NOT NULL AND NOT shadow AND status = 'ok'
) AS p
WHERE p.previous IS NOT NULL AND requests.request_key = p.request_key AND requests.request_id = p.request_id;

-- Each prompt's latest stored answer: a load's rows usually come after it, and then it is the
-- previous answer of the first of them, found without reading the prompt's history.
CREATE TABLE last_prompt_answers (
    application_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    prompt_hash VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    request_id VARCHAR NOT NULL
);
INSERT INTO last_prompt_answers
SELECT application_id, model, prompt_hash, ts, request_id
FROM requests WHERE prompt_hash IS NOT NULL AND NOT shadow AND status = 'ok'
QUALIFY row_number() OVER (PARTITION BY application_id, model, prompt_hash ORDER BY ts DESC, request_id DESC) = 1;
