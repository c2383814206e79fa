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

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    status: u16,
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
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
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
