-- 0006: source addresses by received hour, and covering key indexes for the
-- target ports (docs/performance.md, "PostgreSQL: statistics endpoints").
--
-- 1. rollup_recv_hour gets dim 2, source address (k = events.src_ip, the
--    address text as stored), so that retrieveIPs (the last two hours,
--    ~26,000 events and 7,000 addresses on the 10M-event benchmark) reads
--    two or three hour buckets of ~5,300 rows and at most half an hour of
--    raw events instead of every event of the two hours. Only by hour: a
--    day holds nearly as many addresses as events. h as in rollups.go
--    (rollupKey.hash): SHA-256 over '' NUL k NUL '' NUL and 16 zero bytes.
-- 2. The key indexes of the target-port partitions (0005) cover the
--    columns Series and topBounded's exact counts read (community, k,
--    cnt), so that a week of hour rows of the top ten ports
--    (tops?type=destports&days=7: ~3,400 rows of both domains) is an
--    index-only scan instead of one heap page per row. The queries name
--    the dim's partition (stats.go): through the parent, "dim = 8" would
--    need the heap. Only ports: a URL (k of dim 7) can be longer than a
--    btree entry (about 2.7 kB). Rows of finished hours are not updated
--    any more, so vacuum marks their pages all-visible.
--
-- Every node must run a binary that knows this migration (older nodes
-- would not count the addresses): stop all nodes, start one new node (it
-- migrates), then the rest.

CREATE TABLE rollup_recv_hour_d2 PARTITION OF rollup_recv_hour FOR VALUES IN (2);
INSERT INTO rollup_recv_hour
SELECT date_trunc('hour', received_time), 2, community,
       encode(substring(sha256('\x00'::bytea || convert_to(src_ip, 'UTF8') || '\x0000'::bytea
                               || '\x00000000000000000000000000000000'::bytea) FROM 1 FOR 16), 'hex')::uuid,
       0, '', src_ip, '', 0, 0, count(*)
FROM events GROUP BY 1, 3, src_ip ORDER BY 1;

DROP INDEX rollup_recv_hour_d8_key;
CREATE INDEX rollup_recv_hour_d8_key ON rollup_recv_hour_d8 (h, t) INCLUDE (community, k, cnt);
DROP INDEX rollup_recv_day_d8_key;
CREATE INDEX rollup_recv_day_d8_key ON rollup_recv_day_d8 (h, t) INCLUDE (community, k, cnt);
