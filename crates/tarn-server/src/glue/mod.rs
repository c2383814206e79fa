//! AWS Glue's Data Catalog API on `POST /` (the JSON 1.1 protocol: `X-Amz-Target:
//! AWSGlue.<Operation>`, `application/x-amz-json-1.1`, errors as `{"__type", "message"}`), so
//! boto3, the AWS SDK for pandas and engines' Glue clients read tarn's catalog as Glue's: each
//! zone a database `DOMAIN_LAYER`, each catalogued table a Glue table. Tables other engines
//! register through `CreateTable` join the catalog as external tables that `tarn sql` reads.
//!
//! Paging follows Glue: at most 100 databases or tables and 1,000 partitions a page, with an
//! opaque `NextToken`; a larger `MaxResults` is a `ValidationException`.

mod expression;
mod ops;
mod shapes;

use crate::App;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The header that names a JSON 1.1 operation.
pub(crate) const TARGET: &str = "x-amz-target";
const PREFIX: &str = "AWSGlue.";

/// The Glue operation a request names, if it is a Glue request.
pub(crate) fn operation(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(TARGET)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(PREFIX))
}

/// Whether a Glue operation only reads the catalog (changes nothing in it).
pub(crate) fn is_read(op: &str) -> bool {
    // CreateDatabase changes nothing in tarn (its databases are its zones and Spark's two);
    // its handler asks for write on any name that is not Spark's.
    op.starts_with("Get")
        || op.starts_with("Search")
        || op.starts_with("BatchGet")
        || op == "CreateDatabase"
}

/// An error in Glue's shape: the exception's name and a message.
#[derive(Debug)]
pub(crate) struct GlueError {
    pub kind: &'static str,
    pub message: String,
    pub status: StatusCode,
}

impl GlueError {
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        GlueError {
            kind,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidInputException", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new("EntityNotFoundException", message)
    }

    pub(crate) fn denied(message: impl Into<String>) -> Self {
        GlueError {
            status: StatusCode::FORBIDDEN,
            ..Self::new("AccessDeniedException", message)
        }
    }

    /// The same error, its message prefixed with where in the input it was found.
    pub(crate) fn within(mut self, place: &str) -> Self {
        if !self.message.starts_with(place) {
            self.message = format!("{place}.{}", self.message);
        }
        self
    }

    fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, "Glue request failed: {detail}");
        GlueError {
            kind: "InternalServiceException",
            message: format!(
                "the server failed to answer; the log has the detail under error id {id}"
            ),
            status: StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for GlueError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"__type": self.kind, "message": self.message});
        let mut res = (self.status, body.to_string()).into_response();
        let h = res.headers_mut();
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        if let Ok(v) = HeaderValue::from_str(self.kind) {
            h.insert("x-amzn-errortype", v);
        }
        res
    }
}

impl From<tarn_lake::LakeError> for GlueError {
    fn from(e: tarn_lake::LakeError) -> Self {
        use tarn_lake::LakeError as L;
        let msg = e.to_string();
        match e {
            L::NoSuchTable(_) | L::NoSuchDatabase(_) | L::NoSuchPartition(_) => {
                Self::not_found(msg)
            }
            L::TableExists(_) | L::PartitionExists(_) => Self::new("AlreadyExistsException", msg),
            L::Usage(_) => Self::invalid(msg),
            L::Storage(tarn_lake::StorageError::UnknownZone(_)) => Self::not_found(msg),
            other => Self::internal(other),
        }
    }
}

impl From<tarn_lake::MetadataError> for GlueError {
    fn from(e: tarn_lake::MetadataError) -> Self {
        Self::internal(e)
    }
}

/// `POST /` with `X-Amz-Target: AWSGlue.<Operation>`.
pub(crate) async fn handle(
    State(app): State<App>,
    axum::extract::Extension(access): axum::extract::Extension<crate::access::Access>,
    req: Request,
) -> Response {
    let Some(op) = operation(req.headers()).map(str::to_string) else {
        return GlueError::new(
            "UnknownOperationException",
            "POST / serves AWS Glue's API: name the operation in X-Amz-Target (AWSGlue.GetTables, ...); tarn's own API lives under /api/v1",
        )
        .into_response();
    };
    let bytes = match crate::error::read_body(req, &app).await {
        Ok(b) => b,
        Err(crate::error::BodyProblem(status, _, message)) => {
            let mut e = GlueError::new(
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "ValidationException"
                } else {
                    "SerializationException"
                },
                message,
            );
            e.status = status;
            return e.into_response();
        }
    };
    let input: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return GlueError::new("SerializationException", "the body must be a JSON object")
                    .into_response()
            }
            Err(e) => {
                return GlueError::new(
                    "SerializationException",
                    format!("the body is not JSON: {e}"),
                )
                .into_response()
            }
        }
    };
    let caller = ops::Caller {
        app: &app,
        access: &access,
        op: &op,
    };
    match ops::run(&caller, &input).await {
        Ok(answer) => {
            let mut res = answer.to_string().into_response();
            res.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            res
        }
        Err(e) => e.into_response(),
    }
}

/// One page of `items` after `token` (opaque: the hex of the last key given), at most `max`.
pub(crate) fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    input: &Value,
    default: usize,
    most: usize,
) -> Result<(Vec<T>, Option<String>), GlueError> {
    let max = match input.get("MaxResults") {
        None | Some(Value::Null) => default,
        Some(v) => {
            let n = v.as_i64().ok_or_else(|| {
                GlueError::new("ValidationException", "MaxResults must be an integer")
            })?;
            if n < 1 || n as usize > most {
                return Err(GlueError::new(
                    "ValidationException",
                    format!("1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and {most}"),
                ));
            }
            n as usize
        }
    };
    let after = match input.get("NextToken").and_then(Value::as_str) {
        None | Some("") => None,
        Some(t) => Some(
            hex::decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| GlueError::invalid("NextToken is not one this server gave"))?,
        ),
    };
    let mut rest: Vec<T> = match &after {
        None => items,
        Some(a) => items.into_iter().filter(|i| key(i) > *a).collect(),
    };
    let next = (rest.len() > max).then(|| hex::encode(key(&rest[max - 1])));
    rest.truncate(max);
    Ok((rest, next))
}
