-- MLflow 3 logged models, run inputs and outputs, the model registry with approvals, and the
-- indexes run search needs to stay fast with many runs.
CREATE TABLE ml_logged_models (
    id                TEXT PRIMARY KEY,
    experiment_id     BIGINT NOT NULL,
    name              TEXT NOT NULL,
    source_run_id     TEXT,
    model_type        TEXT,
    status            TEXT NOT NULL,
    status_message    TEXT,
    artifact_location TEXT NOT NULL,
    lifecycle_stage   TEXT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL
);
CREATE INDEX ml_logged_models_by_experiment ON ml_logged_models (experiment_id, creation_time);
CREATE INDEX ml_logged_models_by_run ON ml_logged_models (source_run_id);
CREATE TABLE ml_logged_model_params (
    model_id TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE ml_logged_model_tags (
    model_id TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE ml_run_outputs (
    run_id   TEXT NOT NULL,
    model_id TEXT NOT NULL,
    step     BIGINT NOT NULL,
    PRIMARY KEY (run_id, model_id)
);
-- A run's inputs: datasets (with their tags) and models, each kept as MLflow sent it.
CREATE TABLE ml_run_inputs (
    run_id TEXT NOT NULL,
    kind   TEXT NOT NULL,
    ident  TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, kind, ident)
);
CREATE TABLE ml_registered_models (
    name              TEXT PRIMARY KEY,
    description       TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL
);
CREATE TABLE ml_registered_model_tags (
    name  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);
CREATE TABLE ml_model_versions (
    name              TEXT NOT NULL,
    version           BIGINT NOT NULL,
    description       TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    source            TEXT NOT NULL,
    storage_location  TEXT NOT NULL,
    run_id            TEXT NOT NULL,
    run_link          TEXT NOT NULL,
    model_id          TEXT NOT NULL,
    status            TEXT NOT NULL,
    current_stage     TEXT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    approval_status   TEXT NOT NULL,
    approval_by       TEXT NOT NULL,
    approval_time     BIGINT NOT NULL,
    approval_reason   TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE ml_model_version_tags (
    name    TEXT NOT NULL,
    version BIGINT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (name, version, key)
);
CREATE TABLE ml_model_aliases (
    name    TEXT NOT NULL,
    alias   TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
);
-- Run search filters and orders by these.
CREATE INDEX ml_latest_metrics_by_key ON ml_latest_metrics (key, value);
CREATE INDEX ml_params_by_key ON ml_params (key, value);
CREATE INDEX ml_run_tags_by_key ON ml_run_tags (key, value);
CREATE INDEX ml_runs_by_stage ON ml_runs (experiment_id, lifecycle_stage, start_time);
