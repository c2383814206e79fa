//! MLflow 3's logged models (`/api/2.0/mlflow/logged-models...`), which the client's
//! `log_model` creates, uploads into and finalizes before any registration, and what runs
//! record as inputs and outputs (`runs/log-inputs`, `runs/outputs`).

use crate::mlflow::{done, invalid, page, Answer, MlflowError};
use crate::mlflow_wire::{field, Call, Paging, RunRef};
use crate::App;
use axum::extract::{Path, State};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tarn_lake::logged_models::{LoggedModel, NewLoggedModel};
use tarn_lake::tracking::KeyValue;

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/logged-models", post(create))
        .route("/logged-models/search", post(search))
        .route(
            "/logged-models/{model_id}",
            axum::routing::get(get_model).patch(finalize).delete(remove),
        )
        .route(
            "/logged-models/{model_id}/tags",
            axum::routing::patch(set_tags),
        )
        .route("/logged-models/{model_id}/tags/{key}", delete(delete_tag))
        .route("/logged-models/{model_id}/params", post(log_params))
        .route("/runs/outputs", post(log_outputs))
        .route("/runs/log-inputs", post(log_inputs))
}

#[derive(Deserialize)]
struct Create {
    #[serde(deserialize_with = "field::required")]
    experiment_id: String,
    #[serde(default, deserialize_with = "field::text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "field::text")]
    source_run_id: Option<String>,
    #[serde(default, deserialize_with = "field::text")]
    model_type: Option<String>,
    #[serde(default, deserialize_with = "field::pairs")]
    params: Vec<KeyValue>,
    #[serde(default, deserialize_with = "field::pairs")]
    tags: Vec<KeyValue>,
}

async fn create(State(app): State<App>, Call(c): Call<Create>) -> Answer {
    let m = NewLoggedModel {
        experiment_id: c.experiment_id,
        name: c.name,
        source_run_id: c.source_run_id,
        model_type: c.model_type,
        params: c.params,
        tags: c.tags,
    };
    let model = app.lake.logged_models().create_logged_model(&m).await?;
    Ok(Json(json!({ "model": model })))
}

#[derive(Deserialize)]
struct Get {
    #[serde(default, deserialize_with = "field::text")]
    allow_deleted: Option<String>,
}

async fn get_model(State(app): State<App>, Path(id): Path<String>, Call(c): Call<Get>) -> Answer {
    let model = if c.allow_deleted.is_some_and(|v| v == "true") {
        app.lake
            .logged_models()
            .logged_model(&id)
            .await?
            .ok_or_else(|| {
                crate::mlflow::missing(tarn_lake::Missing::LoggedModel { id: id.clone() })
            })?
    } else {
        app.lake.logged_models().live_logged_model(&id).await?
    };
    Ok(Json(json!({ "model": model })))
}

/// `LoggedModelStatus` by name or number.
fn status_of(v: &Value) -> Result<&'static str, MlflowError> {
    match (v.as_str(), v.as_i64()) {
        (Some("LOGGED_MODEL_PENDING"), _) | (_, Some(1)) => Ok("LOGGED_MODEL_PENDING"),
        (Some("LOGGED_MODEL_READY"), _) | (_, Some(2)) => Ok("LOGGED_MODEL_READY"),
        (Some("LOGGED_MODEL_UPLOAD_FAILED"), _) | (_, Some(3)) => Ok("LOGGED_MODEL_UPLOAD_FAILED"),
        _ => Err(invalid(format!(
            "status must be LOGGED_MODEL_PENDING, LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED, not {v}"
        ))),
    }
}

#[derive(Deserialize)]
struct Finalize {
    #[serde(default)]
    status: Value,
}

async fn finalize(
    State(app): State<App>,
    Path(id): Path<String>,
    Call(c): Call<Finalize>,
) -> Answer {
    let status = status_of(&c.status)?;
    let model = app
        .lake
        .logged_models()
        .finalize_logged_model(&id, status)
        .await?;
    Ok(Json(json!({ "model": model })))
}

async fn remove(State(app): State<App>, Path(id): Path<String>) -> Answer {
    app.lake.logged_models().delete_logged_model(&id).await?;
    done()
}

#[derive(Deserialize)]
struct Pairs {
    #[serde(default, deserialize_with = "field::pairs")]
    tags: Vec<KeyValue>,
    #[serde(default, deserialize_with = "field::pairs")]
    params: Vec<KeyValue>,
}

async fn set_tags(State(app): State<App>, Path(id): Path<String>, Call(c): Call<Pairs>) -> Answer {
    app.lake
        .logged_models()
        .set_logged_model_tags(&id, &c.tags)
        .await?;
    done()
}

async fn delete_tag(State(app): State<App>, Path((id, key)): Path<(String, String)>) -> Answer {
    app.lake
        .logged_models()
        .delete_logged_model_tag(&id, &key)
        .await?;
    done()
}

async fn log_params(
    State(app): State<App>,
    Path(id): Path<String>,
    Call(c): Call<Pairs>,
) -> Answer {
    app.lake
        .logged_models()
        .log_logged_model_params(&id, &c.params)
        .await?;
    done()
}

/// One `order_by` of a logged-model search: `{field_name, ascending}`.
#[derive(Deserialize)]
struct OrderBy {
    field_name: String,
    #[serde(default = "yes")]
    ascending: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct SearchModels {
    #[serde(default, deserialize_with = "field::strings")]
    experiment_ids: Vec<String>,
    #[serde(default, deserialize_with = "field::text")]
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<OrderBy>,
    #[serde(flatten)]
    paging: Paging,
}

async fn search(State(app): State<App>, Call(c): Call<SearchModels>) -> Answer {
    let order: Vec<String> = c
        .order_by
        .iter()
        .map(|o| {
            let way = if o.ascending { "ASC" } else { "DESC" };
            format!("{} {way}", o.field_name)
        })
        .collect();
    let max = c.paging.max_results.unwrap_or(100).clamp(1, 10_000) as usize;
    let all = app
        .lake
        .logged_models()
        .logged_models_of(&c.experiment_ids)
        .await?;
    let filter = c.filter.unwrap_or_default();
    let found = tarn_lake::run_search::search_items(all, &filter, &order, |a: &LoggedModel, b| {
        b.info
            .creation_timestamp_ms
            .cmp(&a.info.creation_timestamp_ms)
            .then(a.info.model_id.cmp(&b.info.model_id))
    })
    .map_err(invalid)?;
    let (models, next) = page(found, max, c.paging.page_token)?;
    let mut answer = json!({ "models": models });
    if let Some(n) = next {
        answer["next_page_token"] = json!(n);
    }
    Ok(Json(answer))
}

/// A model a run outputs, at a step.
#[derive(Deserialize)]
struct Output {
    #[serde(deserialize_with = "field::required")]
    model_id: String,
    #[serde(default, deserialize_with = "field::int")]
    step: Option<i64>,
}

#[derive(Deserialize)]
struct LogOutputs {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    models: Vec<Output>,
}

async fn log_outputs(State(app): State<App>, Call(c): Call<LogOutputs>) -> Answer {
    let run = c.run.id()?;
    let models: Vec<(String, i64)> = c
        .models
        .into_iter()
        .map(|m| (m.model_id, m.step.unwrap_or(0)))
        .collect();
    app.lake.logged_models().log_outputs(&run, &models).await?;
    done()
}

/// A model a run reads.
#[derive(Deserialize)]
struct Input {
    #[serde(default, deserialize_with = "field::text")]
    model_id: Option<String>,
}

#[derive(Deserialize)]
struct LogInputs {
    #[serde(flatten)]
    run: RunRef,
    /// Kept as sent: the store keeps each `DatasetInput` whole.
    #[serde(default)]
    datasets: Vec<Value>,
    #[serde(default)]
    models: Vec<Input>,
}

async fn log_inputs(State(app): State<App>, Call(c): Call<LogInputs>) -> Answer {
    let run = c.run.id()?;
    for (i, d) in c.datasets.iter().enumerate() {
        if d["dataset"]["name"].as_str().is_none() {
            return Err(invalid(format!("datasets[{i}].dataset.name is required")));
        }
    }
    let models: Vec<String> = c.models.into_iter().filter_map(|m| m.model_id).collect();
    app.lake
        .logged_models()
        .log_inputs(&run, &c.datasets, &models)
        .await?;
    done()
}
