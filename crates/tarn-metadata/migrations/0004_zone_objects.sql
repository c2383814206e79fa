-- The watcher's durable cursor: the objects of a zone it has seen, by the store's change tag,
-- so an object copied straight into a zone is recorded once, and again only when it changes.
CREATE TABLE zone_objects (
    zone        TEXT NOT NULL,
    object_key  TEXT NOT NULL,
    e_tag       TEXT NOT NULL,
    size        BIGINT NOT NULL,
    seen_at     TEXT NOT NULL,
    PRIMARY KEY (zone, object_key)
);
