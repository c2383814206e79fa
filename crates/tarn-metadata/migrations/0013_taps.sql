-- Singer taps: the last STATE saved for each tap, with the flush sequence number its Delta
-- commits carry as their application transaction version; and a flush begun but not yet
-- saved (the tables it writes and their versions before it), so a crash in between is
-- rolled back or completed on the next run.
CREATE TABLE tap_states (
    tap         TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    state       TEXT NOT NULL,
    pending     TEXT,
    updated_at  TEXT NOT NULL,
    -- The run holding the tap (`HOST:PID:RUN`), and until when its lease lasts.
    run_owner   TEXT,
    run_until   TEXT
);

-- tarn's secret store: values sealed with a key kept outside this store.
CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,
    sealed      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
