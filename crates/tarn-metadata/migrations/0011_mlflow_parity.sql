-- Metric points as MLflow keeps them: one per (key, timestamp, step, value, is_nan) of a run
-- (a point logged twice is kept once), NaN marked beside a placeholder 0 (neither SQLite nor
-- every driver keeps NaN in a NOT NULL double), and the logged model and dataset a point was
-- measured for (MLflow 3's `model_id`, `dataset_name`, `dataset_digest`).
CREATE TABLE ml_metric_points (
    run_id         TEXT NOT NULL,
    key            TEXT NOT NULL,
    value          DOUBLE PRECISION NOT NULL,
    is_nan         BIGINT NOT NULL DEFAULT 0,
    timestamp      BIGINT NOT NULL,
    step           BIGINT NOT NULL,
    model_id       TEXT NOT NULL DEFAULT '',
    dataset_name   TEXT NOT NULL DEFAULT '',
    dataset_digest TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, key, timestamp, step, value, is_nan)
);
INSERT INTO ml_metric_points (run_id, key, value, timestamp, step)
    SELECT DISTINCT run_id, key, value, timestamp, step FROM ml_metrics;
DROP TABLE ml_metrics;
ALTER TABLE ml_metric_points RENAME TO ml_metrics;
CREATE INDEX ml_metrics_by_run ON ml_metrics (run_id, key, step);
-- A logged model's metrics: the points logged for it, from any run (a point may count for
-- several models: the client links a run's points to each model it logs).
CREATE TABLE ml_logged_model_metrics (
    model_id       TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    key            TEXT NOT NULL,
    value          DOUBLE PRECISION NOT NULL,
    is_nan         BIGINT NOT NULL DEFAULT 0,
    timestamp      BIGINT NOT NULL,
    step           BIGINT NOT NULL,
    dataset_name   TEXT NOT NULL DEFAULT '',
    dataset_digest TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (model_id, run_id, key, timestamp, step, value, is_nan)
);
ALTER TABLE ml_latest_metrics ADD COLUMN is_nan BIGINT NOT NULL DEFAULT 0;

-- MLflow 3 traces: the trace's info (its spans are an artifact, `traces.json`, under the
-- trace's artifact location, and rows of the lake's spans table), its tags and request
-- metadata, and the assessments (feedback, expectations) logged on it.
CREATE TABLE ml_traces (
    trace_id           TEXT PRIMARY KEY,
    experiment_id      BIGINT NOT NULL,
    client_request_id  TEXT,
    request_time       BIGINT NOT NULL,
    execution_duration BIGINT,
    state              TEXT NOT NULL,
    request_preview    TEXT,
    response_preview   TEXT
);
CREATE INDEX ml_traces_by_experiment ON ml_traces (experiment_id, request_time);
CREATE TABLE ml_trace_tags (
    trace_id TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (trace_id, key)
);
CREATE TABLE ml_trace_metadata (
    trace_id TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (trace_id, key)
);
CREATE TABLE ml_assessments (
    assessment_id TEXT PRIMARY KEY,
    trace_id      TEXT NOT NULL,
    created       BIGINT NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX ml_assessments_by_trace ON ml_assessments (trace_id, created);

-- A run's dataset inputs by name, digest and context, so run search filters on them in SQL
-- (`datasets.name = 'flights'`); rows from before are filled in when the store opens.
ALTER TABLE ml_run_inputs ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE ml_run_inputs ADD COLUMN digest TEXT NOT NULL DEFAULT '';
ALTER TABLE ml_run_inputs ADD COLUMN context TEXT NOT NULL DEFAULT '';
