-- 0001: the whole PostgreSQL schema of peba (issue 5): events partitioned
-- by receive day, the event id register, rollups, payloads, payload bytes,
-- users and the cross-node live feed table.
--
-- Conventions (postgres.go explains why):
--   * every text column is COLLATE "C": comparisons and ORDER BY are in byte
--     order, as the Store and Stats contracts require, whatever the
--     database's default collation is;
--   * text values are stored with NUL and U+0001 escaped (escText), because
--     PostgreSQL text cannot hold NUL while the domain accepts it;
--   * times are TIMESTAMP (without time zone) holding UTC, microseconds, so
--     that date_trunc and partition bounds never depend on the session's
--     TimeZone;
--   * no foreign keys, triggers or exotic types, so the schema distributes
--     on Citus (docs/deployment.md).

-- events: one row per stored event, partitioned by receive day. Partitions
-- (events_pYYYYMMDD, one UTC day each) are created on demand by AppendEvents
-- and dropped by DeleteEventsBefore. There is no unique index on id: a
-- unique index on a partitioned table must contain the partition key, and a
-- resend arrives on a later day. event_ids below makes ids unique instead.
CREATE TABLE events (
    id               TEXT COLLATE "C" NOT NULL,
    community        BOOLEAN          NOT NULL, -- peba.DomainCommunity; false = private
    submitter        TEXT COLLATE "C" NOT NULL,
    origin           TEXT COLLATE "C" NOT NULL,
    received_time    TIMESTAMP        NOT NULL, -- UTC, microseconds
    create_time      TIMESTAMP        NOT NULL, -- UTC, microseconds
    peer_ident       TEXT COLLATE "C" NOT NULL,
    peer_type        TEXT COLLATE "C" NOT NULL,
    sensor_uuid      TEXT COLLATE "C" NOT NULL,
    hostname         TEXT COLLATE "C" NOT NULL,
    external_ip      TEXT COLLATE "C" NOT NULL,
    internal_ip      TEXT COLLATE "C" NOT NULL,
    src_ip           TEXT COLLATE "C" NOT NULL, -- netip.Addr.String(), '' if invalid
    src_port         INTEGER,                   -- NULL = peba.NoPort
    dst_ip           TEXT COLLATE "C" NOT NULL,
    dst_port         INTEGER,
    transport        TEXT COLLATE "C" NOT NULL,
    url              TEXT COLLATE "C" NOT NULL,
    vuln_id          TEXT COLLATE "C" NOT NULL,
    username         TEXT COLLATE "C" NOT NULL,
    password         TEXT COLLATE "C" NOT NULL,
    login            TEXT COLLATE "C" NOT NULL,
    client_version   TEXT COLLATE "C" NOT NULL,
    session_start    TEXT COLLATE "C" NOT NULL,
    session_end      TEXT COLLATE "C" NOT NULL,
    raw_http         TEXT COLLATE "C" NOT NULL,
    payload_md5      TEXT COLLATE "C" NOT NULL,
    additional_data  TEXT             NOT NULL, -- JSON array of {"k","v"}, in order (text, not jsonb: jsonb refuses \u0000)
    fields           TEXT             NOT NULL,
    requests         TEXT             NOT NULL,
    src_country      TEXT COLLATE "C" NOT NULL,
    src_country_name TEXT COLLATE "C" NOT NULL,
    src_asn          TEXT COLLATE "C" NOT NULL,
    src_lat          DOUBLE PRECISION NOT NULL,
    src_lon          DOUBLE PRECISION NOT NULL,
    dst_country      TEXT COLLATE "C" NOT NULL,
    dst_country_name TEXT COLLATE "C" NOT NULL,
    dst_asn          TEXT COLLATE "C" NOT NULL,
    dst_lat          DOUBLE PRECISION NOT NULL,
    dst_lon          DOUBLE PRECISION NOT NULL
) PARTITION BY RANGE (received_time);

-- Partitioned indexes: every partition gets them. received_time serves
-- windows, Latest and paging (events arrive in nearly receive order, so the
-- btree grows at its right edge); create_time is nearly sorted too, so a
-- BRIN index (a few pages per partition) prunes created-time windows;
-- src_ip serves querySingleIP and Latest by source. Lookups by id go
-- through event_ids, which gives the partition.
CREATE INDEX events_received_idx ON events (received_time);
CREATE INDEX events_created_idx ON events USING brin (create_time);
CREATE INDEX events_src_ip_idx ON events (src_ip);

-- event_ids: which ids are stored, and when they were received (so an id
-- finds its partition). AppendEvents inserts the batch's ids here first with
-- ON CONFLICT DO NOTHING RETURNING id: the returned ids are the new events.
-- Two nodes inserting the same id concurrently are serialized by the
-- primary key, so each id is stored once. Retention deletes old ids.
CREATE TABLE event_ids (
    id            TEXT COLLATE "C" PRIMARY KEY,
    received_time TIMESTAMP NOT NULL
);
CREATE INDEX event_ids_received_idx ON event_ids (received_time);

-- Rollups, as in the DuckDB store (duckdb/migrations/0002_rollups.sql):
-- event counts per time bucket t (UTC start of the hour or day), dim
-- (numeric peba.Dim), domain and, for dims 1 and 7, peer type. Key values
-- that do not apply are '' and 0; locations are stored +0 for -0.
--   1 peer type (k = peer_type; these rows also give the totals)
--   3 source country (k = code, l = name)   4 target country
--   5 source location (lat, lon)            6 target location
--   7 url (k)                               8 target port (k = decimal or '')
-- h identifies (peer_type, k, l, lat, lon): the first 16 bytes of a SHA-256
-- computed in Go (rollups.go, rollupKey.hash). The key columns themselves
-- cannot be in the primary key: a URL can be longer than a btree entry
-- (about 2.7 kB).
--
-- shard: a key's count may be split over several rows, one per shard, and
-- readers sum them. Every batch increments the same few rows (this hour's
-- peer types, countries, ports), so with one row per key the appends of
-- several nodes would wait for each other's commits on those rows; each
-- append instead claims a shard no running append holds (an advisory lock,
-- rollups.go) and updates only that shard's rows. One writer always gets
-- shard 0, so rows multiply only with real concurrency.
CREATE TABLE rollup_recv_hour (
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
);
CREATE TABLE rollup_recv_day (LIKE rollup_recv_hour INCLUDING ALL);
CREATE TABLE rollup_created_hour (LIKE rollup_recv_hour INCLUDING ALL);

-- payloads: PEBA's "payloads" index (peba.md §4.10, §5.3), as in the DuckDB
-- store. key is the first 16 bytes of SHA-256(md5) (payloads.go): the md5
-- text comes from sensors and imports and may be longer than a btree entry.
-- fuzzy_count is derived at read time from the rows sharing fuzzy_hash; the
-- expression index finds them (md5() only narrows; the query compares the
-- text too).
CREATE TABLE payloads (
    key               UUID             PRIMARY KEY,
    md5               TEXT COLLATE "C" NOT NULL,
    fuzzy_hash        TEXT COLLATE "C" NOT NULL, -- '' while unknown
    mime              TEXT COLLATE "C" NOT NULL,
    size              BIGINT           NOT NULL,
    first_seen        TIMESTAMP        NOT NULL, -- min(create_time), fixes B-28
    last_seen         TIMESTAMP        NOT NULL, -- max(create_time), fixes B-28
    md5_count         BIGINT           NOT NULL,
    initial_ip        TEXT COLLATE "C" NOT NULL,
    initial_dest_port INTEGER                    -- NULL = peba.NoPort
);
CREATE INDEX payloads_fuzzy_idx ON payloads (md5(fuzzy_hash));

-- payload_data: payload bytes shared by all nodes (Store.Put/Get), the
-- multi-node replacement of the blobstore directory.
CREATE TABLE payload_data (
    md5  TEXT COLLATE "C" PRIMARY KEY,
    data BYTEA NOT NULL
);

-- users: PEBA's "users" index (peba.md §5.5).
CREATE TABLE users (
    name           TEXT COLLATE "C" PRIMARY KEY,
    token_hash     TEXT COLLATE "C" NOT NULL,
    email          TEXT COLLATE "C" NOT NULL,
    get_only       BOOLEAN          NOT NULL,
    community_only BOOLEAN          NOT NULL,
    created        TIMESTAMP        NOT NULL
);

-- live_feed: the cross-node live feed. Every AppendEvents transaction that
-- inserts events adds one row (JSON array of the inserted events, see
-- feed.go) and sends NOTIFY peba_live_feed with the row's seq, in the same
-- transaction: a committed event reaches the feed exactly once, even if the
-- node dies right after the commit. Nodes LISTEN and read the rows; old rows
-- are pruned (PruneFeed). events holds the JSON as TEXT, not JSONB or JSON:
-- nothing queries inside it, and the value is always encoding/json output.
-- JSONB refuses \u0000 (which events may hold) and building its tree made
-- 10,000-event appends 1.7x slower; JSON still parses every row to check it
-- (about 90 ms per 8 MB row, measured). Cast to json to look inside.
CREATE TABLE live_feed (
    seq     BIGSERIAL   PRIMARY KEY,
    created TIMESTAMPTZ NOT NULL DEFAULT now(),
    events  TEXT        NOT NULL
);
-- A 10,000-event row is about 8 MB of JSON: lz4 stores it 2-8x faster than
-- the default pglz (14-52 ms against 108-120 ms per row, measured on a
-- loaded machine), compressed to 1/8 (pglz: 1/9). A server built without
-- lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE live_feed ALTER COLUMN events SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$;
CREATE INDEX ON live_feed (created);
