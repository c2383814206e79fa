//! MLflow 3's tracing API as the 3.x client calls it: `StartTraceV3` (the client records a
//! trace once it ends, then uploads its spans as `traces.json` to the artifact location the
//! answer names), trace info by id, search with MLflow's trace filters and order, tags,
//! deletion, and assessments (feedback, expectations); plus `server-info`, which the client
//! probes when it starts. Spans uploaded through the artifact proxy are copied into the
//! lake's spans table (`mlflow_artifacts::upload` calls `record_spans`), so `tarn sql` can
//! query them.

use crate::mlflow::{
    done, int, invalid, page, required, strings, strings_or_numbers, text, Answer, MaybeJson,
    MlJson, MlflowError,
};
use crate::App;
use axum::extract::{Path, Query, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use tarn_lake::run_search::search_items;
use tarn_lake::traces::TraceInfo;

/// The most experiments one trace search may name (each is read in turn).
const MAX_SEARCH_EXPERIMENTS: usize = 100;

/// Routes shared by `/api/2.0/mlflow` and `/api/3.0/mlflow` (the client uses both).
pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/traces", post(start_trace))
        .route("/traces/search", post(search))
        .route("/traces/delete-traces", post(delete_traces))
        .route("/traces/link-to-run", post(link_to_run))
        .route("/traces/link-prompts", post(link_prompts))
        .route("/traces/{trace_id}", get(get_info))
        .route("/traces/{trace_id}/info", get(get_info))
        .route("/traces/{trace_id}/tags", patch(set_tag).delete(delete_tag))
        .route("/traces/{trace_id}/assessments", post(create_assessment))
        .route(
            "/traces/{trace_id}/assessments/{assessment_id}",
            get(get_assessment)
                .patch(update_assessment)
                .delete(delete_assessment),
        )
        .route("/server-info", get(server_info))
}

/// What a 3.x client learns about the server before it works: tarn keeps traces in its
/// metadata store and spans as artifacts, serves artifacts itself, and has no workspaces.
async fn server_info() -> Json<Value> {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": { "gateway": false },
    }))
}

fn answer(info: TraceInfo) -> Answer {
    Ok(Json(json!({ "trace": { "trace_info": info } })))
}

async fn start_trace(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let info = &body["trace"]["trace_info"];
    if !info.is_object() {
        return Err(invalid(
            "Missing value for required parameter 'trace.trace_info'.",
        ));
    }
    answer(app.lake.meta.start_trace(info).await?)
}

fn no_trace(id: &str) -> MlflowError {
    crate::mlflow::missing(&format!("Trace with ID '{id}' not found."))
}

async fn get_info(State(app): State<App>, Path(id): Path<String>) -> Answer {
    answer(
        app.lake
            .meta
            .trace(&id)
            .await?
            .ok_or_else(|| no_trace(&id))?,
    )
}

/// The experiments a search names: `locations` (v3) or `experiment_ids` (v2).
fn experiments_of(body: &Value) -> Vec<String> {
    let mut ids = strings_or_numbers(&body["experiment_ids"]);
    if let Some(locations) = body["locations"].as_array() {
        ids.extend(locations.iter().filter_map(|l| {
            l["mlflow_experiment"]["experiment_id"]
                .as_str()
                .map(str::to_string)
        }));
    }
    ids
}

async fn search(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let experiments = experiments_of(&body);
    if experiments.is_empty() {
        return Err(invalid("Missing value for required parameter 'locations'."));
    }
    if experiments.len() > MAX_SEARCH_EXPERIMENTS {
        return Err(invalid(format!(
            "A trace search names at most {MAX_SEARCH_EXPERIMENTS} experiments; got {}. Search them in parts.",
            experiments.len()
        )));
    }
    let mut all = Vec::new();
    for e in &experiments {
        all.extend(app.lake.meta.traces_of(e).await?);
    }
    let filter = text(&body, "filter").unwrap_or_default();
    let mut order = strings(&body["order_by"]);
    if order.is_empty() {
        order.push("timestamp_ms DESC".into());
    }
    let found = search_items(all, &filter, &order, |a: &TraceInfo, b: &TraceInfo| {
        a.trace_id.cmp(&b.trace_id)
    })
    .map_err(invalid)?;
    let max = crate::mlflow::max_results(&body, 100, 1000)?;
    let (traces, next) = page(found, max, text(&body, "page_token"))?;
    let mut out = json!({ "traces": traces });
    if let Some(next) = next {
        out["next_page_token"] = json!(next);
    }
    Ok(Json(out))
}

async fn delete_traces(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let experiment = required(&body, "experiment_id")?;
    let ids = strings(&body["request_ids"]);
    let max_timestamp = int(&body, "max_timestamp_millis")?;
    if ids.is_empty() && max_timestamp.is_none() {
        return Err(invalid(
            "Either `max_timestamp_millis` or `request_ids` must be specified.",
        ));
    }
    let n = app
        .lake
        .meta
        .delete_traces(&experiment, max_timestamp, int(&body, "max_traces")?, &ids)
        .await?;
    Ok(Json(json!({ "traces_deleted": n })))
}

async fn link_to_run(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let run = required(&body, "run_id")?;
    let traces = strings(&body["trace_ids"]);
    app.lake.meta.link_traces_to_run(&traces, &run).await?;
    done()
}

async fn link_prompts(State(app): State<App>, MlJson(body): MlJson<Value>) -> Answer {
    let trace = required(&body, "trace_id")?;
    let versions: Vec<String> = body["prompt_versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some(format!("{}/{}", text(p, "name")?, text(p, "version")?)))
        .collect();
    app.lake
        .meta
        .link_prompts_to_trace(&trace, &versions)
        .await?;
    done()
}

async fn set_tag(
    State(app): State<App>,
    Path(id): Path<String>,
    MlJson(body): MlJson<Value>,
) -> Answer {
    let key = required(&body, "key")?;
    let value = text(&body, "value").unwrap_or_default();
    app.lake.meta.trace_tag(&id, &key, Some(&value)).await?;
    done()
}

/// `DELETE .../tags`: the key comes in the JSON body (the client's way) or the query string.
async fn delete_tag(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    MaybeJson(body): MaybeJson,
) -> Answer {
    let key = q
        .get("key")
        .cloned()
        .or_else(|| text(&body, "key"))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| invalid("Missing value for required parameter 'key'."))?;
    app.lake.meta.trace_tag(&id, &key, None).await?;
    done()
}

async fn create_assessment(
    State(app): State<App>,
    Path(id): Path<String>,
    MlJson(body): MlJson<Value>,
) -> Answer {
    let a = &body["assessment"];
    if !a.is_object() {
        return Err(invalid(
            "Missing value for required parameter 'assessment'.",
        ));
    }
    if a["assessment_name"].as_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "Missing value for required parameter 'assessment.assessment_name'.",
        ));
    }
    let created = app.lake.meta.create_assessment(&id, a).await?;
    Ok(Json(json!({ "assessment": created })))
}

async fn get_assessment(State(app): State<App>, Path((id, aid)): Path<(String, String)>) -> Answer {
    let a = app.lake.meta.assessment(&id, &aid).await?;
    Ok(Json(json!({ "assessment": a })))
}

async fn update_assessment(
    State(app): State<App>,
    Path((id, aid)): Path<(String, String)>,
    MlJson(body): MlJson<Value>,
) -> Answer {
    let fields: Vec<String> = match &body["update_mask"] {
        Value::String(s) => s.split(',').map(|f| f.trim().to_string()).collect(),
        Value::Object(o) => o.get("paths").map(strings).unwrap_or_default(),
        _ => Vec::new(),
    };
    let a = app
        .lake
        .meta
        .update_assessment(&id, &aid, &body["assessment"], &fields)
        .await?;
    Ok(Json(json!({ "assessment": a })))
}

async fn delete_assessment(
    State(app): State<App>,
    Path((id, aid)): Path<(String, String)>,
) -> Answer {
    app.lake.meta.delete_assessment(&id, &aid).await?;
    done()
}

/// Whether `path` (under the artifact root) is a trace's spans file, and whose.
fn spans_file(path: &str) -> Option<&str> {
    let rest = path
        .trim_matches('/')
        .strip_suffix("/artifacts/traces.json")?;
    let (_, id) = rest.rsplit_once("/traces/")?;
    (!id.contains('/')).then_some(id)
}

/// Copies the spans of an uploaded `traces.json` into the lake's spans table, once per
/// trace; a file that is not a trace's spans is left alone. Failures are logged, never
/// answered: the artifact itself is stored.
pub(crate) async fn record_spans(app: &App, path: &str) {
    let Some(trace_id) = spans_file(path) else {
        return;
    };
    let Ok(Some(info)) = app.lake.meta.trace(trace_id).await else {
        return;
    };
    if let Err(e) = app
        .lake
        .record_spans(&info.experiment_id, trace_id, path)
        .await
    {
        tracing::warn!("the spans of trace {trace_id} did not reach the lake's spans table: {e}");
    }
}
