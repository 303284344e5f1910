-- 0007: the retention epoch of the statistics memo (memo.go).
--
-- A node remembers what it read for stable parts of statistics windows
-- (whole hours, minutes of raw events, whole days of sensors), keyed by the
-- number of events the rollups count in that part, which every append that
-- reaches into it increases in its own transaction. Only retention removes
-- events; it increases this epoch in its transaction, and every memo key
-- includes it. One row.
--
-- Every node must run a binary that knows this migration (an older node's
-- retention would not increase the epoch): stop all nodes, start one new
-- node (it migrates), then the rest.

CREATE TABLE stats_epoch (
    id    BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    epoch BIGINT  NOT NULL
);
INSERT INTO stats_epoch (id, epoch) VALUES (true, 0);

-- The sizes of the sensor rollup's sets (cardinality of peer_idents plus
-- peer_types), which only grow while a day's events are appended: their
-- sum over a day's rows changes exactly when one of the day's sets does,
-- so that a node keeps a day's sets in its memo while the day's counts
-- still change (getStats of today) and reads only the counts.
ALTER TABLE rollup_sensor_day ADD COLUMN nsets INTEGER NOT NULL DEFAULT 0;
UPDATE rollup_sensor_day SET nsets = cardinality(peer_idents) + cardinality(peer_types);
-- The sets' sizes of a day from the index alone (once vacuum has marked a
-- past day's pages all-visible); updates that change only cnt stay HOT.
CREATE INDEX rollup_sensor_day_nsets ON rollup_sensor_day (t) INCLUDE (nsets);

-- The versions the memo reads with every request (memo.go): the event
-- counts of a window's hours and minutes, from the index alone for hours
-- that vacuum has marked all-visible (a day of hours of peer types is
-- ~1,000 rows: 1.5 ms with the heap, the most of a request's database time).
CREATE INDEX rollup_recv_hour_d1_cnt ON rollup_recv_hour_d1 (t) INCLUDE (cnt);
CREATE INDEX rollup_created_hour_d1_cnt ON rollup_created_hour_d1 (t) INCLUDE (cnt);
CREATE INDEX rollup_recv_minute_d0_cnt ON rollup_recv_minute_d0 (t) INCLUDE (cnt);
CREATE INDEX rollup_recv_day_d1_cnt ON rollup_recv_day_d1 (t) INCLUDE (cnt);
