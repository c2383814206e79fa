//! The frame every page shares (navigation, the style sheet and script), the headers every
//! answer carries, and the error page.

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
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// The sections of the navigation bar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Catalog,
    Sql,
    Executions,
}

/// A whole page: `title` in the tab and as the heading, `body` inside the frame.
pub fn page(lake: &str, title: &str, section: Section, body: Markup) -> Html<String> {
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
                        (link("/ui/executions", "Executions", Section::Executions))
                        a href="/docs" { "API" }
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
