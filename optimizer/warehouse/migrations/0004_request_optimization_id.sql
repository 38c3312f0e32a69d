-- Which optimization served a request (a canary, an experiment's treatment, a promoted
-- change), when one did: how an optimization's own traffic is told from the rest.
ALTER TABLE requests ADD COLUMN optimization_id VARCHAR;
