//! What can go wrong serving a request, answered in MLflow's shape
//! (`{"error_code": "BAD_REQUEST", "message": "..."}`) with MLflow's status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A request that could not be answered with predictions.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// The input cannot be read or does not fit the model (400, `BAD_REQUEST`).
    #[error("{0}")]
    BadRequest(String),
    /// The body's media type is not one the endpoint reads (415, plain text as MLflow).
    #[error("{0}")]
    Unsupported(String),
    /// No such endpoint (404, `RESOURCE_DOES_NOT_EXIST`).
    #[error("{0}")]
    NotFound(String),
    /// The body is over the endpoint's limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The endpoint cannot take the request now: its queue is full, its model is loading or
    /// its server is restarting (503; retry).
    #[error("{0}")]
    Unavailable(String),
    /// The request took longer than the endpoint's timeout (504, as MLflow).
    #[error("{0}")]
    Timeout(String),
    /// The model failed on valid input (500, `INTERNAL_ERROR`).
    #[error("{0}")]
    Internal(String),
}

/// Why an endpoint cannot serve what it names (checked when it is deployed, and each time it
/// follows its model URI).
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The endpoint's spec is invalid; `problem` names the value and the fix.
    #[error("{problem}")]
    Spec {
        field: &'static str,
        problem: String,
    },
    #[error("the inference log goes to {table}, but the lake has no domain `{domain}`; declare it under `domains:` in tarn.yml or set log_domain")]
    NoLogDomain { table: String, domain: String },
    #[error("`{uri}` does not name a registered model version")]
    NotAVersion { uri: String },
    #[error("model {model} has no version {version}")]
    NoVersion { model: String, version: String },
    #[error("{model} version {version} is {status} and endpoints serve approved versions only; approve it (`tarn models approve {model} {version}`) or set the model tag {tag}=optional")]
    NotApproved {
        model: String,
        version: String,
        status: String,
        tag: &'static str,
    },
    #[error(transparent)]
    Lake(#[from] tarn_lake::LakeError),
    #[error(transparent)]
    Metadata(#[from] tarn_lake::MetadataError),
}

impl ServingError {
    pub fn status(&self) -> StatusCode {
        match self {
            ServingError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServingError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServingError::NotFound(_) => StatusCode::NOT_FOUND,
            ServingError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServingError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServingError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ServingError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ServingError::BadRequest(_) | ServingError::TooLarge(_) => "BAD_REQUEST",
            ServingError::Unsupported(_) => "UNSUPPORTED_MEDIA_TYPE",
            ServingError::NotFound(_) => "RESOURCE_DOES_NOT_EXIST",
            ServingError::Unavailable(_) => "TEMPORARILY_UNAVAILABLE",
            ServingError::Timeout(_) => "DEADLINE_EXCEEDED",
            ServingError::Internal(_) => "INTERNAL_ERROR",
        }
    }
}

impl IntoResponse for ServingError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ServingError::Unsupported(m) = &self {
            return (status, [("content-type", "text/plain")], m.clone()).into_response();
        }
        let body = serde_json::json!({"error_code": self.code(), "message": self.to_string()});
        let mut r = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        r
    }
}

/// Why an endpoint could not load a model version; the version it held keeps serving, and
/// the endpoint's state says this.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Resolve(#[from] DeployError),
    #[error("cannot load {model} version {version}: {source}")]
    Version {
        model: String,
        version: String,
        #[source]
        source: Box<LoadError>,
    },
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Download(#[from] tarn_lake::LakeError),
    #[error("its MLmodel has the flavors [{}]; endpoints serve `onnx` in process and `python_function` behind MLflow's scoring server, or give the endpoint a `command`", .flavors.join(", "))]
    Flavors { flavors: Vec<String> },
    #[error(transparent)]
    Onnx(#[from] tarn_onnx::OnnxError),
    #[error("the model fails on a made-up row of its signature: {0}")]
    Warm(ServingError),
    #[error(transparent)]
    ModelServer(#[from] ModelServerError),
}

/// Why a bring-your-own model server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ModelServerError {
    #[error("cannot make the HTTP client for the model server: {0}")]
    Client(#[source] reqwest::Error),
    #[error("no free loopback port for the model server: {0}")]
    Port(#[source] std::io::Error),
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the model server exited ({status}) before answering /ping; its output is in {log}:\n{tail}")]
    Exited {
        status: String,
        log: String,
        tail: String,
    },
    #[error("the model server did not answer /ping on port {port} within {seconds}s; its output is in {log}")]
    Silent {
        port: u16,
        seconds: u64,
        log: String,
    },
}
