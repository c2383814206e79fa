-- Pipeline executions and their step attempts; events remember whether triggers saw them.
CREATE TABLE executions (
    id           TEXT PRIMARY KEY,
    pipeline     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    status       TEXT NOT NULL,
    input        TEXT NOT NULL,
    step         TEXT,
    step_input   TEXT,
    failures     BIGINT NOT NULL DEFAULT 0,
    output       TEXT,
    error        TEXT,
    lease_owner  TEXT,
    lease_until  TEXT,
    not_before   TEXT,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    UNIQUE (pipeline, event_id)
);
CREATE INDEX executions_open ON executions (status, created_at);

CREATE TABLE step_attempts (
    id            TEXT PRIMARY KEY,
    execution_id  TEXT NOT NULL,
    pipeline      TEXT NOT NULL,
    step          TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    status        TEXT NOT NULL,
    input         TEXT NOT NULL,
    output        TEXT,
    error         TEXT,
    logs          TEXT NOT NULL DEFAULT '',
    started_at    TEXT NOT NULL,
    finished_at   TEXT
);
CREATE INDEX step_attempts_execution ON step_attempts (execution_id, started_at);
CREATE INDEX step_attempts_running ON step_attempts (pipeline, step, status);

-- Events recorded before pipelines existed start nothing.
ALTER TABLE events ADD COLUMN dispatched_at TEXT;
UPDATE events SET dispatched_at = created_at;
CREATE INDEX events_pending ON events (dispatched_at, id);
