//! The frame every page shares (navigation, the style sheet and script), the headers every
//! answer carries, and the error page.

use crate::session::Viewer;
use crate::Ui;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// No inline script, no other origin, no framing: a value a user or a file put into a page
/// (a column name, a cell, a log line) can never run as script, even if it escaped escaping.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the security headers to every answer of the UI.
pub(crate) async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Same-origin: a form posted from a page says where it came from (its `Origin`), which
    // `no-referrer` would hide as `null`; other sites learn nothing.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// A form past the body limit is told which limit it passed and how to raise it (axum's own
/// answer names neither).
pub(crate) async fn too_large(limit: u64, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return res;
    }
    UiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the form is larger than {limit} bytes, the most a page takes (limits.request_body in tarn.yml); send less, or raise the limit"
        ),
    )
    .into_response()
}

/// The sections of the navigation bar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Catalog,
    Sql,
    Pipelines,
    Executions,
    Experiments,
    Models,
    Endpoints,
    Monitors,
    Dashboards,
}

/// Who is looking, for a page's handler: what the server's auth found, or no one.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .unwrap_or_default())
    }
}

/// A whole page: `title` in the tab and as the heading, `body` inside the frame, and who is
/// signed in (with the sign-out button) when someone is.
pub fn page(ui: &Ui, viewer: &Viewer, title: &str, section: Section, body: Markup) -> Html<String> {
    let lake = ui.lake.config.lake.as_str();
    let link = |href: &str, label: &str, s: Section| {
        html! { a href=(href) class=[(s == section).then_some("active")] { (label) } }
    };
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · " (lake) " · tarn" }
                    link rel="icon" href="data:,";
                    link rel="stylesheet" href="/ui/assets/tarn.css";
                    link rel="stylesheet" href="/ui/assets/uPlot.min.css";
                    script src="/ui/assets/uPlot.iife.min.js" defer {}
                    script src="/ui/assets/tarn.js" defer {}
                }
                body {
                    nav {
                        span.brand { "tarn · " (lake) }
                        (link("/ui/", "Overview", Section::Overview))
                        (link("/ui/tables", "Catalog", Section::Catalog))
                        (link("/ui/sql", "SQL", Section::Sql))
                        (link("/ui/pipelines", "Pipelines", Section::Pipelines))
                        (link("/ui/executions", "Executions", Section::Executions))
                        (link("/ui/experiments", "Experiments", Section::Experiments))
                        (link("/ui/models", "Models", Section::Models))
                        (link("/ui/endpoints", "Endpoints", Section::Endpoints))
                        (link("/ui/monitors", "Monitors", Section::Monitors))
                        (link("/ui/dashboards", "Dashboards", Section::Dashboards))
                        a href="/docs" { "API" }
                        @if let Some(name) = &viewer.name {
                            span.who {
                                (name) @if viewer.read_only { " (read-only)" } " "
                                form.inline method="post" action="/ui/sign-out" {
                                    input type="hidden" name="csrf" value=(ui.csrf);
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                    main {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
}

/// Why a page cannot be shown, as a page with its status.
pub struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        UiError {
            status,
            message: message.into(),
        }
    }
}

impl From<tarn_lake::LakeError> for UiError {
    fn from(e: tarn_lake::LakeError) -> Self {
        let status = match &e {
            tarn_lake::LakeError::NoSuchTable(_) | tarn_lake::LakeError::NoSuchExecution(_) => {
                StatusCode::NOT_FOUND
            }
            tarn_lake::LakeError::Usage(_) | tarn_lake::LakeError::Query(_) => {
                StatusCode::BAD_REQUEST
            }
            tarn_lake::LakeError::ExecutionState(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        UiError::new(status, e.to_string())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { "error · tarn" }
                    link rel="icon" href="data:,";
                    link rel="stylesheet" href="/ui/assets/tarn.css";
                }
                body {
                    nav { a href="/ui/" { "tarn" } }
                    main {
                        h1 { (self.status.as_u16()) " " (self.status.canonical_reason().unwrap_or("")) }
                        p.error { (self.message) }
                    }
                }
            }
        };
        (self.status, Html(body.into_string())).into_response()
    }
}

/// JSON safe inside a `<script type="application/json">` (the data a chart is drawn from):
/// `<`, `>` and `&` escaped, so no value can end the element.
pub fn json_island(v: &serde_json::Value) -> maud::PreEscaped<String> {
    maud::PreEscaped(
        v.to_string()
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
    )
}

/// Seconds since the epoch (with their fraction) of an RFC 3339 time.
pub fn epoch_seconds(t: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

/// Milliseconds since the epoch as people read them (UTC).
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Why the tracking store or the registry refused, as a page's status.
pub fn metadata_error(e: tarn_lake::MetadataError) -> UiError {
    let status = match &e {
        tarn_lake::MetadataError::NotFound(_) => StatusCode::NOT_FOUND,
        tarn_lake::MetadataError::Refused(_) | tarn_lake::MetadataError::Inactive(_) => {
            StatusCode::BAD_REQUEST
        }
        tarn_lake::MetadataError::Exists(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    UiError::new(status, e.to_string())
}

/// A number of bytes as people read it.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
