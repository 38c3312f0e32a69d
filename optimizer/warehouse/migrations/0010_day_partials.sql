-- The analyses' per-day partial results a night keeps (optimizer/warehouse/day_partials.py):
-- for each kept day of each partial's table, the key it was computed under (the query's
-- version and the fingerprints of the days it read). The tables themselves are made on first
-- use, one per partial and version; all of them are derived, and dropping them loses nothing.
CREATE TABLE day_partials (
    partial VARCHAR NOT NULL,
    day INTEGER NOT NULL,
    fingerprint VARCHAR NOT NULL,
    PRIMARY KEY (partial, day)
);
