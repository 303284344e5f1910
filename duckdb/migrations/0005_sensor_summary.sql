-- 0005: per-day summaries of Sensors (TpotStats, getStats), written and
-- validated by duckdb/sensorsum.go. A day of rollup_sensor_day has one row
-- per group, identifier and type (44k on the benchmark data); its summary
-- is one row per domain holding the day's groups (600), each with its
-- distinct identifiers and types, sorted, encoded by encodeSensorGroups.
-- IF NOT EXISTS: the rollup tests re-apply the migrations from 0002 on over
-- kept tables.
CREATE TABLE IF NOT EXISTS sensor_summary (
    t           TIMESTAMP NOT NULL, -- received day
    community   BOOLEAN   NOT NULL,
    event_count BIGINT    NOT NULL, -- the day's events when summarized
    key_count   BIGINT    NOT NULL, -- its rollup_sensor_day rows then
    groups      BLOB      NOT NULL
);
-- Incremented by every retention run: a summary computed before one is not
-- written.
CREATE TABLE IF NOT EXISTS sensor_summary_epoch (n BIGINT NOT NULL);
INSERT INTO sensor_summary_epoch SELECT 0 WHERE NOT EXISTS (SELECT * FROM sensor_summary_epoch);
