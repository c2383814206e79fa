//! MLflow's tracking REST API (`/api/2.0/mlflow/...`), so the `mlflow` Python client works
//! with `MLFLOW_TRACKING_URI` pointing at `tarn serve`: experiments, runs, params, metrics,
//! tags, metric history and run search with MLflow's filter strings. Errors come in MLflow's
//! shape (`error_code`, `message`) so the client's exceptions read the same. Logged models are
//! in `mlflow_models`, the registry in `mlflow_registry`, artifacts in `mlflow_artifacts`;
//! traces in `mlflow_traces`; what tarn does not serve (scorers, webhooks, the AI gateway)
//! answers 501 `NOT_IMPLEMENTED`.

use crate::mlflow_wire::{field, Call, Paging, RunRef, Search};
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tarn_lake::tracking::{Batch, KeyValue, Metric};
use tarn_lake::{Existing, Inactive, Kind, MetadataError, Missing};

/// An MLflow error: an HTTP status, MLflow's error code, a message.
pub(crate) struct MlflowError(
    pub(crate) StatusCode,
    pub(crate) &'static str,
    pub(crate) String,
);

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error_code": self.1, "message": self.2})),
        )
            .into_response()
    }
}

impl From<MetadataError> for MlflowError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::NotFound(m) => missing(m),
            MetadataError::Exists(e) => MlflowError(
                StatusCode::BAD_REQUEST,
                "RESOURCE_ALREADY_EXISTS",
                match e {
                    Existing::Experiment { name } => {
                        format!("Experiment(name={name}) already exists.")
                    }
                    Existing::RegisteredModel { name } => {
                        format!("Registered Model (name={name}) already exists.")
                    }
                    other => other.to_string(),
                },
            ),
            MetadataError::Inactive(Inactive { kind, id, stage }) => invalid(format!(
                "The {} {id} must be in the 'active' state. Current state is {stage}.",
                match kind {
                    Kind::Experiment => "experiment",
                    Kind::Run => "run",
                }
            )),
            MetadataError::Refused(m) => invalid(m),
            other => {
                tracing::error!("mlflow API: {other}");
                MlflowError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "the metadata store failed; the server log has the cause".into(),
                )
            }
        }
    }
}

impl From<crate::error::BodyProblem> for MlflowError {
    fn from(crate::error::BodyProblem(status, _, message): crate::error::BodyProblem) -> Self {
        MlflowError(status, "INVALID_PARAMETER_VALUE", message)
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

pub(crate) fn invalid(m: impl Into<String>) -> MlflowError {
    MlflowError(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", m.into())
}

/// What is not stored, in MLflow's words and with its error code.
pub(crate) fn missing(m: Missing) -> MlflowError {
    let words = match m {
        Missing::Experiment { id } => format!("No Experiment with id={id} exists"),
        Missing::Run { id } => format!("Run '{id}' not found"),
        Missing::RunTag { run_id, key } => {
            format!("No tag with name: {key} in run with id {run_id}")
        }
        Missing::RegisteredModel { name } => {
            format!("Registered Model with name={name} not found")
        }
        Missing::ModelVersion { name, version } => {
            format!("Model Version (name={name}, version={version}) not found")
        }
        Missing::LatestVersion { name } => format!("Latest version not found for model {name}."),
        // MLflow answers INVALID_PARAMETER_VALUE here, not RESOURCE_DOES_NOT_EXIST.
        Missing::Alias { alias, .. } => {
            return invalid(format!("Registered model alias {alias} not found."))
        }
        Missing::Trace { id } => format!("Trace with ID '{id}' not found."),
        Missing::TraceTag { id, key } => {
            format!("No trace tag with key '{key}' for trace with ID '{id}'")
        }
        Missing::Assessment { trace_id, id } => {
            format!("Assessment with ID '{id}' not found for trace '{trace_id}'")
        }
        Missing::LoggedModel { id } => format!("Logged model with ID '{id}' not found."),
        Missing::LoggedModelTag { id, key } => {
            format!("No tag with key '{key}' found for model with ID '{id}'.")
        }
        other => other.to_string(),
    };
    MlflowError(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", words)
}

pub(crate) type Answer = Result<Json<Value>, MlflowError>;

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route(
            "/experiments/search",
            post(search_experiments).get(search_experiments),
        )
        .route("/experiments/delete", post(delete_experiment))
        .route("/experiments/restore", post(restore_experiment))
        .route("/experiments/update", post(update_experiment))
        .route("/experiments/set-experiment-tag", post(set_experiment_tag))
        .route(
            "/experiments/delete-experiment-tag",
            post(delete_experiment_tag),
        )
        .route("/runs/delete", post(delete_run))
        .route("/runs/restore", post(restore_run))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/create", post(create_run))
        .route("/runs/get", get(get_run))
        .route("/runs/update", post(update_run))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/search", post(search_runs))
        .route("/metrics/get-history", get(metric_history))
        .merge(crate::mlflow_models::router())
        .merge(crate::mlflow_traces::router())
        .merge(crate::mlflow_registry::router())
        .fallback(not_built)
        .method_not_allowed_fallback(wrong_method)
}

/// `/api/3.0/mlflow`: tracing and `server-info`, with the same refusals as 2.0.
pub(crate) fn router_v3() -> Router<App> {
    crate::mlflow_traces::router()
        .fallback(not_built)
        .method_not_allowed_fallback(wrong_method)
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> MlflowError {
    MlflowError(
        StatusCode::METHOD_NOT_ALLOWED,
        "BAD_REQUEST",
        format!("{method} is not served at {}", uri.path()),
    )
}

/// Anything of MLflow's API tarn does not serve yet.
pub(crate) async fn not_built(uri: axum::http::Uri) -> MlflowError {
    MlflowError(
        StatusCode::NOT_IMPLEMENTED,
        "NOT_IMPLEMENTED",
        format!(
            "tarn does not serve {} (yet): experiments, runs, logged models, artifacts, traces, prompts and the model registry work; scorers, webhooks and the AI gateway do not",
            uri.path()
        ),
    )
}

/// A metric as `log-metric` and `log-batch` carry it.
#[derive(Deserialize)]
pub(crate) struct MetricIn {
    #[serde(deserialize_with = "field::required")]
    key: String,
    #[serde(deserialize_with = "field::float")]
    value: f64,
    #[serde(default, deserialize_with = "field::int")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "field::int")]
    step: Option<i64>,
    #[serde(default, deserialize_with = "field::some_text")]
    model_id: Option<String>,
    #[serde(default, deserialize_with = "field::some_text")]
    dataset_name: Option<String>,
    #[serde(default, deserialize_with = "field::some_text")]
    dataset_digest: Option<String>,
}

impl From<MetricIn> for Metric {
    fn from(m: MetricIn) -> Self {
        Metric {
            key: m.key,
            value: m.value,
            timestamp: m.timestamp.unwrap_or_else(now_ms),
            step: m.step.unwrap_or(0),
            model_id: m.model_id,
            dataset_name: m.dataset_name,
            dataset_digest: m.dataset_digest,
            run_id: None,
        }
    }
}

#[derive(Deserialize)]
struct CreateExperiment {
    #[serde(deserialize_with = "field::required")]
    name: String,
    #[serde(default, deserialize_with = "field::some_text")]
    artifact_location: Option<String>,
    #[serde(default, deserialize_with = "field::pairs")]
    tags: Vec<KeyValue>,
}

async fn create_experiment(State(app): State<App>, Call(c): Call<CreateExperiment>) -> Answer {
    let id = app
        .lake
        .tracking()
        .create_experiment(&c.name, c.artifact_location.as_deref(), &c.tags)
        .await?;
    Ok(Json(json!({ "experiment_id": id })))
}

/// The experiment a call is about.
#[derive(Deserialize)]
struct ExperimentRef {
    #[serde(deserialize_with = "field::required")]
    experiment_id: String,
}

async fn get_experiment(State(app): State<App>, Call(c): Call<ExperimentRef>) -> Answer {
    let id = c.experiment_id;
    let e = app
        .lake
        .tracking()
        .experiment(&id)
        .await?
        .ok_or_else(|| missing(Missing::Experiment { id: id.clone() }))?;
    Ok(Json(json!({ "experiment": e })))
}

#[derive(Deserialize)]
struct ExperimentByName {
    #[serde(deserialize_with = "field::required")]
    experiment_name: String,
}

async fn get_experiment_by_name(State(app): State<App>, Call(c): Call<ExperimentByName>) -> Answer {
    let name = c.experiment_name;
    let e = app
        .lake
        .tracking()
        .experiment_by_name(&name)
        .await?
        .ok_or_else(|| {
            MlflowError(
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Could not find experiment with name '{name}'"),
            )
        })?;
    Ok(Json(json!({ "experiment": e })))
}

/// `view_type`/`run_view_type`: ACTIVE_ONLY (default), DELETED_ONLY, ALL.
pub(crate) fn stage(v: &Value) -> Option<&'static str> {
    match v.as_str() {
        Some("DELETED_ONLY") | Some("2") => Some("deleted"),
        Some("ALL") | Some("3") => None,
        _ => match v.as_i64() {
            Some(2) => Some("deleted"),
            Some(3) => None,
            _ => Some("active"),
        },
    }
}

/// `experiments/search`, by POST (a body) or GET (the query string, `order_by` repeated).
#[derive(Deserialize)]
struct SearchExperiments {
    #[serde(flatten)]
    search: Search,
    #[serde(default)]
    view_type: Value,
}

async fn search_experiments(State(app): State<App>, Call(c): Call<SearchExperiments>) -> Answer {
    let s = c.search;
    let max = s
        .paging
        .max(1000, tarn_lake::validation::MAX_RESULTS_PER_PAGE)?;
    let all = app.lake.tracking().experiments(stage(&c.view_type)).await?;
    let found =
        tarn_lake::tracking::search_experiments(all, s.filter(), &s.order_by).map_err(invalid)?;
    let (experiments, next) = page(found, max, s.paging.page_token)?;
    let mut answer = json!({ "experiments": experiments });
    if let Some(next) = next {
        answer["next_page_token"] = json!(next);
    }
    Ok(Json(answer))
}

/// One page of `items` from the offset `token` names: the page and the next token.
pub(crate) fn page<T>(
    items: Vec<T>,
    max: usize,
    token: Option<String>,
) -> Result<(Vec<T>, Option<String>), MlflowError> {
    let offset = offset(token)?;
    let total = items.len();
    let next = (offset + max < total).then(|| (offset + max).to_string());
    Ok((items.into_iter().skip(offset).take(max).collect(), next))
}

/// Where a page starts: the offset a `page_token` this server gave names.
pub(crate) fn offset(token: Option<String>) -> Result<usize, MlflowError> {
    match token.filter(|t| !t.is_empty()) {
        Some(t) => t
            .parse()
            .map_err(|_| invalid(format!("page_token {t:?} is not one this server gave"))),
        None => Ok(0),
    }
}

pub(crate) fn done() -> Answer {
    Ok(Json(json!({})))
}

async fn delete_experiment(State(app): State<App>, Call(c): Call<ExperimentRef>) -> Answer {
    app.lake
        .tracking()
        .set_experiment_stage(&c.experiment_id, "deleted")
        .await?;
    done()
}

async fn restore_experiment(State(app): State<App>, Call(c): Call<ExperimentRef>) -> Answer {
    app.lake
        .tracking()
        .set_experiment_stage(&c.experiment_id, "active")
        .await?;
    done()
}

#[derive(Deserialize)]
struct UpdateExperiment {
    #[serde(deserialize_with = "field::required")]
    experiment_id: String,
    #[serde(default, deserialize_with = "field::some_text")]
    new_name: Option<String>,
}

async fn update_experiment(State(app): State<App>, Call(c): Call<UpdateExperiment>) -> Answer {
    if let Some(name) = c.new_name {
        app.lake
            .tracking()
            .rename_experiment(&c.experiment_id, &name)
            .await?;
    }
    done()
}

/// A tag to set or a param to log: `key` (required) and `value`.
#[derive(Deserialize)]
pub(crate) struct Pair {
    #[serde(deserialize_with = "field::required")]
    pub(crate) key: String,
    #[serde(default, deserialize_with = "field::text")]
    pub(crate) value: Option<String>,
}

impl From<Pair> for KeyValue {
    fn from(p: Pair) -> Self {
        KeyValue {
            key: p.key,
            value: p.value.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct ExperimentTag {
    #[serde(deserialize_with = "field::required")]
    experiment_id: String,
    #[serde(flatten)]
    tag: Pair,
}

async fn set_experiment_tag(State(app): State<App>, Call(c): Call<ExperimentTag>) -> Answer {
    let t = KeyValue::from(c.tag);
    app.lake
        .tracking()
        .experiment_tag(&c.experiment_id, &t.key, Some(&t.value))
        .await?;
    done()
}

async fn delete_experiment_tag(State(app): State<App>, Call(c): Call<ExperimentTag>) -> Answer {
    app.lake
        .tracking()
        .experiment_tag(&c.experiment_id, &c.tag.key, None)
        .await?;
    done()
}

async fn delete_run(State(app): State<App>, Call(run): Call<RunRef>) -> Answer {
    app.lake
        .tracking()
        .set_run_stage(&run.id()?, "deleted")
        .await?;
    done()
}

async fn restore_run(State(app): State<App>, Call(run): Call<RunRef>) -> Answer {
    app.lake
        .tracking()
        .set_run_stage(&run.id()?, "active")
        .await?;
    done()
}

/// A run and one of its tags or params.
#[derive(Deserialize)]
struct RunPair {
    #[serde(flatten)]
    run: RunRef,
    #[serde(flatten)]
    pair: Pair,
}

async fn delete_tag(State(app): State<App>, Call(c): Call<RunPair>) -> Answer {
    app.lake
        .tracking()
        .delete_run_tag(&c.run.id()?, &c.pair.key)
        .await?;
    done()
}

#[derive(Deserialize)]
struct CreateRun {
    #[serde(default, deserialize_with = "field::text")]
    experiment_id: Option<String>,
    #[serde(default, deserialize_with = "field::text")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "field::text")]
    run_name: Option<String>,
    #[serde(default, deserialize_with = "field::int")]
    start_time: Option<i64>,
    #[serde(default, deserialize_with = "field::pairs")]
    tags: Vec<KeyValue>,
}

async fn create_run(State(app): State<App>, Call(c): Call<CreateRun>) -> Answer {
    let run = app
        .lake
        .tracking()
        .create_run(
            c.experiment_id.as_deref().unwrap_or("0"),
            &c.user_id.unwrap_or_default(),
            c.run_name.as_deref(),
            c.start_time,
            &c.tags,
        )
        .await?;
    Ok(Json(json!({ "run": run })))
}

async fn get_run(State(app): State<App>, Call(run): Call<RunRef>) -> Answer {
    let id = run.id()?;
    let run = app
        .lake
        .tracking()
        .run(&id)
        .await?
        .ok_or_else(|| missing(Missing::Run { id: id.clone() }))?;
    Ok(Json(json!({ "run": run })))
}

#[derive(Deserialize)]
struct UpdateRun {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default, deserialize_with = "field::text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "field::int")]
    end_time: Option<i64>,
    #[serde(default, deserialize_with = "field::text")]
    run_name: Option<String>,
}

async fn update_run(State(app): State<App>, Call(c): Call<UpdateRun>) -> Answer {
    let info = app
        .lake
        .tracking()
        .update_run(
            &c.run.id()?,
            c.status.as_deref(),
            c.end_time,
            c.run_name.as_deref(),
        )
        .await?;
    Ok(Json(json!({ "run_info": info })))
}

async fn batch(app: &App, id: &str, b: Batch) -> Answer {
    app.lake.tracking().log_batch(id, &b).await?;
    done()
}

async fn log_param(State(app): State<App>, Call(c): Call<RunPair>) -> Answer {
    let b = Batch {
        params: vec![c.pair.into()],
        ..Default::default()
    };
    batch(&app, &c.run.id()?, b).await
}

async fn set_tag(State(app): State<App>, Call(c): Call<RunPair>) -> Answer {
    let b = Batch {
        tags: vec![c.pair.into()],
        ..Default::default()
    };
    batch(&app, &c.run.id()?, b).await
}

#[derive(Deserialize)]
struct LogMetric {
    #[serde(flatten)]
    run: RunRef,
    #[serde(flatten)]
    metric: MetricIn,
}

async fn log_metric(State(app): State<App>, Call(c): Call<LogMetric>) -> Answer {
    let b = Batch {
        metrics: vec![c.metric.into()],
        ..Default::default()
    };
    batch(&app, &c.run.id()?, b).await
}

#[derive(Deserialize)]
struct LogBatch {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    metrics: Vec<MetricIn>,
    #[serde(default, deserialize_with = "field::pairs")]
    params: Vec<KeyValue>,
    #[serde(default, deserialize_with = "field::pairs")]
    tags: Vec<KeyValue>,
}

async fn log_batch(State(app): State<App>, Call(c): Call<LogBatch>) -> Answer {
    let id = c.run.id()?;
    let b = Batch {
        metrics: c.metrics.into_iter().map(Metric::from).collect(),
        params: c.params,
        tags: c.tags,
    };
    batch(&app, &id, b).await
}

/// A page of a metric's history, serialised straight from its points (no JSON tree in
/// between: a history can hold tens of thousands).
#[derive(serde::Serialize)]
struct HistoryPage {
    metrics: Vec<Metric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct MetricHistory {
    #[serde(flatten)]
    run: RunRef,
    #[serde(deserialize_with = "field::required")]
    metric_key: String,
    #[serde(flatten)]
    paging: Paging,
}

async fn metric_history(
    State(app): State<App>,
    Call(c): Call<MetricHistory>,
) -> Result<Json<HistoryPage>, MlflowError> {
    let id = c.run.id()?;
    if app.lake.tracking().run(&id).await?.is_none() {
        return Err(missing(Missing::Run { id: id.clone() }));
    }
    let metrics = app
        .lake
        .tracking()
        .metric_history(&id, &c.metric_key)
        .await?;
    let max = c.paging.max(25_000, 25_000)?;
    let (metrics, next_page_token) = page(metrics, max, c.paging.page_token)?;
    Ok(Json(HistoryPage {
        metrics,
        next_page_token,
    }))
}

#[derive(Deserialize)]
struct SearchRuns {
    #[serde(default, deserialize_with = "field::strings")]
    experiment_ids: Vec<String>,
    #[serde(flatten)]
    search: Search,
    #[serde(default)]
    run_view_type: Value,
}

async fn search_runs(State(app): State<App>, Call(c): Call<SearchRuns>) -> Answer {
    let s = c.search;
    let max = s
        .paging
        .max(1000, tarn_lake::validation::MAX_RESULTS_PER_PAGE)?;
    let offset = offset(s.paging.page_token.clone())?;
    let (runs, more) = app
        .lake
        .tracking()
        .search_runs(
            &c.experiment_ids,
            stage(&c.run_view_type),
            s.filter(),
            &s.order_by,
            offset,
            max,
        )
        .await?;
    let mut answer = json!({ "runs": runs });
    if more {
        answer["next_page_token"] = json!((offset + max).to_string());
    }
    Ok(Json(answer))
}
