-- 0005: indexes for Top and Series of the long-tail dims (topbounded.go):
-- target ports (dim 8) and URLs (dim 7) by received hour and day, source
-- locations (dim 5) by created hour; the other dims' partitions are small
-- enough to group whole.
--
-- *_top: the largest rows of a bucket first. A list is the rows of one
-- bucket, domain and peer type (untyped dims store ''), read in count
-- order. The keys of ports and locations are included, so that a list is
-- read from the index alone (once vacuum has marked the pages
-- all-visible); URLs are not, since a URL can be longer than a btree entry
-- (about 2.7 kB).
--
-- *_key: the rows of given keys in a time range (the exact counts of
-- Top's candidates, Series of the top keys), one range scan per key
-- instead of one descent of the primary key per key and bucket (1,600 for
-- a week of hours and ten ports: 10 ms).
CREATE INDEX rollup_recv_hour_d7_top ON rollup_recv_hour_d7 (t, community, peer_type, cnt DESC);
CREATE INDEX rollup_recv_day_d7_top ON rollup_recv_day_d7 (t, community, peer_type, cnt DESC);
CREATE INDEX rollup_recv_hour_d8_top ON rollup_recv_hour_d8 (t, community, peer_type, cnt DESC) INCLUDE (k, lat, lon);
CREATE INDEX rollup_recv_day_d8_top ON rollup_recv_day_d8 (t, community, peer_type, cnt DESC) INCLUDE (k, lat, lon);
CREATE INDEX rollup_created_hour_d5_top ON rollup_created_hour_d5 (t, community, peer_type, cnt DESC) INCLUDE (k, lat, lon);
CREATE INDEX rollup_recv_hour_d7_key ON rollup_recv_hour_d7 (h, t);
CREATE INDEX rollup_recv_day_d7_key ON rollup_recv_day_d7 (h, t);
CREATE INDEX rollup_recv_hour_d8_key ON rollup_recv_hour_d8 (h, t);
CREATE INDEX rollup_recv_day_d8_key ON rollup_recv_day_d8 (h, t);
CREATE INDEX rollup_created_hour_d5_key ON rollup_created_hour_d5 (h, t);
