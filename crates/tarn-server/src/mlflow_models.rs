//! MLflow 3's logged models (`/api/2.0/mlflow/logged-models...`), which the client's
//! `log_model` creates, uploads into and finalizes before any registration, and what runs
//! record as inputs and outputs (`runs/log-inputs`, `runs/outputs`).

use crate::mlflow::{done, int, invalid, page, pairs, required, text, Answer};
use crate::App;
use axum::extract::{Path, Query, State};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use tarn_lake::logged_models::{LoggedModel, NewLoggedModel};

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

async fn create(
    State(app): State<App>,
    crate::mlflow::MlJson(body): crate::mlflow::MlJson<Value>,
) -> Answer {
    let m = NewLoggedModel {
        experiment_id: required(&body, "experiment_id")?,
        name: text(&body, "name"),
        source_run_id: text(&body, "source_run_id"),
        model_type: text(&body, "model_type"),
        params: pairs(&body["params"]),
        tags: pairs(&body["tags"]),
    };
    let model = app.lake.meta.create_logged_model(&m).await?;
    Ok(Json(json!({ "model": model })))
}

async fn get_model(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let model = if q.get("allow_deleted").is_some_and(|v| v == "true") {
        app.lake.meta.logged_model(&id).await?.ok_or_else(|| {
            crate::mlflow::missing(&format!("Logged model with ID '{id}' not found."))
        })?
    } else {
        app.lake.meta.live_logged_model(&id).await?
    };
    Ok(Json(json!({ "model": model })))
}

/// `LoggedModelStatus` by name or number.
fn status_of(v: &Value) -> Result<&'static str, crate::mlflow::MlflowError> {
    match (v.as_str(), v.as_i64()) {
        (Some("LOGGED_MODEL_PENDING"), _) | (_, Some(1)) => Ok("LOGGED_MODEL_PENDING"),
        (Some("LOGGED_MODEL_READY"), _) | (_, Some(2)) => Ok("LOGGED_MODEL_READY"),
        (Some("LOGGED_MODEL_UPLOAD_FAILED"), _) | (_, Some(3)) => Ok("LOGGED_MODEL_UPLOAD_FAILED"),
        _ => Err(invalid(format!(
            "status must be LOGGED_MODEL_PENDING, LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED, not {v}"
        ))),
    }
}

async fn finalize(
    State(app): State<App>,
    Path(id): Path<String>,
    crate::mlflow::MlJson(body): crate::mlflow::MlJson<Value>,
) -> Answer {
    let status = status_of(&body["status"])?;
    let model = app.lake.meta.finalize_logged_model(&id, status).await?;
    Ok(Json(json!({ "model": model })))
}

async fn remove(State(app): State<App>, Path(id): Path<String>) -> Answer {
    app.lake.meta.delete_logged_model(&id).await?;
    done()
}

async fn set_tags(
    State(app): State<App>,
    Path(id): Path<String>,
    crate::mlflow::MlJson(body): crate::mlflow::MlJson<Value>,
) -> Answer {
    app.lake
        .meta
        .set_logged_model_tags(&id, &pairs(&body["tags"]))
        .await?;
    done()
}

async fn delete_tag(State(app): State<App>, Path((id, key)): Path<(String, String)>) -> Answer {
    app.lake.meta.delete_logged_model_tag(&id, &key).await?;
    done()
}

async fn log_params(
    State(app): State<App>,
    Path(id): Path<String>,
    crate::mlflow::MlJson(body): crate::mlflow::MlJson<Value>,
) -> Answer {
    app.lake
        .meta
        .log_logged_model_params(&id, &pairs(&body["params"]))
        .await?;
    done()
}

async fn search(
    State(app): State<App>,
    crate::mlflow::MlJson(body): crate::mlflow::MlJson<Value>,
) -> Answer {
    let experiments = crate::mlflow::strings_or_numbers(&body["experiment_ids"]);
    let filter = text(&body, "filter").unwrap_or_default();
    // `order_by` comes as `{field_name, ascending}` objects here.
    let order: Vec<String> = body["order_by"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    let field = o["field_name"].as_str()?;
                    let asc = o["ascending"].as_bool().unwrap_or(true);
                    Some(format!("{field} {}", if asc { "ASC" } else { "DESC" }))
                })
                .collect()
        })
        .unwrap_or_default();
    let max = int(&body, "max_results")?.unwrap_or(100).clamp(1, 10_000) as usize;
    let all = app.lake.meta.logged_models_of(&experiments).await?;
    let found = tarn_lake::run_search::search_items(all, &filter, &order, |a: &LoggedModel, b| {
        b.info
            .creation_timestamp_ms
            .cmp(&a.info.creation_timestamp_ms)
            .then(a.info.model_id.cmp(&b.info.model_id))
    })
    .map_err(invalid)?;
    let (models, next) = page(found, max, text(&body, "page_token"))?;
    let mut answer = json!({ "models": models });
    if let Some(n) = next {
        answer["next_page_token"] = json!(n);
    }
    Ok(Json(answer))
}

async fn log_outputs(
    State(app): State<App>,
    crate::mlflow::MlJson(body): crate::mlflow::MlJson<Value>,
) -> Answer {
    let run = crate::mlflow::run_id(&body)?;
    let models = body["models"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| Ok((required(m, "model_id")?, int(m, "step")?.unwrap_or(0))))
                .collect::<Result<Vec<_>, crate::mlflow::MlflowError>>()
        })
        .transpose()?
        .unwrap_or_default();
    app.lake.meta.log_outputs(&run, &models).await?;
    done()
}

async fn log_inputs(
    State(app): State<App>,
    crate::mlflow::MlJson(body): crate::mlflow::MlJson<Value>,
) -> Answer {
    let run = crate::mlflow::run_id(&body)?;
    let datasets: Vec<Value> = body["datasets"].as_array().cloned().unwrap_or_default();
    for (i, d) in datasets.iter().enumerate() {
        if d["dataset"]["name"].as_str().is_none() {
            return Err(invalid(format!("datasets[{i}].dataset.name is required")));
        }
    }
    let models: Vec<String> = body["models"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| text(m, "model_id")).collect())
        .unwrap_or_default();
    app.lake.meta.log_inputs(&run, &datasets, &models).await?;
    done()
}
