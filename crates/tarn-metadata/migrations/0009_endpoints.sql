-- Model endpoints: the spec (JSON, as tarn.yml's `endpoints:` writes it) and where it came from.
CREATE TABLE ml_endpoints (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
