//! The pipeline half of the API: custom events in (`POST /api/v1/events`), and executions
//! out (list, one with its attempts, logs as text, retry, cancel). The engine that runs them
//! lives beside the server in `tarn serve`.

use crate::error::{ErrorBody, JsonBody, Params, PathParams};
use crate::{ApiError, App};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use tarn_lake::{ExecutionDetail, ExecutionPage, ExecutionRecord};
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

/// A custom event, as EventBridge's `PutEvents` takes it.
#[derive(Deserialize, ToSchema)]
pub(crate) struct PutEvent {
    /// Who sent it, e.g. `billing`; matched by `event_rule.source`.
    source: String,
    /// What happened, e.g. `invoice.paid`; matched by `event_rule.detail_type`.
    detail_type: String,
    /// A JSON object: the event's payload.
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// The recorded event.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventRecorded {
    event_id: String,
}

/// Records a custom event; pipelines whose `event_rule` matches start an execution.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = PutEvent,
    responses((status = 201, body = EventRecorded), (status = 400, body = ErrorBody)))]
pub(crate) async fn put_event(
    State(app): State<App>,
    JsonBody(e): JsonBody<PutEvent>,
) -> ApiResult<impl IntoResponse> {
    let event_id = app
        .lake
        .put_event(&e.source, &e.detail_type, e.detail)
        .await?;
    app.landed.notify_one();
    Ok((StatusCode::CREATED, Json(EventRecorded { event_id })))
}

/// Which executions to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExecutionQuery {
    /// Only this pipeline's.
    pipeline: Option<String>,
    /// Only those with this status: pending, running, succeeded, failed or cancelled.
    status: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// The `next_token` of the previous page.
    next_token: Option<String>,
}

/// Executions, newest first.
#[utoipa::path(get, path = "/api/v1/executions", tag = "executions", params(ExecutionQuery),
    responses((status = 200, body = ExecutionPage), (status = 400, body = ErrorBody)))]
pub(crate) async fn list(
    State(app): State<App>,
    Params(q): Params<ExecutionQuery>,
) -> ApiResult<Json<ExecutionPage>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    Ok(Json(
        app.lake
            .executions_page(
                q.pipeline.as_deref(),
                q.status.as_deref(),
                q.next_token.as_deref(),
                limit,
            )
            .await?,
    ))
}

/// An execution's id.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ExecutionId {
    /// As `tarn executions list` shows it.
    id: String,
}

/// One execution with every attempt of its steps (input, output, error, timings, logs).
#[utoipa::path(get, path = "/api/v1/executions/{id}", tag = "executions", params(ExecutionId),
    responses((status = 200, body = ExecutionDetail), (status = 404, body = ErrorBody)))]
pub(crate) async fn show(
    State(app): State<App>,
    PathParams(p): PathParams<ExecutionId>,
) -> ApiResult<Json<ExecutionDetail>> {
    Ok(Json(app.lake.execution(&p.id).await?))
}

/// The logs (stdout and stderr) of every attempt, as text.
#[utoipa::path(get, path = "/api/v1/executions/{id}/logs", tag = "executions", params(ExecutionId),
    responses((status = 200, body = String, content_type = "text/plain"), (status = 404, body = ErrorBody)))]
pub(crate) async fn logs(
    State(app): State<App>,
    PathParams(p): PathParams<ExecutionId>,
) -> ApiResult<impl IntoResponse> {
    let text = app.lake.execution_logs(&p.id).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

/// Runs a failed or cancelled execution again from the step it stopped at.
#[utoipa::path(post, path = "/api/v1/executions/{id}/retry", tag = "executions", params(ExecutionId),
    responses((status = 200, body = ExecutionRecord), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the execution is not failed or cancelled")))]
pub(crate) async fn retry(
    State(app): State<App>,
    PathParams(p): PathParams<ExecutionId>,
) -> ApiResult<Json<ExecutionRecord>> {
    let e = app.lake.retry_execution(&p.id).await?;
    app.landed.notify_one();
    Ok(Json(e))
}

/// Cancels a pending or running execution; a running step is killed within seconds.
#[utoipa::path(post, path = "/api/v1/executions/{id}/cancel", tag = "executions", params(ExecutionId),
    responses((status = 200, body = ExecutionRecord), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the execution is not pending or running")))]
pub(crate) async fn cancel(
    State(app): State<App>,
    PathParams(p): PathParams<ExecutionId>,
) -> ApiResult<Json<ExecutionRecord>> {
    Ok(Json(app.lake.cancel_execution(&p.id).await?))
}
