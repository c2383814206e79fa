-- The lake core: events, catalog, crawls, loads. Portable between SQLite and Postgres:
-- TEXT keys, BIGINT counters, timestamps as RFC 3339 text, JSON documents as text.

CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    zone        TEXT NOT NULL,
    object_key  TEXT NOT NULL,
    etag        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    detail      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (kind, zone, object_key, etag)
);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE catalog_databases (
    name        TEXT PRIMARY KEY,
    domain      TEXT NOT NULL,
    layer       TEXT NOT NULL,
    location    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE catalog_tables (
    id              TEXT PRIMARY KEY,
    database_name   TEXT NOT NULL,
    name            TEXT NOT NULL,
    location        TEXT NOT NULL,
    format          TEXT NOT NULL,
    columns         TEXT NOT NULL,
    partition_keys  TEXT NOT NULL,
    parameters      TEXT NOT NULL,
    version         BIGINT NOT NULL,
    row_count       BIGINT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (database_name, name)
);

CREATE TABLE catalog_table_versions (
    table_id        TEXT NOT NULL,
    version         BIGINT NOT NULL,
    columns         TEXT NOT NULL,
    partition_keys  TEXT NOT NULL,
    reason          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (table_id, version)
);

CREATE TABLE catalog_partitions (
    table_id    TEXT NOT NULL,
    spec        TEXT NOT NULL,
    vals        TEXT NOT NULL,
    location    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (table_id, spec)
);

CREATE TABLE crawled_objects (
    zone        TEXT NOT NULL,
    object_key  TEXT NOT NULL,
    etag        TEXT NOT NULL,
    table_id    TEXT,
    outcome     TEXT NOT NULL,
    crawled_at  TEXT NOT NULL,
    PRIMARY KEY (zone, object_key)
);

CREATE TABLE crawls (
    id          TEXT PRIMARY KEY,
    scope       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    report      TEXT
);

CREATE TABLE loads (
    id              TEXT PRIMARY KEY,
    table_id        TEXT NOT NULL,
    mode            TEXT NOT NULL,
    source          TEXT NOT NULL,
    rows_written    BIGINT NOT NULL,
    rows_rejected   BIGINT NOT NULL,
    table_version   BIGINT NOT NULL,
    created_at      TEXT NOT NULL
);
