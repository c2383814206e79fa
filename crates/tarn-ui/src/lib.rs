//! tarn-ui: the web UI `tarn serve` serves under `/ui`.
//!
//! Server-rendered HTML (maud, which escapes every value it is given) over the same lake the
//! API reads, with a small script of tarn's own and uPlot for charts, both embedded in the
//! binary: no build step, no CDN, nothing fetched at run time. Every page answers with a
//! Content-Security-Policy that allows no inline script and no other origin.
//!
//! - [`assets`]: the embedded files under `/ui/assets/`.
//! - [`layout`]: the page frame (navigation, headers) and the error page.
//! - [`overview`]: the lake at a glance: zones, tables, recent events and executions.
//! - [`catalog`]: table search and a table's page (columns, versions, history, sample rows).
//! - [`lineage`]: what reads or writes a table (pipelines, training jobs, monitors, endpoints).
//! - [`sql`]: the SQL page (editor, results, the error's position, a chart, downloads).
//! - [`experiments`]: experiments; runs with parameter and metric columns, sorting and
//!   MLflow's filter language; a run's metric histories; two or more runs compared.
//! - [`models`]: the registry: versions with approvals, aliases, runs and lineage; approve
//!   or reject with a reason.
//! - [`endpoints`]: each endpoint's traffic split, its last hour of requests, errors and
//!   latency as charts, and a request form built from the served version's signature.
//! - [`monitors`]: each monitor's checks, runs, and the latest run's figures per window as
//!   charts, with its alerts.
//! - [`session`]: signing in under `--auth` (a session cookie), and who is looking.
//! - [`pipelines`]: each pipeline's triggers and steps drawn as a graph (choices, catch).
//! - [`dashboards`]: `dashboards/NAME.yml` as pages of tiles (number, line, bar, table).
//! - [`executions`]: executions filtered and paged; one execution's timeline, attempts and
//!   logs; retry and cancel (forms that carry the UI's CSRF token).

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

pub mod assets;
pub mod catalog;
pub mod dashboards;
pub mod endpoints;
pub mod executions;
pub mod experiments;
pub mod layout;
pub mod lineage;
pub mod models;
pub mod monitors;
pub mod overview;
pub mod pipelines;
pub mod session;
pub mod sql;

use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tarn_lake::Lake;

/// What the pages read: the lake; what forms must carry; whom to wake after a retry.
#[derive(Clone)]
pub struct Ui {
    pub(crate) lake: Lake,
    /// The token every state-changing form carries (new each time the process starts).
    pub(crate) csrf: &'static str,
    /// Woken when an execution is queued again (the pipeline engine's dispatcher).
    pub(crate) wake: Option<Arc<tokio::sync::Notify>>,
    /// Sessions signed in under `--auth`.
    pub(crate) sessions: session::Sessions,
    /// The endpoints this process serves (their live versions, traffic, scoring).
    pub(crate) serving: Option<Arc<dyn endpoints::Serving>>,
    /// The zones' figures on the overview, counted in the background.
    pub(crate) zone_counts: overview::ZoneCounts,
    /// The largest form body a page takes (`limits.request_body`).
    pub(crate) body_limit: u64,
}

impl Ui {
    pub fn new(lake: Lake) -> Self {
        Ui {
            csrf: csrf_token(),
            wake: None,
            sessions: session::Sessions::default(),
            serving: None,
            zone_counts: overview::ZoneCounts::default(),
            body_limit: lake.config.limits.request_body,
            lake,
        }
    }

    /// Holds a form's body to `bytes` (the server's `limits.request_body`).
    pub fn with_body_limit(mut self, bytes: u64) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Shows what `serving` serves on the endpoint pages, and sends their requests to it.
    pub fn with_serving(mut self, serving: Arc<dyn endpoints::Serving>) -> Self {
        self.serving = Some(serving);
        self
    }

    /// Keeps signed-in sessions in `sessions` (which the server's auth reads).
    pub fn with_sessions(mut self, sessions: session::Sessions) -> Self {
        self.sessions = sessions;
        self
    }

    /// Wakes `wake` whenever the UI queues an execution again.
    pub fn waking(mut self, wake: Arc<tokio::sync::Notify>) -> Self {
        self.wake = Some(wake);
        self
    }
}

/// The process's CSRF token: random, made once, never written anywhere.
fn csrf_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Every page and asset of the UI, at `/ui...`, for a router of any state.
/// A form's body is held to `limits.request_body` (a query's text then to `limits.sql_length`).
pub fn router<S: Clone + Send + Sync + 'static>(ui: Ui) -> Router<S> {
    let limit = ui.body_limit;
    let body_limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Router::new()
        .route("/ui", get(overview::show))
        .route("/ui/", get(overview::show))
        .route("/ui/tables", get(catalog::list))
        .route("/ui/tables/{table}", get(catalog::table))
        .route("/ui/sql", get(sql::editor).post(sql::run))
        .route("/ui/sql/download", post(sql::download))
        .route("/ui/pipelines", get(pipelines::list))
        .route("/ui/pipelines/{name}", get(pipelines::show))
        .route("/ui/executions", get(executions::list))
        .route("/ui/executions/{id}", get(executions::show))
        .route("/ui/executions/{id}/logs", get(executions::logs))
        .route("/ui/executions/{id}/{action}", post(executions::act))
        .route("/ui/experiments", get(experiments::list))
        .route("/ui/experiments/{id}", get(experiments::runs))
        .route("/ui/runs/compare", get(experiments::compare))
        .route("/ui/runs/{id}", get(experiments::run))
        .route(
            "/ui/runs/{id}/artifacts/{*path}",
            get(experiments::artifact),
        )
        .route("/ui/dashboards", get(dashboards::list))
        .route("/ui/dashboards/tiles", post(dashboards::save))
        .route("/ui/dashboards/{name}", get(dashboards::show))
        .route("/ui/endpoints", get(endpoints::list))
        .route("/ui/endpoints/{name}", get(endpoints::show))
        .route("/ui/endpoints/{name}/invoke", post(endpoints::invoke))
        .route("/ui/monitors", get(monitors::list))
        .route("/ui/monitors/{name}", get(monitors::show))
        .route("/ui/models", get(models::list))
        .route("/ui/models/{name}", get(models::show))
        .route("/ui/models/{name}/aliases", post(models::alias))
        .route(
            "/ui/models/{name}/versions/{version}/decide",
            post(models::decide),
        )
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/sign-in", get(session::form).post(session::sign_in))
        .route("/ui/sign-out", post(session::sign_out))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(move |req, next| {
            layout::too_large(limit, req, next)
        }))
        .layer(axum::middleware::from_fn(layout::headers))
        .with_state(ui)
}
