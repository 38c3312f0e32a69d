-- What each deployed change really saved, measured every night after its deployment, beside
-- its forecast: the forecast error of every night stays on record.
CREATE TABLE realized_savings (
    run_id VARCHAR NOT NULL,
    measured_until TIMESTAMPTZ NOT NULL,
    optimization_id VARCHAR NOT NULL,
    application_id VARCHAR NOT NULL,
    realized_monthly_savings_usd DOUBLE NOT NULL,
    forecast_monthly_savings_usd DOUBLE NOT NULL,
    forecast_error_usd DOUBLE NOT NULL,
    record VARCHAR NOT NULL,
    PRIMARY KEY (run_id, optimization_id)
);
