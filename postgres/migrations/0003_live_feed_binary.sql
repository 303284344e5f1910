-- 0003: live_feed.events holds the binary feed encoding (format 1,
-- postgres/feedcodec.go) instead of JSON text: decoding JSON took a quarter
-- of a node's CPU, since every node decodes every event of the cluster
-- (docs/performance.md). Rows written before (JSON) keep their bytes and
-- still decode. lz4 as in 0001.
ALTER TABLE live_feed ALTER COLUMN events TYPE BYTEA USING convert_to(events, 'UTF8');
DO $$
BEGIN
    ALTER TABLE live_feed ALTER COLUMN events SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$;
