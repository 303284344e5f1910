-- 0004: the source index (docs/performance.md, "Statistics endpoints").
--
-- Source index (Latest of one source address, querySingleIP): for each
-- source key and domain, the range of the create times of its events, the
-- last receive time (for retention), and the newest 16 distinct hours of
-- the create times (hour numbers since 1970; all_hours: they are all of
-- them). The key is the IPv4 address as a number; every other valid
-- address shares the key 2^32 (sources are IPv4 but for a few), and events
-- without a source have none. The index only narrows the scan of events,
-- so it may say more than the events (after retention; several rows of one
-- key are combined): a key without a row has no events at all. src_index
-- is sorted by key, so that zone maps find a key in one row group; rows of
-- newer events go to src_index_tail, which duckdb/srcindex.go merges into
-- src_index when it grows.
CREATE TABLE src_index (
    src           UBIGINT   NOT NULL,
    community     BOOLEAN   NOT NULL,
    first_created TIMESTAMP NOT NULL,
    last_created  TIMESTAMP NOT NULL,
    last_received TIMESTAMP NOT NULL,
    hours         INTEGER[] NOT NULL,
    all_hours     BOOLEAN   NOT NULL
);
-- The tail has one row per key, domain and hour of each append: a scalar
-- hour costs the appender half as much as a list.
CREATE TABLE src_index_tail (
    src           UBIGINT   NOT NULL,
    community     BOOLEAN   NOT NULL,
    first_created TIMESTAMP NOT NULL,
    last_created  TIMESTAMP NOT NULL,
    last_received TIMESTAMP NOT NULL,
    hour          INTEGER   NOT NULL
);
-- The hours of each source first (ordered by key, so that zone maps
-- select the key ranges below), then 16 of them per source with
-- max(h, 16). Aggregating lists of all hours, or all sources in one
-- statement, ran out of the 256 MB memory limit on 10M events; so do the
-- key ranges of 2^28 (about 65k sources each on the benchmark data).
CREATE TEMP TABLE src_hours_0004 AS
SELECT CASE WHEN regexp_full_match(src_ip, '[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}')
            THEN (split_part(src_ip, '.', 1)::UBIGINT << 24) + (split_part(src_ip, '.', 2)::UBIGINT << 16)
               + (split_part(src_ip, '.', 3)::UBIGINT << 8) + split_part(src_ip, '.', 4)::UBIGINT
            ELSE 4294967296 END AS src,
       community, (epoch_us(date_trunc('hour', create_time)) // 3600000000)::INTEGER AS h,
       min(create_time) AS fc, max(create_time) AS lc, max(received_time) AS lr
FROM events WHERE src_ip <> '' GROUP BY ALL ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 0 AND src < 268435456 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 268435456 AND src < 536870912 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 536870912 AND src < 805306368 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 805306368 AND src < 1073741824 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 1073741824 AND src < 1342177280 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 1342177280 AND src < 1610612736 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 1610612736 AND src < 1879048192 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 1879048192 AND src < 2147483648 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 2147483648 AND src < 2415919104 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 2415919104 AND src < 2684354560 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 2684354560 AND src < 2952790016 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 2952790016 AND src < 3221225472 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 3221225472 AND src < 3489660928 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 3489660928 AND src < 3758096384 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 3758096384 AND src < 4026531840 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 4026531840 AND src < 4294967296 GROUP BY src, community ORDER BY src;
INSERT INTO src_index SELECT src, community, min(fc), max(lc), max(lr), max(h, 16), count(*) <= 16 FROM src_hours_0004
    WHERE src >= 4294967296 GROUP BY src, community ORDER BY src;
DROP TABLE src_hours_0004;
