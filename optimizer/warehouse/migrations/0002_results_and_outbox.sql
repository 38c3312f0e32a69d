-- One row per nightly run: its window and the summary the report was made from.
CREATE TABLE optimization_runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    window_start TIMESTAMPTZ,
    window_end TIMESTAMPTZ NOT NULL,
    summary JSON NOT NULL
);

-- Every analysis of a running experiment, night by night.
CREATE TABLE experiment_results (
    experiment_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    analyzed_at TIMESTAMPTZ NOT NULL,
    recommendation VARCHAR NOT NULL,
    winner VARCHAR,
    srm_detected BOOLEAN NOT NULL,
    payload JSON NOT NULL,
    PRIMARY KEY (experiment_id, run_id)
);

-- Events written with the results they announce and sent afterwards; an event stays
-- here, undelivered, until a sink has accepted it.
CREATE TABLE events_outbox (
    event_id VARCHAR PRIMARY KEY,
    type VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    subject VARCHAR,
    event_time TIMESTAMPTZ NOT NULL,
    data JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error VARCHAR,
    delivered_at TIMESTAMPTZ
);
