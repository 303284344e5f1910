-- 0001: events, payloads, users.
--
-- events has no PRIMARY KEY or UNIQUE index on purpose: an ART index over
-- millions of random md5 ids costs ingest speed and memory
-- (storage-bakeoff.md note 8). AppendEvents de-duplicates by looking ids up
-- in the create_time range of the batch, which zone maps prune.
CREATE TABLE events (
    id               VARCHAR   NOT NULL,
    community        BOOLEAN   NOT NULL, -- peba.DomainCommunity; false = private
    submitter        VARCHAR   NOT NULL,
    origin           VARCHAR   NOT NULL,
    received_time    TIMESTAMP NOT NULL, -- UTC, microseconds
    create_time      TIMESTAMP NOT NULL, -- UTC, microseconds
    peer_ident       VARCHAR   NOT NULL,
    peer_type        VARCHAR   NOT NULL,
    sensor_uuid      VARCHAR   NOT NULL,
    hostname         VARCHAR   NOT NULL,
    external_ip      VARCHAR   NOT NULL,
    internal_ip      VARCHAR   NOT NULL,
    src_ip           VARCHAR   NOT NULL, -- netip.Addr.String(), '' if invalid
    src_port         INTEGER,            -- NULL = peba.NoPort
    dst_ip           VARCHAR   NOT NULL,
    dst_port         INTEGER,
    transport        VARCHAR   NOT NULL,
    url              VARCHAR   NOT NULL,
    vuln_id          VARCHAR   NOT NULL,
    username         VARCHAR   NOT NULL,
    password         VARCHAR   NOT NULL,
    login            VARCHAR   NOT NULL,
    client_version   VARCHAR   NOT NULL,
    session_start    VARCHAR   NOT NULL,
    session_end      VARCHAR   NOT NULL,
    raw_http         VARCHAR   NOT NULL,
    payload_md5      VARCHAR   NOT NULL,
    additional_data  VARCHAR   NOT NULL, -- JSON array of {"k","v"}, in order
    fields           VARCHAR   NOT NULL,
    requests         VARCHAR   NOT NULL,
    src_country      VARCHAR   NOT NULL,
    src_country_name VARCHAR   NOT NULL,
    src_asn          VARCHAR   NOT NULL,
    src_lat          DOUBLE    NOT NULL,
    src_lon          DOUBLE    NOT NULL,
    dst_country      VARCHAR   NOT NULL,
    dst_country_name VARCHAR   NOT NULL,
    dst_asn          VARCHAR   NOT NULL,
    dst_lat          DOUBLE    NOT NULL,
    dst_lon          DOUBLE    NOT NULL
);

-- payloads: PEBA's "payloads" index (peba.md §4.10, §5.3). fuzzy_count is not
-- stored: it is derived at read time from the md5_count of the rows sharing
-- fuzzy_hash, so it never drifts.
CREATE TABLE payloads (
    md5               VARCHAR   PRIMARY KEY,
    fuzzy_hash        VARCHAR   NOT NULL, -- '' while unknown
    mime              VARCHAR   NOT NULL,
    size              BIGINT    NOT NULL,
    first_seen        TIMESTAMP NOT NULL, -- min(create_time), fixes B-28
    last_seen         TIMESTAMP NOT NULL, -- max(create_time), fixes B-28
    md5_count         BIGINT    NOT NULL,
    initial_ip        VARCHAR   NOT NULL,
    initial_dest_port INTEGER              -- NULL = peba.NoPort
);

-- users: PEBA's "users" index (peba.md §5.5).
CREATE TABLE users (
    name           VARCHAR   PRIMARY KEY,
    token_hash     VARCHAR   NOT NULL,
    email          VARCHAR   NOT NULL,
    get_only       BOOLEAN   NOT NULL,
    community_only BOOLEAN   NOT NULL,
    created        TIMESTAMP NOT NULL
);
