-- 0002: rollup tables (architecture.md "Storage"; storage-bakeoff.md
-- "Second pass: rollup tables"), and their backfill from existing events.
--
-- Each table counts events per time bucket (t: the UTC start of the hour or
-- day of one time column), dimension and domain, and for dims 1 and 7 per
-- peer type (the other dims store peer_type ''). dim is the
-- numeric peba.Dim whose value a row counts:
--   1 peer type (k = peer_type; these rows also give the totals)
--   3 source country (k = code, l = name)   4 target country
--   5 source location (lat, lon)            6 target location
--   7 url (k)                               8 target port (k = decimal or '')
-- Unused key columns hold '' and 0. Locations are stored +0 for -0 (x + 0),
-- so both zeros share a row. duckdb/rollups.go maintains the rows at append
-- time with the same keys; TestRollupsMatchRaw (checkBackfill) checks that
-- both agree.
--
-- The tables have no PRIMARY KEY: its ART index must fit in memory_limit
-- (the backfill of 1M events ran out of 256 MB with it), and the upsert
-- (MERGE INTO in rollups.go) finds the rows of its few recent buckets by
-- zone maps on t instead. Each key has at most one row because the one
-- writer connection is the only one that inserts.
--
-- Which dims each table holds follows the PEBA endpoints' windows
-- (http/pebaapi): received-time counts, types, countries, URLs and ports
-- over minutes to a month; created-time types per day and locations over a
-- day. The day table keeps month-wide scans ~24x shorter.

CREATE TABLE rollup_recv_hour (
    t         TIMESTAMP NOT NULL,
    dim       UTINYINT  NOT NULL,
    community BOOLEAN   NOT NULL,
    peer_type VARCHAR   NOT NULL,
    k         VARCHAR   NOT NULL,
    l         VARCHAR   NOT NULL,
    lat       DOUBLE    NOT NULL,
    lon       DOUBLE    NOT NULL,
    cnt       BIGINT    NOT NULL -- key: all other columns (see below)
);
CREATE TABLE rollup_recv_day (
    t         TIMESTAMP NOT NULL,
    dim       UTINYINT  NOT NULL,
    community BOOLEAN   NOT NULL,
    peer_type VARCHAR   NOT NULL,
    k         VARCHAR   NOT NULL,
    l         VARCHAR   NOT NULL,
    lat       DOUBLE    NOT NULL,
    lon       DOUBLE    NOT NULL,
    cnt       BIGINT    NOT NULL -- key: all other columns (see below)
);
CREATE TABLE rollup_created_hour (
    t         TIMESTAMP NOT NULL,
    dim       UTINYINT  NOT NULL,
    community BOOLEAN   NOT NULL,
    peer_type VARCHAR   NOT NULL,
    k         VARCHAR   NOT NULL,
    l         VARCHAR   NOT NULL,
    lat       DOUBLE    NOT NULL,
    lon       DOUBLE    NOT NULL,
    cnt       BIGINT    NOT NULL -- key: all other columns (see below)
);

-- One statement per dim keeps the backfill's memory within the store's
-- memory_limit; ORDER BY t stores each dim's rows in time order, which gives
-- the zone maps that let queries skip row groups outside their window.
INSERT INTO rollup_recv_hour SELECT date_trunc('hour', received_time), 1, community, peer_type, peer_type, '', 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_recv_hour SELECT date_trunc('hour', received_time), 3, community, '', src_country, src_country_name, 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_recv_hour SELECT date_trunc('hour', received_time), 4, community, '', dst_country, dst_country_name, 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_recv_hour SELECT date_trunc('hour', received_time), 7, community, peer_type, url, '', 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_recv_hour SELECT date_trunc('hour', received_time), 8, community, '', coalesce(CAST(dst_port AS VARCHAR), ''), '', 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_recv_day SELECT date_trunc('day', received_time), 1, community, peer_type, peer_type, '', 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_recv_day SELECT date_trunc('day', received_time), 3, community, '', src_country, src_country_name, 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_recv_day SELECT date_trunc('day', received_time), 4, community, '', dst_country, dst_country_name, 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_recv_day SELECT date_trunc('day', received_time), 7, community, peer_type, url, '', 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_recv_day SELECT date_trunc('day', received_time), 8, community, '', coalesce(CAST(dst_port AS VARCHAR), ''), '', 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_created_hour SELECT date_trunc('hour', create_time), 1, community, peer_type, peer_type, '', 0, 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_created_hour SELECT date_trunc('hour', create_time), 5, community, '', '', '', src_lat + 0, src_lon + 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
INSERT INTO rollup_created_hour SELECT date_trunc('hour', create_time), 6, community, '', '', '', dst_lat + 0, dst_lon + 0, count(*) FROM events GROUP BY ALL ORDER BY 1;
