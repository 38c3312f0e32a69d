-- The request record (docs/request-record.md), one row per request, stored once per request_id.
-- No primary key: loads deduplicate with a bounded anti-join, which is several times faster
-- than a unique index at this volume and keeps the file small.
CREATE TABLE requests (
    request_id VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    application_id VARCHAR NOT NULL,
    team_id VARCHAR,
    environment VARCHAR,
    provider VARCHAR,
    model VARCHAR NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_usd DOUBLE NOT NULL,
    latency_ms DOUBLE NOT NULL,
    status VARCHAR NOT NULL,
    quality_score DOUBLE,
    task_type VARCHAR,
    complexity VARCHAR,
    experiment_id VARCHAR,
    variant_id VARCHAR,
    pair_id VARCHAR,
    shadow BOOLEAN NOT NULL,
    confidence_score DOUBLE,
    escalated BOOLEAN,
    compression_technique VARCHAR,
    original_prompt_tokens BIGINT,
    load_id VARCHAR NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
);

-- Rows that broke a rule of the contract, kept whole with every reason found.
CREATE TABLE quarantine (
    load_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    request_id VARCHAR,
    reason VARCHAR NOT NULL,
    raw_record VARCHAR NOT NULL,
    row_hash VARCHAR NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL
);

-- One row per committed load, with what it did.
CREATE TABLE loads (
    load_id VARCHAR PRIMARY KEY,
    source VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    rows_in BIGINT NOT NULL,
    loaded BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    window_start TIMESTAMPTZ,
    window_end TIMESTAMPTZ
);

-- The model catalog with list prices, as the Registry (or the shipped catalog) describes it.
CREATE TABLE models (
    model_id VARCHAR PRIMARY KEY,
    model_name VARCHAR,
    provider VARCHAR,
    status VARCHAR,
    input_cost_per_1k DOUBLE NOT NULL,
    output_cost_per_1k DOUBLE NOT NULL,
    profile JSON NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Governance's daily spend, one row per day, dimension (team, model, ...) and key.
CREATE TABLE cost_summaries (
    day DATE NOT NULL,
    dimension VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    label VARCHAR,
    cost_usd DOUBLE NOT NULL,
    requests BIGINT,
    tokens BIGINT,
    percentage DOUBLE,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (day, dimension, key)
);

-- Experiments known to the Registry, with their planned traffic allocation.
CREATE TABLE experiments (
    experiment_id VARCHAR PRIMARY KEY,
    experiment_type VARCHAR,
    status VARCHAR,
    application_id VARCHAR,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    traffic_allocation JSON,
    definition JSON NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Recommendations the optimizer made (cascade, compression, experiment decisions).
CREATE TABLE recommendations (
    recommendation_id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    application_id VARCHAR,
    decision VARCHAR,
    run_id VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    payload JSON NOT NULL
);

-- Routing changes proposed to the Orchestrator and what became of them.
CREATE TABLE rollouts (
    rollout_id VARCHAR PRIMARY KEY,
    status VARCHAR NOT NULL,
    proposed_version VARCHAR,
    previous_version VARCHAR,
    flow_run_id VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    evidence JSON
);

-- Who did what, when: approvals, applied and restored versions, loads.
CREATE TABLE audit_log (
    event_id VARCHAR PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    subject VARCHAR,
    details JSON
);

-- How far each source has been extracted: the end of the last loaded window.
CREATE TABLE watermarks (
    source VARCHAR PRIMARY KEY,
    high_water TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
