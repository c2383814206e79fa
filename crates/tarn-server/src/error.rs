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
            LakeError::Metadata(tarn_lake::MetadataError::Exists(_)) => {
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
                QueryError::Denied(_) => Self::new(S::FORBIDDEN, "access_denied", msg),
                QueryError::Timeout(_) => Self::new(S::REQUEST_TIMEOUT, "query_timeout", msg),
                QueryError::Limit { .. } => Self::new(S::BAD_REQUEST, "query_limit", msg),
                QueryError::Memory { .. } => Self::new(S::BAD_REQUEST, "query_memory", msg),
                other => Self::internal(other),
            },
            other => Self::internal(other),
        }
    }
}

/// A JSON request body, read within `limits.request_body` and `limits.json_depth`; a
/// malformed, too large or too deep one answers our error shape, naming the limit.
pub(crate) struct JsonBody<T>(pub T);

/// Why a JSON body was refused: the status, a stable code and the message.
pub(crate) struct BodyProblem(pub StatusCode, pub &'static str, pub String);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<crate::App> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(
        req: axum::extract::Request,
        app: &crate::App,
    ) -> Result<Self, Self::Rejection> {
        read_json(req, app)
            .await
            .map(JsonBody)
            .map_err(|BodyProblem(status, code, message)| ApiError::new(status, code, message))
    }
}

/// Reads a JSON body within the app's limits: its size is checked while it arrives (never
/// buffered past the limit) and its nesting before it is parsed.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    req: axum::extract::Request,
    app: &crate::App,
) -> Result<T, BodyProblem> {
    let bytes = read_body(req, app).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        BodyProblem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not the JSON this call takes: {e}; see /docs for its shape"),
        )
    })
}

/// The bytes of a JSON body, within `limits.request_body` and `limits.json_depth`.
pub(crate) async fn read_body(
    req: axum::extract::Request,
    app: &crate::App,
) -> Result<axum::body::Bytes, BodyProblem> {
    let max = app.limits.request_body;
    let too_large = || {
        BodyProblem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {max} bytes, the most this server takes for a JSON call (limits.request_body in tarn.yml); objects go to PUT /api/v1/zones/... instead"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max {
            return Err(too_large());
        }
    }
    let bytes = axum::body::to_bytes(req.into_body(), max as usize)
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .map(|s| s.is::<http_body_util::LengthLimitError>())
                .unwrap_or(false)
            {
                too_large()
            } else {
                BodyProblem(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the body broke off: {e}"),
                )
            }
        })?;
    let depth = json_depth(&bytes);
    if depth > app.limits.json_depth {
        return Err(BodyProblem(
            StatusCode::BAD_REQUEST,
            "json_too_deep",
            format!(
                "the body nests {depth} levels of arrays and objects; this server takes at most {} (limits.json_depth in tarn.yml)",
                app.limits.json_depth
            ),
        ));
    }
    Ok(bytes)
}

/// The deepest nesting of arrays and objects in a JSON text (strings skipped), in one pass
/// without recursion.
pub(crate) fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Query parameters, with rejections in our error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Params<T>(pub T);

/// Path parameters, with rejections in our error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct PathParams<T>(pub T);

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

#[cfg(test)]
mod tests {
    #[test]
    fn json_depth_skips_strings() {
        assert_eq!(super::json_depth(br#"{"a": [1, {"b": "[[[["}]}"#), 3);
        assert_eq!(super::json_depth(br#"["a\"[", 1]"#), 1);
        assert_eq!(super::json_depth(&vec![b'['; 10_000]), 10_000);
    }
}
