-- 0003: the long tails of the received-time day rollup in a table of their
-- own, peer types by created day and a per-day sensor rollup
-- (docs/performance.md, "Statistics endpoints").
--
-- 0002 kept all dims of a time field in one table. A query reads every row
-- of its time range whatever the dim (zone maps prune on t, not on dim,
-- once the upserts have interleaved the dims), so the few day rows of peer
-- types and countries were read together with the long tails of URLs (1.1M
-- day rows on 10M events) and ports (0.85M). The day rows of URLs and ports
-- now have a table of their own. The hour rows stay together: a query
-- reads at most the 46 hours at the edges of its whole days, and each
-- table costs an upsert per append (about 1.5 ms). The layout of every
-- table is 0002's, and duckdb/rollups.go lists which dims each one holds.
CREATE TABLE rollup_tail_day (
    t TIMESTAMP NOT NULL, dim UTINYINT NOT NULL, community BOOLEAN NOT NULL, peer_type VARCHAR NOT NULL,
    k VARCHAR NOT NULL, l VARCHAR NOT NULL, lat DOUBLE NOT NULL, lon DOUBLE NOT NULL, cnt BIGINT NOT NULL);
-- Peer types by created day: the month-wide datasets (datasetAlertsPerMonth,
-- datasetAlertTypesPerMonth) read 24x fewer rows than from the hours, which
-- also hold the source locations (2.4M rows on 10M events).
CREATE TABLE rollup_created_day (
    t TIMESTAMP NOT NULL, dim UTINYINT NOT NULL, community BOOLEAN NOT NULL, peer_type VARCHAR NOT NULL,
    k VARCHAR NOT NULL, l VARCHAR NOT NULL, lat DOUBLE NOT NULL, lon DOUBLE NOT NULL, cnt BIGINT NOT NULL);
INSERT INTO rollup_tail_day SELECT * FROM rollup_recv_day WHERE dim IN (7, 8) ORDER BY dim, t;
INSERT INTO rollup_created_day
SELECT date_trunc('day', t), dim, community, peer_type, k, l, lat, lon, sum(cnt)
FROM rollup_created_hour WHERE dim = 1 GROUP BY ALL ORDER BY 1;

-- The remaining day rows are rewritten rather than deleted in place, so
-- that they fill few row groups, ordered by time.
CREATE TABLE rollup_recv_day_0003 AS SELECT * FROM rollup_recv_day WHERE dim IN (1, 3, 4) ORDER BY t, dim;
DELETE FROM rollup_recv_day;
INSERT INTO rollup_recv_day SELECT * FROM rollup_recv_day_0003;
DROP TABLE rollup_recv_day_0003;

-- Sensors (TpotStats, getStats): events per received day, domain and
-- (h, ip, peer_ident, peer_type), where h and ip are the group of
-- peba.Stats.Sensors: the hostname, or '' and the target address when the
-- hostname is '' or PEBA's default 'undefined'.
CREATE TABLE rollup_sensor_day (
    t          TIMESTAMP NOT NULL,
    community  BOOLEAN   NOT NULL,
    h          VARCHAR   NOT NULL,
    ip         VARCHAR   NOT NULL,
    peer_ident VARCHAR   NOT NULL,
    peer_type  VARCHAR   NOT NULL,
    cnt        BIGINT    NOT NULL
);
INSERT INTO rollup_sensor_day
SELECT date_trunc('day', received_time), community,
       CASE WHEN hostname IN ('', 'undefined') THEN '' ELSE hostname END,
       CASE WHEN hostname IN ('', 'undefined') THEN dst_ip ELSE '' END,
       peer_ident, peer_type, count(*)
FROM events GROUP BY ALL ORDER BY 1;
