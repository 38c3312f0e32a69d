-- request_id is the idempotency key of the whole warehouse, whatever a repeat's ts: a load
-- looks every incoming id up among all stored ones. The 64-bit key makes that a scan of one
-- narrow column instead of every id's text; the id itself settles the rare equal keys.
ALTER TABLE requests ADD COLUMN request_key UBIGINT;
UPDATE requests SET request_key = hash(request_id);

-- The key function's value for a fixed text when the keys were computed: should a DuckDB
-- upgrade change hash(), the next load sees it and computes the keys again.
CREATE TABLE request_key_check (canary UBIGINT NOT NULL);
INSERT INTO request_key_check VALUES (hash('request-key-canary'));
