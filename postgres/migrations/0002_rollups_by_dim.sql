-- 0002: rollups laid out for the statistics queries on 10M events
-- (docs/performance.md, "PostgreSQL: statistics on 10M events").
--
-- 1. The rollup tables are partitioned by dim. In 0001 the rows of all dims
--    of a table were interleaved in one heap and one primary key that starts
--    with t, so "dim = 1 AND t in a month" read every row of the month: the
--    ~25k peer-type rows of rollup_created_hour together with its ~700k
--    source-location rows (1M events), 110-130 ms. Each dim now has its own
--    partition, which the constant "dim = N" of every query selects at plan
--    time, and in it the primary key (t, ...) is a range scan over that
--    dim's rows only, stored in time order. Columns, keys and the upserts
--    (ON CONFLICT on the primary key, which contains the partition key) are
--    unchanged.
-- 2. rollup_created_day: peer types by create day, for the month-wide
--    datasetAlertsPerMonth and datasetAlertTypesPerMonth (24x fewer rows
--    than the hours).
-- 3. rollup_recv_minute: totals (dim 0, no peer type) per received minute
--    and domain, so that Count of a window that is not aligned to hours
--    (retrieveAlertStats: the last 24 h, hour, 5 min, minute) reads at most
--    two partial minutes of raw events instead of up to two partial hours.
-- 4. rollup_sensor_day: the sensor groups of peba.Stats.Sensors per received
--    day and domain (TpotStats, getStats), with the distinct peer idents
--    and peer types as arrays, instead of a scan of a day of raw events.
--
-- Every node must run a binary that knows this migration (0001's nodes
-- write the old tables): stop all nodes, start one new node (it migrates,
-- the others wait for its lock), then the rest.

DO $$
DECLARE
    tbl  TEXT;
    dims INT[];
    d    INT;
BEGIN
    FOR tbl, dims IN VALUES
        ('rollup_recv_hour', ARRAY[1, 3, 4, 7, 8]),
        ('rollup_recv_day', ARRAY[1, 3, 4, 7, 8]),
        ('rollup_created_hour', ARRAY[1, 5, 6])
    LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, tbl || '_0001');
        EXECUTE format('ALTER INDEX %I RENAME TO %I', tbl || '_pkey', tbl || '_0001_pkey');
        EXECUTE format($f$CREATE TABLE %I (
            t         TIMESTAMP        NOT NULL,
            dim       SMALLINT         NOT NULL,
            community BOOLEAN          NOT NULL,
            h         UUID             NOT NULL,
            shard     SMALLINT         NOT NULL,
            peer_type TEXT COLLATE "C" NOT NULL,
            k         TEXT COLLATE "C" NOT NULL,
            l         TEXT COLLATE "C" NOT NULL,
            lat       DOUBLE PRECISION NOT NULL,
            lon       DOUBLE PRECISION NOT NULL,
            cnt       BIGINT           NOT NULL,
            PRIMARY KEY (t, dim, community, h, shard)
        ) PARTITION BY LIST (dim)$f$, tbl);
        FOREACH d IN ARRAY dims LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (%s)', tbl || '_d' || d, tbl, d);
        END LOOP;
        -- In time order, so that each partition's heap follows its key.
        EXECUTE format('INSERT INTO %I SELECT * FROM %I ORDER BY dim, t', tbl, tbl || '_0001');
        EXECUTE format('DROP TABLE %I', tbl || '_0001');
    END LOOP;
END $$;

-- Peer types (dim 1) by create day, summed from the hours (h does not
-- depend on the bucket).
CREATE TABLE rollup_created_day (LIKE rollup_created_hour INCLUDING ALL) PARTITION BY LIST (dim);
CREATE TABLE rollup_created_day_d1 PARTITION OF rollup_created_day FOR VALUES IN (1);
INSERT INTO rollup_created_day
SELECT date_trunc('day', t), dim, community, h, shard, peer_type, k, l, lat, lon, sum(cnt)::bigint
FROM rollup_created_hour WHERE dim = 1
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 ORDER BY 1;

-- Totals (dim 0) per received minute. The key is empty, so h is the hash
-- of the empty key (rollups.go, rollupKey.hash: three empty strings, each
-- followed by NUL, then 16 zero bytes for the coordinates).
CREATE TABLE rollup_recv_minute (LIKE rollup_created_hour INCLUDING ALL) PARTITION BY LIST (dim);
CREATE TABLE rollup_recv_minute_d0 PARTITION OF rollup_recv_minute FOR VALUES IN (0);
INSERT INTO rollup_recv_minute
SELECT date_trunc('minute', received_time), 0, community,
       encode(substring(sha256('\x000000'::bytea || '\x00000000000000000000000000000000'::bytea) FROM 1 FOR 16), 'hex')::uuid,
       0, '', '', '', 0, 0, count(*)
FROM events GROUP BY 1, 3 ORDER BY 1;

-- Sensors (peba.Stats.Sensors) per received day and domain. A group is
-- (host, ip): the hostname, or '' and the target address when the hostname
-- is '' or PEBA's default 'undefined' (as Sensors groups raw events). h is
-- the first 16 bytes of SHA-256(host || NUL || ip) (rollups.go,
-- sensorHash); shard as in the other rollups. peer_idents and peer_types
-- hold the distinct values of the shard row's events, sorted (in byte
-- order: the columns are COLLATE "C").
CREATE TABLE rollup_sensor_day (
    t           TIMESTAMP          NOT NULL,
    community   BOOLEAN            NOT NULL,
    h           UUID               NOT NULL,
    shard       SMALLINT           NOT NULL,
    host        TEXT COLLATE "C"   NOT NULL,
    ip          TEXT COLLATE "C"   NOT NULL,
    peer_idents TEXT[] COLLATE "C" NOT NULL,
    peer_types  TEXT[] COLLATE "C" NOT NULL,
    cnt         BIGINT             NOT NULL,
    PRIMARY KEY (t, community, h, shard)
);
INSERT INTO rollup_sensor_day
SELECT t, community,
       encode(substring(sha256(convert_to(host, 'UTF8') || '\x00'::bytea || convert_to(ip, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid,
       0, host, ip, array_agg(DISTINCT peer_ident), array_agg(DISTINCT peer_type), count(*)
FROM (SELECT date_trunc('day', received_time) AS t, community, peer_ident, peer_type,
             CASE WHEN hostname IN ('', 'undefined') THEN '' ELSE hostname END AS host,
             CASE WHEN hostname IN ('', 'undefined') THEN dst_ip ELSE '' END AS ip
      FROM events) e
GROUP BY t, community, host, ip ORDER BY t;
