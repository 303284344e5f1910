-- 0006: summaries of the long tails for Top and Series of URLs and ports
-- (/alert/tops), maintained by duckdb/tops_summary.go and read by
-- duckdb/topheavy.go (docs/performance.md, "Statistics endpoints").
--
-- A closed bucket (an hour before tops_state.done, a day that ends at or
-- before it) keeps in tops_hour or tops_day only the rows of its rollup
-- whose count is at least the summary's minimum: URL and port rows (dims 7
-- and 8) with cnt >= 2 of rollup_recv_hour, with cnt >= 4 of
-- rollup_tail_day (topsSummaries in tops_summary.go), and all its peer-type
-- rows (dim 1), one per cell (domain and peer type), which bound what the
-- rows left out can add. A day of ports and URLs has ~66k rollup rows on
-- 10M events, its summary a few hundred. Closed buckets whose rollup rows
-- changed since (late events, retention) are listed in tops_stale until
-- they are summarized again; readers take their rollup rows instead.
CREATE TABLE tops_hour (
    t TIMESTAMP NOT NULL, dim UTINYINT NOT NULL, community BOOLEAN NOT NULL, peer_type VARCHAR NOT NULL,
    k VARCHAR NOT NULL, cnt BIGINT NOT NULL);
CREATE TABLE tops_day (
    t TIMESTAMP NOT NULL, dim UTINYINT NOT NULL, community BOOLEAN NOT NULL, peer_type VARCHAR NOT NULL,
    k VARCHAR NOT NULL, cnt BIGINT NOT NULL);
CREATE TABLE tops_stale (t TIMESTAMP NOT NULL, day BOOLEAN NOT NULL);
-- One row; done is NULL while nothing is closed.
CREATE TABLE tops_state (done TIMESTAMP);

-- Existing data: the hours before the newest event's hour are closed.
INSERT INTO tops_state SELECT date_trunc('hour', max(received_time)) FROM events;
INSERT INTO tops_hour
SELECT t, dim, community, peer_type, k, cnt FROM rollup_recv_hour
WHERE t < (SELECT done FROM tops_state) AND (dim IN (7, 8) AND cnt >= 2 OR dim = 1) ORDER BY t;
INSERT INTO tops_day
SELECT * FROM (
    SELECT t, dim, community, peer_type, k, cnt FROM rollup_tail_day WHERE dim IN (7, 8) AND cnt >= 4
    UNION ALL
    SELECT t, dim, community, peer_type, k, cnt FROM rollup_recv_day WHERE dim = 1)
WHERE t < date_trunc('day', (SELECT done FROM tops_state)) ORDER BY t;
