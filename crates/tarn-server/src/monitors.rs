//! Monitors over HTTP (`/api/v1/monitors`): the lake's monitors as tarn reads them, and a run
//! now (the figures go to the results table and alerts go out, as `tarn monitors run`).

use crate::error::{ErrorBody, JsonBody, PathParams};
use crate::{ApiError, App};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tarn_monitoring::{MonitorError, MonitorSummary, RunOptions, RunReport};
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

/// The lake's monitors, by name.
#[derive(Serialize, ToSchema)]
pub(crate) struct MonitorList {
    monitors: Vec<MonitorSummary>,
}

fn specs(app: &App) -> ApiResult<Vec<tarn_config::MonitorSpec>> {
    tarn_config::load_monitors(&app.lake.config).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_monitor_files",
            format!("the lake's monitor files have problems (run `tarn monitors validate`): {e}"),
        )
    })
}

fn find(app: &App, name: &str) -> ApiResult<tarn_config::MonitorSpec> {
    let all = specs(app)?;
    let known: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
    all.into_iter().find(|s| s.name == name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "monitor_not_found",
            format!(
                "no monitor `{name}`; monitors: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        )
    })
}

/// Every monitor of monitors/ with its model, sources, window, schedule and checks.
#[utoipa::path(get, path = "/api/v1/monitors", tag = "monitors",
    responses((status = 200, body = MonitorList), (status = 422, body = ErrorBody)))]
pub(crate) async fn list(State(app): State<App>) -> ApiResult<Json<MonitorList>> {
    let monitors = specs(&app)?.iter().map(tarn_monitoring::summary).collect();
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
    let window = match &req.window {
        Some(w) => Some(tarn_config::parse_window(w).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`window: {w}` is not a window: write a length (30m, 1h, 1d, 7d), a row count (1000) or `all`"
            ))
        })?),
        None => None,
    };
    let opts = RunOptions {
        window,
        now_micros: None,
    };
    match tarn_monitoring::run(&app.lake, &spec, &opts).await {
        Ok(r) => Ok(Json(r)),
        Err(MonitorError::Lake(e)) => Err(e.into()),
        Err(MonitorError::Metadata(e)) => Err(tarn_lake::LakeError::Metadata(e).into()),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "monitor_failed",
            e.to_string(),
        )),
    }
}
