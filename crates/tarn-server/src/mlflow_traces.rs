//! MLflow 3's tracing API as the 3.x client calls it: `StartTraceV3` (the client records a
//! trace once it ends, then uploads its spans as `traces.json` to the artifact location the
//! answer names), trace info by id, search with MLflow's trace filters and order, tags,
//! deletion, and assessments (feedback, expectations); plus `server-info`, which the client
//! probes when it starts. Spans uploaded through the artifact proxy are copied into the
//! lake's spans table (`mlflow_artifacts::upload` calls `record_spans`), so `tarn sql` can
//! query them.

use crate::mlflow::{done, invalid, page, Answer, MlflowError};
use crate::mlflow_wire::{field, Call, Search};
use crate::App;
use axum::extract::{Path, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
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

/// `StartTraceV3`: the trace's info, kept as sent.
#[derive(Deserialize)]
struct StartTrace {
    trace: TraceIn,
}

#[derive(Deserialize)]
struct TraceIn {
    trace_info: serde_json::Map<String, Value>,
}

async fn start_trace(State(app): State<App>, Call(c): Call<StartTrace>) -> Answer {
    let info = Value::Object(c.trace.trace_info);
    answer(app.lake.traces().start_trace(&info).await?)
}

fn no_trace(id: &str) -> MlflowError {
    crate::mlflow::missing(tarn_lake::Missing::Trace { id: id.to_string() })
}

async fn get_info(State(app): State<App>, Path(id): Path<String>) -> Answer {
    answer(
        app.lake
            .traces()
            .trace(&id)
            .await?
            .ok_or_else(|| no_trace(&id))?,
    )
}

/// Where a trace lives (v3): an experiment.
#[derive(Deserialize)]
struct Location {
    #[serde(default)]
    mlflow_experiment: Option<ExperimentLocation>,
}

#[derive(Deserialize)]
struct ExperimentLocation {
    #[serde(default, deserialize_with = "field::text")]
    experiment_id: Option<String>,
}

/// A trace search names its experiments as `locations` (v3) or `experiment_ids` (v2).
#[derive(Deserialize)]
struct SearchTraces {
    #[serde(default, deserialize_with = "field::strings")]
    experiment_ids: Vec<String>,
    #[serde(default)]
    locations: Vec<Location>,
    #[serde(flatten)]
    search: Search,
}

async fn search(State(app): State<App>, Call(c): Call<SearchTraces>) -> Answer {
    let mut experiments = c.experiment_ids;
    experiments.extend(
        c.locations
            .into_iter()
            .filter_map(|l| l.mlflow_experiment?.experiment_id),
    );
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
        all.extend(app.lake.traces().traces_of(e).await?);
    }
    let s = c.search;
    let mut order = s.order_by.clone();
    if order.is_empty() {
        order.push("timestamp_ms DESC".into());
    }
    let found = search_items(all, s.filter(), &order, |a: &TraceInfo, b: &TraceInfo| {
        a.trace_id.cmp(&b.trace_id)
    })
    .map_err(invalid)?;
    let max = s.paging.max(100, 1000)?;
    let (traces, next) = page(found, max, s.paging.page_token)?;
    let mut out = json!({ "traces": traces });
    if let Some(next) = next {
        out["next_page_token"] = json!(next);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
struct DeleteTraces {
    #[serde(deserialize_with = "field::required")]
    experiment_id: String,
    #[serde(default, deserialize_with = "field::strings")]
    request_ids: Vec<String>,
    #[serde(default, deserialize_with = "field::int")]
    max_timestamp_millis: Option<i64>,
    #[serde(default, deserialize_with = "field::int")]
    max_traces: Option<i64>,
}

async fn delete_traces(State(app): State<App>, Call(c): Call<DeleteTraces>) -> Answer {
    if c.request_ids.is_empty() && c.max_timestamp_millis.is_none() {
        return Err(invalid(
            "Either `max_timestamp_millis` or `request_ids` must be specified.",
        ));
    }
    let n = app
        .lake
        .traces()
        .delete_traces(
            &c.experiment_id,
            c.max_timestamp_millis,
            c.max_traces,
            &c.request_ids,
        )
        .await?;
    Ok(Json(json!({ "traces_deleted": n })))
}

#[derive(Deserialize)]
struct LinkToRun {
    #[serde(deserialize_with = "field::required")]
    run_id: String,
    #[serde(default, deserialize_with = "field::strings")]
    trace_ids: Vec<String>,
}

async fn link_to_run(State(app): State<App>, Call(c): Call<LinkToRun>) -> Answer {
    app.lake
        .traces()
        .link_traces_to_run(&c.trace_ids, &c.run_id)
        .await?;
    done()
}

#[derive(Deserialize)]
struct PromptVersion {
    #[serde(default, deserialize_with = "field::text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "field::text")]
    version: Option<String>,
}

#[derive(Deserialize)]
struct LinkPrompts {
    #[serde(deserialize_with = "field::required")]
    trace_id: String,
    #[serde(default)]
    prompt_versions: Vec<PromptVersion>,
}

async fn link_prompts(State(app): State<App>, Call(c): Call<LinkPrompts>) -> Answer {
    let versions: Vec<String> = c
        .prompt_versions
        .into_iter()
        .filter_map(|p| Some(format!("{}/{}", p.name?, p.version?)))
        .collect();
    app.lake
        .traces()
        .link_prompts_to_trace(&c.trace_id, &versions)
        .await?;
    done()
}

/// A trace tag to set (`key`, `value`) or delete (`key`, in the JSON body, the client's way,
/// or the query string).
#[derive(Deserialize)]
struct Tag {
    #[serde(deserialize_with = "field::required")]
    key: String,
    #[serde(default, deserialize_with = "field::text")]
    value: Option<String>,
}

async fn set_tag(State(app): State<App>, Path(id): Path<String>, Call(t): Call<Tag>) -> Answer {
    let value = t.value.unwrap_or_default();
    app.lake
        .traces()
        .trace_tag(&id, &t.key, Some(&value))
        .await?;
    done()
}

async fn delete_tag(State(app): State<App>, Path(id): Path<String>, Call(t): Call<Tag>) -> Answer {
    app.lake.traces().trace_tag(&id, &t.key, None).await?;
    done()
}

/// An assessment (feedback or an expectation), kept as sent once it has a name.
#[derive(Deserialize)]
struct AssessmentIn {
    assessment: Assessment,
}

#[derive(Deserialize)]
struct Assessment {
    #[serde(deserialize_with = "field::required")]
    assessment_name: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

async fn create_assessment(
    State(app): State<App>,
    Path(id): Path<String>,
    Call(c): Call<AssessmentIn>,
) -> Answer {
    let mut a = c.assessment.rest;
    a.insert(
        "assessment_name".into(),
        json!(c.assessment.assessment_name),
    );
    let created = app
        .lake
        .traces()
        .create_assessment(&id, &Value::Object(a))
        .await?;
    Ok(Json(json!({ "assessment": created })))
}

async fn get_assessment(State(app): State<App>, Path((id, aid)): Path<(String, String)>) -> Answer {
    let a = app.lake.traces().assessment(&id, &aid).await?;
    Ok(Json(json!({ "assessment": a })))
}

/// The fields an update changes: `"a,b"`, or `{"paths": ["a", "b"]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum UpdateMask {
    Joined(String),
    Paths {
        #[serde(default)]
        paths: Vec<String>,
    },
}

#[derive(Deserialize)]
struct UpdateAssessment {
    #[serde(default)]
    assessment: Value,
    #[serde(default)]
    update_mask: Option<UpdateMask>,
}

async fn update_assessment(
    State(app): State<App>,
    Path((id, aid)): Path<(String, String)>,
    Call(c): Call<UpdateAssessment>,
) -> Answer {
    let fields: Vec<String> = match c.update_mask {
        Some(UpdateMask::Joined(s)) => s.split(',').map(|f| f.trim().to_string()).collect(),
        Some(UpdateMask::Paths { paths }) => paths,
        None => Vec::new(),
    };
    let a = app
        .lake
        .traces()
        .update_assessment(&id, &aid, &c.assessment, &fields)
        .await?;
    Ok(Json(json!({ "assessment": a })))
}

async fn delete_assessment(
    State(app): State<App>,
    Path((id, aid)): Path<(String, String)>,
) -> Answer {
    app.lake.traces().delete_assessment(&id, &aid).await?;
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
    let Ok(Some(info)) = app.lake.traces().trace(trace_id).await else {
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
