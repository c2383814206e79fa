//! Pipeline executions: the list, filtered by pipeline and status and paged; an execution's
//! page with its steps' attempts on a timeline, their input, output, error and logs (which
//! follow a running step), and retry and cancel.

use crate::layout::{page, Section, UiError};
use crate::session::Viewer;
use crate::Ui;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

/// Executions one page lists.
const PAGE: usize = 50;
/// The statuses an execution can have, for the filter.
const STATUSES: [&str; 5] = ["pending", "running", "succeeded", "failed", "cancelled"];

#[derive(Deserialize)]
pub(crate) struct Filter {
    pipeline: Option<String>,
    status: Option<String>,
    next_token: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub(crate) async fn list(
    State(ui): State<Ui>,
    viewer: Viewer,
    Query(f): Query<Filter>,
) -> Result<Html<String>, UiError> {
    let lake = &ui.lake;
    let (pipeline, status) = (nonempty(&f.pipeline), nonempty(&f.status));
    let page_of = lake
        .executions_page(pipeline, status, nonempty(&f.next_token), PAGE)
        .await?;
    // The pipelines the filter offers: those whose files read well (a broken one is still
    // found by its name in the list).
    let pipelines: Vec<String> = tarn_config::load_pipelines(&lake.config)
        .map(|specs| specs.into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    let body = html! {
        form.search method="get" action="/ui/executions" {
            label { "pipeline " select name="pipeline" {
                option value="" { "any" }
                @for p in &pipelines { option value=(p) selected[pipeline == Some(p.as_str())] { (p) } }
            } }
            label { " status " select name="status" {
                option value="" { "any" }
                @for s in STATUSES { option value=(s) selected[status == Some(s)] { (s) } }
            } }
            " " button type="submit" { "Filter" }
        }
        table {
            thead { tr { th { "execution" } th { "pipeline" } th { "status" } th { "step" } th { "created" } th { "finished" } th { "error" } } }
            tbody {
                @for e in &page_of.items {
                    tr {
                        td.mono { a href={ "/ui/executions/" (e.id) } { (e.id) } }
                        td { (e.pipeline) }
                        td { span class={ "status " (e.status) } { (e.status) } }
                        td { (e.step.as_deref().unwrap_or("")) }
                        td { (e.created_at) }
                        td { (e.finished_at.as_deref().unwrap_or("")) }
                        td.error { (e.error.as_deref().unwrap_or("").chars().take(200).collect::<String>()) }
                    }
                }
            }
        }
        @if let Some(t) = &page_of.next_token {
            p.pages { a href={ "/ui/executions?pipeline=" (pipeline.unwrap_or("")) "&status=" (status.unwrap_or("")) "&next_token=" (crate::catalog::percent(t)) } { "older →" } }
        }
    };
    Ok(page(&ui, &viewer, "Executions", Section::Executions, body))
}

fn json(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

pub(crate) async fn show(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Html<String>, UiError> {
    let lake = &ui.lake;
    let d = lake.execution(&id).await?;
    let e = &d.execution;
    // The timeline: each attempt as a bar from its start to its end (or now), on one scale.
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let spans: Vec<(f64, f64)> = d
        .attempts
        .iter()
        .map(|a| {
            let start = crate::layout::epoch_seconds(&a.started_at).unwrap_or(now);
            let end = a
                .finished_at
                .as_deref()
                .and_then(crate::layout::epoch_seconds)
                .unwrap_or(now);
            (start, end.max(start))
        })
        .collect();
    let t0 = spans.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let t1 = spans.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    let width = (t1 - t0).max(0.001);
    let live = matches!(e.status.as_str(), "pending" | "running");
    let action = |verb: &str, label: &str| -> Markup {
        html! {
            form.inline method="post" action={ "/ui/executions/" (e.id) "/" (verb) } {
                input type="hidden" name="csrf" value=(ui.csrf);
                button type="submit" { (label) }
            }
        }
    };
    let body = html! {
        p {
            "pipeline " strong { (e.pipeline) } " · "
            span class={ "status " (e.status) } { (e.status) }
            " · created " (e.created_at)
            @if let Some(f) = &e.finished_at { " · finished " (f) }
            " · started by event " span.mono { (e.event_id) }
        }
        @if let Some(err) = &e.error { p.error { (err) } }
        p {
            @if live && viewer.may_write() { (action("cancel", "Cancel")) }
            @if matches!(e.status.as_str(), "failed" | "cancelled") && viewer.may_write() { (action("retry", "Retry from the step it stopped at")) }
        }
        section {
            h2 { "Timeline" }
            div.timeline {
                @for (a, (start, end)) in d.attempts.iter().zip(&spans) {
                    div.lane {
                        span.lane-label { (a.step) " #" (a.attempt) }
                        span.track {
                            span class={ "bar " (a.status) }
                                data-left=(format!("{:.2}", (start - t0) / width * 100.0))
                                data-width=(format!("{:.2}", ((end - start) / width * 100.0).max(0.5)))
                                title={ (a.status) ", " (format!("{:.0}", (end - start) * 1000.0)) " ms" } {}
                        }
                    }
                }
            }
        }
        section {
            h2 { "Input" }
            pre { (json(&e.input)) }
        }
        @if let Some(o) = &e.output { section { h2 { "Output" } pre { (json(o)) } } }
        section {
            h2 { "Attempts" }
            @for a in &d.attempts {
                details open[matches!(a.status.as_str(), "running" | "failed" | "cancelled")] {
                    summary { strong { (a.step) } " attempt " (a.attempt) ": " span class={ "status " (a.status) } { (a.status) } " · " (a.started_at) @if !a.node.is_empty() { " · on " (a.node) } }
                    @if let Some(err) = &a.error { p.error { (err) } }
                    h3 { "input" } pre { (json(&a.input)) }
                    @if let Some(o) = &a.output { h3 { "output" } pre { (json(o)) } }
                    h3 { "logs" }
                    pre.logs data-attempt=(a.id) data-follow=[(a.status == "running").then(|| format!("/ui/executions/{}/logs?attempt={}", e.id, crate::catalog::percent(&a.id)))] { (a.logs) }
                }
            }
        }
    };
    Ok(page(
        &ui,
        &viewer,
        &format!("Execution {}", e.id),
        Section::Executions,
        body,
    ))
}

#[derive(Deserialize)]
pub(crate) struct Action {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn act(
    State(ui): State<Ui>,
    Path((id, verb)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<Action>,
) -> Response {
    if let Err(e) = crate::session::check_form(&ui, &headers, &f.csrf) {
        return e.into_response();
    }
    let done = match verb.as_str() {
        "retry" => ui.lake.retry_execution(&id).await.map(|_| {
            if let Some(w) = &ui.wake {
                w.notify_one();
            }
        }),
        "cancel" => ui.lake.cancel_execution(&id).await.map(|_| ()),
        _ => {
            return UiError::new(StatusCode::NOT_FOUND, format!("no action `{verb}`"))
                .into_response()
        }
    };
    match done {
        Ok(()) => Redirect::to(&format!("/ui/executions/{id}")).into_response(),
        Err(e) => UiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct Attempt {
    #[serde(default)]
    attempt: String,
}

/// The logs of one attempt (`?attempt=ID`) as text, which a running step's page reads again
/// every 2 s (a UI path, so a signed-in browser's session cookie is enough).
pub(crate) async fn logs(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Query(q): Query<Attempt>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), UiError> {
    let detail = ui.lake.execution(&id).await?;
    let attempt = detail
        .attempts
        .iter()
        .find(|a| a.id == q.attempt)
        .ok_or_else(|| {
            UiError::new(
                StatusCode::NOT_FOUND,
                format!("execution `{id}` has no attempt `{}`", q.attempt),
            )
        })?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        attempt.logs.clone(),
    ))
}
