//! `tarn serve`: one HTTP API over a lake, on axum.
//!
//! [`App::build`] takes an opened lake; [`App::router`] is the whole API (tests call it with
//! `tower::ServiceExt::oneshot`), [`App::serve`] binds it with graceful shutdown.
//!
//! Routes (all JSON unless said otherwise; errors are `{"error": {code, message, status}}`):
//! - `GET /health`, `GET /ready` (metadata store and object store reachable)
//! - `GET /api/v1/zones`
//! - `GET /api/v1/zones/{domain}/{layer}/objects?prefix=&limit=&next_token=`
//! - `PUT /api/v1/zones/{domain}/{layer}/objects/{key}` lands the body (`?force=true` to
//!   replace a raw object); `GET` the same path reads it
//! - `GET /api/v1/tables?filter=&search=&limit=&next_token=`, `GET /api/v1/tables/{table}`,
//!   `GET /api/v1/tables/{table}/history`
//! - `POST /api/v1/crawls` `{"scope": "flights/raw"}`
//! - `POST /api/v1/loads` `{"table", "source": "DOMAIN/LAYER/KEY", "mode", "key"}`
//! - `POST /api/v1/sql` `{"query", "limit", "timeout_ms"}`, answered as JSON, CSV
//!   (`Accept: text/csv`) or an Arrow IPC stream (`Accept: application/vnd.apache.arrow.stream`)
//! - `POST /api/v1/events` `{"source", "detail_type", "detail"}` records a custom event
//! - `GET /api/v1/executions?pipeline=&status=&limit=&next_token=`,
//!   `GET /api/v1/executions/{id}`, `GET /api/v1/executions/{id}/logs` (text),
//!   `POST /api/v1/executions/{id}/retry`, `POST /api/v1/executions/{id}/cancel`
//! - `GET /api/v1/models`, `GET /api/v1/models/{name}`,
//!   `POST /api/v1/models/{name}/versions/{version}/approve|reject` `{"reason"}`
//! - MLflow's tracking and registry API under `/api/2.0/mlflow/`, its artifact proxy under
//!   `/api/2.0/mlflow-artifacts/`
//! - AWS Glue's Data Catalog API on `POST /` (`X-Amz-Target: AWSGlue.<Operation>`), see
//!   the `glue` module
//! - `GET /api/v1/endpoints`; each model endpoint at `POST /endpoints/{name}/invocations` and
//!   `GET /endpoints/{name}/ping` (MLflow's scoring protocol), counters at `GET /metrics`

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod access;
mod auth;
mod docs;
mod error;
mod executions;
mod glue;
mod mlflow;
mod mlflow_artifacts;
mod mlflow_models;
mod mlflow_registry;
mod mlflow_traces;
mod mlflow_wire;
mod models;
mod monitors;
mod routes;
mod sigv4;
mod ui;

pub use docs::openapi;
pub use error::{ApiError, ErrorBody};

use std::net::SocketAddr;
use std::sync::Arc;
use tarn_lake::Lake;

/// Limits of the API: the lake's `limits:` (`tarn.yml`), every default filled in.
pub use tarn_lake::Limits;

/// The server: a lake and the limits of its API.
#[derive(Clone)]
pub struct App {
    pub(crate) lake: Lake,
    pub(crate) limits: Arc<Limits>,
    /// Whether every call needs a bearer token.
    pub(crate) auth: bool,
    /// Woken whenever an object lands through the API (pipelines dispatch at once).
    pub(crate) landed: Arc<tokio::sync::Notify>,
    /// The model endpoints served under `/endpoints/`.
    pub(crate) endpoints: Option<Arc<tarn_serving::Endpoints>>,
    /// The web UI's signed-in sessions (under `--auth`).
    pub(crate) ui_sessions: tarn_ui::session::Sessions,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to listen on {0} without auth: anyone who can reach it could read and write the lake; start with --auth (every call then needs a token from `tarn token create`), or bind a loopback address such as 127.0.0.1")]
    NotLoopback(SocketAddr),
    #[error("--auth is on but no token exists, so no call could succeed; create one first with `tarn token create --name NAME`")]
    NoTokens,
    #[error("cannot read the tokens: {0}")]
    Tokens(#[from] tarn_lake::MetadataError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

impl App {
    /// An app over `lake` with its own limits (`Lake::config.limits`, or others in tests).
    pub fn build(lake: Lake, limits: Limits) -> Self {
        App {
            lake,
            limits: Arc::new(limits),
            auth: false,
            landed: Default::default(),
            endpoints: None,
            ui_sessions: Default::default(),
        }
    }

    /// Serves these model endpoints under `/endpoints/NAME/` and their counters at `/metrics`.
    pub fn with_endpoints(mut self, endpoints: Arc<tarn_serving::Endpoints>) -> Self {
        self.endpoints = Some(endpoints);
        self
    }

    /// Requires `Authorization: Bearer TOKEN` on every call but `/health` and `/ready`.
    pub fn with_auth(mut self, on: bool) -> Self {
        self.auth = on;
        self
    }

    /// Notified each time an object lands through the API.
    pub fn landed(&self) -> Arc<tokio::sync::Notify> {
        self.landed.clone()
    }

    /// The lake this app serves.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The whole API.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// Serves on `addr` until `shutdown` resolves, then finishes in-flight requests.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        on_bound: impl FnOnce(SocketAddr),
    ) -> Result<(), ServeError> {
        if !addr.ip().is_loopback() && !self.auth {
            return Err(ServeError::NotLoopback(addr));
        }
        if self.auth {
            let live = self.lake.tokens().list().await?;
            if !live.iter().any(|t| t.revoked_at.is_none()) {
                return Err(ServeError::NoTokens);
            }
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        on_bound(listener.local_addr()?);
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
