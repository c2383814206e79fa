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
//! - [`sql`]: the SQL page (editor, results, the error's position, a chart, downloads).
//! - [`executions`]: executions filtered and paged; one execution's timeline, attempts and
//!   logs; retry and cancel (forms that carry the UI's CSRF token).

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

pub mod assets;
pub mod catalog;
pub mod executions;
pub mod layout;
pub mod overview;
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
}

impl Ui {
    pub fn new(lake: Lake) -> Self {
        Ui {
            lake,
            csrf: csrf_token(),
            wake: None,
        }
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
    let body_limit = usize::try_from(ui.lake.config.limits.request_body).unwrap_or(usize::MAX);
    Router::new()
        .route("/ui", get(overview::show))
        .route("/ui/", get(overview::show))
        .route("/ui/tables", get(catalog::list))
        .route("/ui/tables/{table}", get(catalog::table))
        .route("/ui/sql", get(sql::editor).post(sql::run))
        .route("/ui/sql/download", post(sql::download))
        .route("/ui/executions", get(executions::list))
        .route("/ui/executions/{id}", get(executions::show))
        .route("/ui/executions/{id}/{action}", post(executions::act))
        .route("/ui/assets/{file}", get(assets::serve))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(layout::headers))
        .with_state(ui)
}
