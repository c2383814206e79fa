-- ML tracking, as MLflow's tracking server keeps it: experiments, runs, params, tags, metrics.
CREATE TABLE ml_experiments (
    id                BIGINT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage   TEXT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_update_time  BIGINT NOT NULL
);
INSERT INTO ml_experiments (id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 0, 0);
CREATE TABLE ml_experiment_tags (
    experiment_id BIGINT NOT NULL,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);
CREATE TABLE ml_runs (
    id              TEXT PRIMARY KEY,
    experiment_id   BIGINT NOT NULL,
    name            TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    status          TEXT NOT NULL,
    start_time      BIGINT NOT NULL,
    end_time        BIGINT,
    lifecycle_stage TEXT NOT NULL,
    artifact_uri    TEXT NOT NULL
);
CREATE INDEX ml_runs_by_experiment ON ml_runs (experiment_id, start_time);
CREATE TABLE ml_params (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE ml_run_tags (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE ml_metrics (
    run_id    TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    timestamp BIGINT NOT NULL,
    step      BIGINT NOT NULL
);
CREATE INDEX ml_metrics_by_run ON ml_metrics (run_id, key, step);
CREATE TABLE ml_latest_metrics (
    run_id    TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    timestamp BIGINT NOT NULL,
    step      BIGINT NOT NULL,
    PRIMARY KEY (run_id, key)
);
