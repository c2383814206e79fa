//! The one error shape of the API: a stable code, a message that says what to fix, the HTTP
//! status. Server faults answer a generic message; their detail goes to the log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tarn_lake::{LakeError, QueryError, StorageError, TablesError};

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// What every failed call answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `table_not_found`, `bad_key`, `unauthorized`, ...
    pub code: String,
    /// For people: what went wrong and how to fix it.
    pub message: String,
    /// The HTTP status, repeated.
    pub status: u16,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, "request failed: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the server failed to answer; the log has the detail under error id {id}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                status: self.status.as_u16(),
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<LakeError> for ApiError {
    fn from(e: LakeError) -> Self {
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            LakeError::Usage(_) => Self::new(S::BAD_REQUEST, "bad_request", msg),
            LakeError::NoSuchTable(_) => Self::new(S::NOT_FOUND, "table_not_found", msg),
            LakeError::NoSuchExecution(_) => Self::new(S::NOT_FOUND, "execution_not_found", msg),
            LakeError::ExecutionState(_) => Self::new(S::CONFLICT, "execution_state", msg),
            LakeError::Metadata(tarn_lake::MetadataError::Conflict(_)) => {
                Self::new(S::CONFLICT, "conflict", msg)
            }
            LakeError::Storage(s) => match s {
                StorageError::BadKey { .. } => Self::new(S::BAD_REQUEST, "bad_key", msg),
                StorageError::UnknownZone(_) => Self::new(S::NOT_FOUND, "zone_not_found", msg),
                StorageError::RawExists { .. } => Self::new(S::CONFLICT, "raw_object_exists", msg),
                StorageError::NotFound(_) => Self::new(S::NOT_FOUND, "object_not_found", msg),
                other => Self::internal(other),
            },
            LakeError::Tables(t) => match t {
                TablesError::Contract { .. } => Self::new(S::UNPROCESSABLE_ENTITY, "contract", msg),
                TablesError::Source { .. } => Self::new(S::UNPROCESSABLE_ENTITY, "bad_source", msg),
                TablesError::Usage(_) => Self::new(S::BAD_REQUEST, "bad_request", msg),
                TablesError::NoSuchVersion { .. } => {
                    Self::new(S::NOT_FOUND, "version_not_found", msg)
                }
                other => Self::internal(other),
            },
            LakeError::Query(q) => match q {
                QueryError::Sql { .. } => Self::new(S::BAD_REQUEST, "sql", msg),
                QueryError::ReadOnly(_) => Self::new(S::FORBIDDEN, "read_only", msg),
                QueryError::Timeout(_) => Self::new(S::REQUEST_TIMEOUT, "query_timeout", msg),
                other => Self::internal(other),
            },
            other => Self::internal(other),
        }
    }
}

/// A JSON request body; a malformed one answers our error shape, not axum's text.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct JsonBody<T>(pub T);

/// Query parameters, with rejections in our error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Params<T>(pub T);

/// Path parameters, with rejections in our error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct PathParams<T>(pub T);

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        Self::bad_request(format!(
            "the body is not the JSON this call takes: {}; see /docs for its shape (and send content-type: application/json)",
            r.body_text()
        ))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::bad_request(format!("bad query parameters: {}", r.body_text()))
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        Self::bad_request(format!("bad path: {}", r.body_text()))
    }
}
