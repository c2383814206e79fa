-- Every notification delivery: to which subscription, whether it arrived, after how many tries.
CREATE TABLE deliveries (
    id          TEXT PRIMARY KEY,
    topic       TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    delivered   BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    error       TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX deliveries_by_time ON deliveries (created_at);
