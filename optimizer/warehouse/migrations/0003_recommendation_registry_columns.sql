-- Each adopted recommendation's id in the Registry and what it saves a month, in columns of
-- their own: until now they were kept only inside the nightly run's summary (JSON), which the
-- rollout parsed back. Runs already recorded are filled in from their summaries; a result the
-- run did not adopt has neither.
ALTER TABLE recommendations ADD COLUMN registry_recommendation_id VARCHAR;
ALTER TABLE recommendations ADD COLUMN monthly_savings_usd DOUBLE;

UPDATE recommendations AS r
SET registry_recommendation_id = adopted.recommendation_id,
    monthly_savings_usd = adopted.monthly_savings_usd
FROM (
    SELECT run_id, unnest(from_json(summary -> '$.recommendations',
        '[{"recommendation_id": "VARCHAR", "kind": "VARCHAR", "application_id": "VARCHAR",
           "monthly_savings_usd": "DOUBLE"}]'), recursive := true)
    FROM optimization_runs
) AS adopted
WHERE adopted.run_id = r.run_id
  AND adopted.application_id = r.application_id
  AND adopted.kind = CASE r.kind WHEN 'cascade' THEN 'model_cascade' WHEN 'compression' THEN 'prompt_compression' END;
