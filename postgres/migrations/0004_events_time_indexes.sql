-- 0004: btree indexes for the created-time and per-source queries on 10M
-- events (docs/performance.md, "PostgreSQL: statistics on 10M events").
--
-- create_time: 0001 had a BRIN index, which stays lossy (about 120 pages
-- per partition were read for any range, since the newest range of every
-- partition is not summarized) and must be probed in every partition, as a
-- created-time window can hold events of any receive day. The raw edges of
-- retrieveLatLonAttacks (the last 24 h by create time) took 400-700 ms on
-- 10M events; with a btree each partition costs one index descent.
--
-- (src_ip, create_time) replaces (src_ip): querySingleIP asks for the
-- newest events of one source by create time; with src_ip alone a busy
-- source (1.2M events on the benchmark data) was read and sorted whole
-- (2.8 s). Lookups by src_ip alone (event search, blocklists) use the
-- leading column as before.
DROP INDEX events_created_idx;
CREATE INDEX events_created_idx ON events (create_time);
DROP INDEX events_src_ip_idx;
CREATE INDEX events_src_ip_idx ON events (src_ip, create_time);
