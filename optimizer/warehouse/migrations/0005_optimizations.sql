-- Optimizations: each application's routing change from a nightly finding through approval
-- and its experiment to deployment, one row each, updated as it moves; the whole record as
-- JSON beside the columns it is looked up by.
CREATE TABLE optimizations (
    optimization_id VARCHAR PRIMARY KEY,
    application_id VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    experiment_id VARCHAR,
    updated_at TIMESTAMPTZ NOT NULL,
    record VARCHAR NOT NULL
);
