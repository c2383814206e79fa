//! MLflow's tracking REST API (`/api/2.0/mlflow/...`), so the `mlflow` Python client works
//! with `MLFLOW_TRACKING_URI` pointing at `tarn serve`: experiments, runs, params, metrics,
//! tags, metric history and run search with MLflow's filter strings. Errors come in MLflow's
//! shape (`error_code`, `message`) so the client's exceptions read the same. Logged models are
//! in `mlflow_models`, the registry in `mlflow_registry`, artifacts in `mlflow_artifacts`;
//! traces in `mlflow_traces`; what tarn does not serve (scorers, webhooks, the AI gateway)
//! answers 501 `NOT_IMPLEMENTED`.

use crate::App;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use tarn_lake::tracking::{Batch, KeyValue, Metric};
use tarn_lake::MetadataError;

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
            MetadataError::NotFound(m) => {
                MlflowError(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", m)
            }
            MetadataError::Conflict(m) => {
                MlflowError(StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS", m)
            }
            MetadataError::Invalid(m) => invalid(m),
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

/// A JSON body of an MLflow call, read within the server's limits; refusals come in
/// MLflow's error shape.
pub(crate) struct MlJson<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<App> for MlJson<T> {
    type Rejection = MlflowError;

    async fn from_request(req: axum::extract::Request, app: &App) -> Result<Self, MlflowError> {
        Ok(MlJson(crate::error::read_json(req, app).await?))
    }
}

/// A JSON body that may be empty (MLflow's DELETE calls carry one, or not), within the
/// server's limits.
pub(crate) struct MaybeJson(pub Value);

impl axum::extract::FromRequest<App> for MaybeJson {
    type Rejection = MlflowError;

    async fn from_request(req: axum::extract::Request, app: &App) -> Result<Self, MlflowError> {
        let bytes = crate::error::read_body(req, app).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(json!({})));
        }
        serde_json::from_slice(&bytes)
            .map(MaybeJson)
            .map_err(|e| invalid(format!("the body is not JSON: {e}")))
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

pub(crate) fn missing(what: &str) -> MlflowError {
    MlflowError(
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        what.into(),
    )
}

pub(crate) type Answer = Result<Json<Value>, MlflowError>;

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route(
            "/experiments/search",
            post(search_experiments).get(search_experiments_get),
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

pub(crate) fn text(body: &Value, field: &str) -> Option<String> {
    match &body[field] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn required(body: &Value, field: &str) -> Result<String, MlflowError> {
    text(body, field)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(format!("Missing value for required parameter '{field}'.")))
}

/// An int64 as MLflow's JSON carries it: a number or a string of one.
pub(crate) fn int(body: &Value, field: &str) -> Result<Option<i64>, MlflowError> {
    match &body[field] {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(format!("'{field}' must be an integer"))),
        Value::String(s) => s
            .parse()
            .map(Some)
            .map_err(|_| invalid(format!("'{field}' must be an integer, not {s:?}"))),
        other => Err(invalid(format!(
            "'{field}' must be an integer, not {other}"
        ))),
    }
}

/// A double as MLflow's JSON carries it: a number, or `NaN`, `Infinity`, `-Infinity` (or a
/// number) in a string.
fn float(v: &Value, field: &str) -> Result<f64, MlflowError> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| invalid(format!("'{field}' must be a number"))),
        Value::String(s) => tarn_lake::tracking::metric_value(s)
            .map_err(|_| invalid(format!("'{field}' must be a number, not {s:?}"))),
        Value::Null => Err(invalid(format!(
            "Missing value for required parameter '{field}'."
        ))),
        other => Err(invalid(format!("'{field}' must be a number, not {other}"))),
    }
}

/// `max_results` of a search: `default` when absent, refused past `limit` (MLflow's rule).
pub(crate) fn max_results(body: &Value, default: i64, limit: i64) -> Result<usize, MlflowError> {
    let n = int(body, "max_results")?.unwrap_or(default);
    Ok(tarn_lake::validation::max_results(n, limit)?)
}

pub(crate) fn pairs(v: &Value) -> Vec<KeyValue> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some(KeyValue {
                        key: text(t, "key")?,
                        value: text(t, "value").unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn metric_of(v: &Value) -> Result<Metric, MlflowError> {
    let some = |f: &str| text(v, f).filter(|s| !s.is_empty());
    Ok(Metric {
        key: required(v, "key")?,
        value: float(&v["value"], "value")?,
        timestamp: int(v, "timestamp")?.unwrap_or_else(now_ms),
        step: int(v, "step")?.unwrap_or(0),
        model_id: some("model_id"),
        dataset_name: some("dataset_name"),
        dataset_digest: some("dataset_digest"),
        run_id: None,
    })
}

async fn create_experiment(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let name = required(&body, "name")?;
    let location = text(&body, "artifact_location").filter(|s| !s.is_empty());
    let id = app
        .lake
        .meta
        .create_experiment(&name, location.as_deref(), &pairs(&body["tags"]))
        .await?;
    Ok(Json(json!({ "experiment_id": id })))
}

/// A required query parameter, refused as MLflow refuses it (400, not 404).
fn query_required(q: &HashMap<String, String>, names: &[&str]) -> Result<String, MlflowError> {
    names
        .iter()
        .find_map(|n| q.get(*n).filter(|v| !v.is_empty()).cloned())
        .ok_or_else(|| {
            invalid(format!(
                "Missing value for required parameter '{}'.",
                names[0]
            ))
        })
}

async fn get_experiment(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let id = query_required(&q, &["experiment_id"])?;
    let e = app
        .lake
        .meta
        .experiment(&id)
        .await?
        .ok_or_else(|| missing(&format!("No Experiment with id={id} exists")))?;
    Ok(Json(json!({ "experiment": e })))
}

async fn get_experiment_by_name(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let name = query_required(&q, &["experiment_name"])?;
    let e = app
        .lake
        .meta
        .experiment_by_name(&name)
        .await?
        .ok_or_else(|| missing(&format!("Could not find experiment with name '{name}'")))?;
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

async fn search_experiments(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let max = max_results(&body, 1000, tarn_lake::validation::MAX_RESULTS_PER_PAGE)?;
    let all = app.lake.meta.experiments(stage(&body["view_type"])).await?;
    let filter = text(&body, "filter").unwrap_or_default();
    let found =
        tarn_lake::run_search::search_experiments(all, &filter, &strings(&body["order_by"]))
            .map_err(invalid)?;
    let (experiments, next) = page(found, max, text(&body, "page_token"))?;
    let mut answer = json!({ "experiments": experiments });
    if let Some(next) = next {
        answer["next_page_token"] = json!(next);
    }
    Ok(Json(answer))
}

/// `GET experiments/search`: the same search with its fields in the query string
/// (`order_by` repeated).
async fn search_experiments_get(app: State<App>, Query(q): Query<Vec<(String, String)>>) -> Answer {
    let mut body = json!({});
    let mut order = Vec::new();
    for (k, v) in q {
        if k == "order_by" {
            order.push(Value::String(v));
        } else {
            body[k] = Value::String(v);
        }
    }
    body["order_by"] = Value::Array(order);
    search_experiments(app, MlJson(body)).await
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One page of `items` from the offset `token` names: the page and the next token.
pub(crate) fn page<T>(
    items: Vec<T>,
    max: usize,
    token: Option<String>,
) -> Result<(Vec<T>, Option<String>), MlflowError> {
    let offset: usize = match token.filter(|t| !t.is_empty()) {
        Some(t) => t
            .parse()
            .map_err(|_| invalid(format!("page_token {t:?} is not one this server gave")))?,
        None => 0,
    };
    let total = items.len();
    let next = (offset + max < total).then(|| (offset + max).to_string());
    Ok((items.into_iter().skip(offset).take(max).collect(), next))
}

pub(crate) fn done() -> Answer {
    Ok(Json(json!({})))
}

async fn delete_experiment(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let id = required(&body, "experiment_id")?;
    app.lake.meta.set_experiment_stage(&id, "deleted").await?;
    done()
}

async fn restore_experiment(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let id = required(&body, "experiment_id")?;
    app.lake.meta.set_experiment_stage(&id, "active").await?;
    done()
}

async fn update_experiment(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let id = required(&body, "experiment_id")?;
    if let Some(name) = text(&body, "new_name").filter(|n| !n.is_empty()) {
        app.lake.meta.rename_experiment(&id, &name).await?;
    }
    done()
}

async fn set_experiment_tag(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let id = required(&body, "experiment_id")?;
    let t = key_value(&body)?;
    app.lake
        .meta
        .experiment_tag(&id, &t.key, Some(&t.value))
        .await?;
    done()
}

async fn delete_experiment_tag(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let id = required(&body, "experiment_id")?;
    let key = required(&body, "key")?;
    app.lake.meta.experiment_tag(&id, &key, None).await?;
    done()
}

async fn delete_run(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    app.lake
        .meta
        .set_run_stage(&run_id(&body)?, "deleted")
        .await?;
    done()
}

async fn restore_run(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    app.lake
        .meta
        .set_run_stage(&run_id(&body)?, "active")
        .await?;
    done()
}

async fn delete_tag(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let key = required(&body, "key")?;
    app.lake.meta.delete_run_tag(&run_id(&body)?, &key).await?;
    done()
}

async fn create_run(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let experiment = text(&body, "experiment_id").unwrap_or_else(|| "0".into());
    let run = app
        .lake
        .meta
        .create_run(
            &experiment,
            &text(&body, "user_id").unwrap_or_default(),
            text(&body, "run_name").as_deref(),
            int(&body, "start_time")?,
            &pairs(&body["tags"]),
        )
        .await?;
    Ok(Json(json!({ "run": run })))
}

pub(crate) fn run_id(body: &Value) -> Result<String, MlflowError> {
    text(body, "run_id")
        .or_else(|| text(body, "run_uuid"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("Missing value for required parameter 'run_id'."))
}

async fn get_run(State(app): State<App>, Query(q): Query<HashMap<String, String>>) -> Answer {
    let id = query_required(&q, &["run_id", "run_uuid"])?;
    let run = app
        .lake
        .meta
        .run(&id)
        .await?
        .ok_or_else(|| missing(&format!("Run '{id}' not found")))?;
    Ok(Json(json!({ "run": run })))
}

async fn update_run(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let id = run_id(&body)?;
    let info = app
        .lake
        .meta
        .update_run(
            &id,
            text(&body, "status").as_deref(),
            int(&body, "end_time")?,
            text(&body, "run_name").as_deref(),
        )
        .await?;
    Ok(Json(json!({ "run_info": info })))
}

async fn batch(app: &App, id: &str, b: Batch) -> Answer {
    app.lake.meta.log_batch(id, &b).await?;
    done()
}

/// The `key` and `value` of a log-parameter or set-tag body.
fn key_value(body: &Value) -> Result<KeyValue, MlflowError> {
    Ok(KeyValue {
        key: required(body, "key")?,
        value: text(body, "value").unwrap_or_default(),
    })
}

async fn log_param(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let params = vec![key_value(&body)?];
    let b = Batch {
        params,
        ..Default::default()
    };
    batch(&app, &run_id(&body)?, b).await
}

async fn log_metric(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let metrics = vec![metric_of(&body)?];
    let b = Batch {
        metrics,
        ..Default::default()
    };
    batch(&app, &run_id(&body)?, b).await
}

async fn set_tag(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let tags = vec![key_value(&body)?];
    let b = Batch {
        tags,
        ..Default::default()
    };
    batch(&app, &run_id(&body)?, b).await
}

async fn log_batch(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let id = run_id(&body)?;
    let metrics = body["metrics"]
        .as_array()
        .map(|a| a.iter().map(metric_of).collect::<Result<Vec<_>, _>>())
        .transpose()?
        .unwrap_or_default();
    let b = Batch {
        metrics,
        params: pairs(&body["params"]),
        tags: pairs(&body["tags"]),
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

async fn metric_history(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<HistoryPage>, MlflowError> {
    let id = query_required(&q, &["run_id", "run_uuid"])?;
    let key = query_required(&q, &["metric_key"])?;
    if app.lake.meta.run(&id).await?.is_none() {
        return Err(missing(&format!("Run '{id}' not found")));
    }
    let metrics = app.lake.meta.metric_history(&id, &key).await?;
    let paging = json!({ "max_results": q.get("max_results") });
    let max = max_results(&paging, 25_000, 25_000)?;
    let (metrics, next_page_token) = page(metrics, max, q.get("page_token").cloned())?;
    Ok(Json(HistoryPage {
        metrics,
        next_page_token,
    }))
}

async fn search_runs(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let experiments = strings_or_numbers(&body["experiment_ids"]);
    let filter = text(&body, "filter").unwrap_or_default();
    let order = strings(&body["order_by"]);
    let max = max_results(&body, 1000, tarn_lake::validation::MAX_RESULTS_PER_PAGE)?;
    let offset: usize = match text(&body, "page_token").filter(|t| !t.is_empty()) {
        Some(t) => t
            .parse()
            .map_err(|_| invalid(format!("page_token {t:?} is not one this server gave")))?,
        None => 0,
    };
    let (runs, more) = app
        .lake
        .meta
        .search_runs(
            &experiments,
            stage(&body["run_view_type"]),
            &filter,
            &order,
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

/// A list of ids, each a string or a number.
pub(crate) fn strings_or_numbers(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
