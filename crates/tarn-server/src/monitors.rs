//! Monitors over HTTP (`/api/v1/monitors`): the lake's monitors as tarn reads them, a run now
//! (the figures go to the results table and alerts go out, as `tarn monitors run`), the past
//! runs and the figures of one.

use crate::error::{ErrorBody, JsonBody, Params, PathParams};
use crate::{ApiError, App};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tarn_monitoring::{Figure, MonitorError, MonitorSummary, RunOptions, RunReport, RunSummary};
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

/// The lake's monitors, by name.
#[derive(Serialize, ToSchema)]
pub(crate) struct MonitorList {
    monitors: Vec<MonitorSummary>,
}

/// A monitor's error as an answer: a missing monitor or run is 404, files with problems or
/// a monitor that cannot run on its data 422, the lake's own failures what they are.
fn refused(e: MonitorError) -> ApiError {
    let (status, code) = match e {
        MonitorError::Lake(e) => return e.into(),
        MonitorError::Metadata(e) => return tarn_lake::LakeError::Metadata(e).into(),
        MonitorError::Config(c) => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_monitor_files",
                format!(
                    "the lake's monitor files have problems (run `tarn monitors validate`): {c}"
                ),
            )
        }
        MonitorError::BadWindow(_) | MonitorError::BadLimit(_) => {
            return ApiError::bad_request(e.to_string())
        }
        MonitorError::NoSuchMonitor { .. } => (StatusCode::NOT_FOUND, "monitor_not_found"),
        MonitorError::NoSuchRun { .. } => (StatusCode::NOT_FOUND, "monitor_run_not_found"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "monitor_failed"),
    };
    ApiError::new(status, code, e.to_string())
}

fn find(app: &App, name: &str) -> ApiResult<tarn_config::MonitorSpec> {
    tarn_monitoring::find(&app.lake.config, name).map_err(refused)
}

/// Every monitor of monitors/ with its model, sources, window, schedule and checks.
#[utoipa::path(get, path = "/api/v1/monitors", tag = "monitors",
    responses((status = 200, body = MonitorList), (status = 422, body = ErrorBody)))]
pub(crate) async fn list(State(app): State<App>) -> ApiResult<Json<MonitorList>> {
    let monitors = tarn_monitoring::summaries(&app.lake.config).map_err(refused)?;
    Ok(Json(MonitorList { monitors }))
}

/// A monitor's name.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct MonitorName {
    /// The monitor file's name without `.yml`.
    name: String,
}

/// One monitor as tarn reads it.
#[utoipa::path(get, path = "/api/v1/monitors/{name}", tag = "monitors", params(MonitorName),
    responses((status = 200, body = MonitorSummary), (status = 404, body = ErrorBody)))]
pub(crate) async fn show(
    State(app): State<App>,
    PathParams(p): PathParams<MonitorName>,
) -> ApiResult<Json<MonitorSummary>> {
    Ok(Json(tarn_monitoring::summary(&find(&app, &p.name)?)))
}

/// How to run a monitor now.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunRequest {
    /// Another window than the file's: `1h`, `1d`, `7d`, a row count (`1000`) or `all`.
    #[serde(default)]
    window: Option<String>,
}

/// Runs a monitor now: every window of its serving data checked against the baseline, the
/// figures appended to its results table, each new breach alerted.
#[utoipa::path(post, path = "/api/v1/monitors/{name}/runs", tag = "monitors", params(MonitorName),
    request_body = RunRequest,
    responses((status = 200, body = RunReport), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn run(
    State(app): State<App>,
    PathParams(p): PathParams<MonitorName>,
    JsonBody(req): JsonBody<RunRequest>,
) -> ApiResult<Json<RunReport>> {
    let spec = find(&app, &p.name)?;
    let opts = RunOptions {
        window: req
            .window
            .as_deref()
            .map(tarn_monitoring::window)
            .transpose()
            .map_err(refused)?,
        now_micros: None,
    };
    tarn_monitoring::run(&app.lake, &spec, &opts)
        .await
        .map(Json)
        .map_err(refused)
}

/// Which runs to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// Runs to answer, 1 to 1000 (default 20), newest first.
    limit: Option<usize>,
}

/// A monitor's runs, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunList {
    runs: Vec<RunSummary>,
}

/// A monitor's past runs, newest first: when, how many windows, figures and alerts.
#[utoipa::path(get, path = "/api/v1/monitors/{name}/runs", tag = "monitors",
    params(MonitorName, RunsQuery),
    responses((status = 200, body = RunList), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn runs(
    State(app): State<App>,
    PathParams(p): PathParams<MonitorName>,
    Params(q): Params<RunsQuery>,
) -> ApiResult<Json<RunList>> {
    let spec = find(&app, &p.name)?;
    let runs = tarn_monitoring::runs(&app.lake, &spec, q.limit.unwrap_or(20))
        .await
        .map_err(refused)?;
    Ok(Json(RunList { runs }))
}

/// Which run's figures.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportQuery {
    /// A run id from the runs list (default: the latest run).
    run: Option<String>,
    /// Only the windows where something alerted.
    #[serde(default)]
    alerts: bool,
}

/// The figures of one run.
#[derive(Serialize, ToSchema)]
pub(crate) struct Report {
    monitor: String,
    /// The results table they are read from.
    table: String,
    /// One per window x check x field, by window, check and field (none for a monitor never
    /// run).
    figures: Vec<Figure>,
}

/// The figures of a monitor's latest run (or of `run`), as its results table holds them.
#[utoipa::path(get, path = "/api/v1/monitors/{name}/report", tag = "monitors",
    params(MonitorName, ReportQuery),
    responses((status = 200, body = Report), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn report(
    State(app): State<App>,
    PathParams(p): PathParams<MonitorName>,
    Params(q): Params<ReportQuery>,
) -> ApiResult<Json<Report>> {
    let spec = find(&app, &p.name)?;
    let figures = tarn_monitoring::figures(&app.lake, &spec, q.run.as_deref(), q.alerts)
        .await
        .map_err(refused)?;
    Ok(Json(Report {
        monitor: spec.name.clone(),
        table: spec.results_table(),
        figures,
    }))
}
