-- A hash of each request's prompt, when its producer sends one (never the text): exact repeats
-- of a prompt are what a response cache would answer, so caching is recommended from them.
ALTER TABLE requests ADD COLUMN prompt_hash VARCHAR;
