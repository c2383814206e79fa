//! Experiments and runs: each experiment; its runs with a column per parameter and metric,
//! sorted by any of them and found with MLflow's filter language, paged; a run's page with
//! its parameters, tags and each metric's history as a chart; a compare page for two or more
//! runs with the differences marked and each metric's histories overlaid.

use crate::catalog::percent;
use crate::layout::{json_island as island, metadata_error, page, when, Section, UiError};
use crate::session::Viewer;
use crate::Ui;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeSet;
use tarn_lake::tracking::Run;

/// Runs one page lists.
const PAGE: usize = 50;
/// Runs a compare page takes at most.
const COMPARE: usize = 10;

pub(crate) async fn list(State(ui): State<Ui>, viewer: Viewer) -> Result<Html<String>, UiError> {
    let tracking = ui.lake.tracking();
    let experiments = tracking
        .experiments(Some("active"))
        .await
        .map_err(metadata_error)?;
    let mut rows = Vec::new();
    for e in &experiments {
        let (active, _) = tracking
            .run_counts(&e.experiment_id)
            .await
            .map_err(metadata_error)?;
        rows.push((e, active));
    }
    let body = html! {
        table {
            thead { tr { th.num { "id" } th { "experiment" } th.num { "runs" } th { "created" } th { "artifacts" } } }
            tbody {
                @for (e, runs) in &rows {
                    tr {
                        td.num { (e.experiment_id) }
                        td { a href={ "/ui/experiments/" (e.experiment_id) } { (e.name) } }
                        td.num { (runs) }
                        td { (when(e.creation_time)) }
                        td.mono { (e.artifact_location) }
                    }
                }
            }
        }
    };
    Ok(page(
        &ui,
        &viewer,
        "Experiments",
        Section::Experiments,
        body,
    ))
}

#[derive(Deserialize)]
pub(crate) struct RunsQuery {
    #[serde(default)]
    filter: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    page: usize,
}

fn metric_of<'a>(r: &'a Run, key: &str) -> Option<&'a tarn_lake::tracking::Metric> {
    r.data.metrics.iter().find(|m| m.key == key)
}

fn param_of<'a>(r: &'a Run, key: &str) -> Option<&'a str> {
    r.data
        .params
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

pub(crate) async fn runs(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<Html<String>, UiError> {
    let tracking = ui.lake.tracking();
    let experiment = tracking
        .experiment(&id)
        .await
        .map_err(metadata_error)?
        .ok_or_else(|| UiError::new(StatusCode::NOT_FOUND, format!("no experiment `{id}`")))?;
    let order: Vec<String> = if q.order.trim().is_empty() {
        Vec::new()
    } else {
        vec![q.order.trim().to_string()]
    };
    let found = tracking
        .search_runs(
            std::slice::from_ref(&id),
            Some("active"),
            q.filter.trim(),
            &order,
            q.page * PAGE,
            PAGE,
        )
        .await;
    let (runs, more, problem) = match found {
        Ok((runs, more)) => (runs, more, None),
        Err(tarn_lake::MetadataError::Refused(why)) => (Vec::new(), false, Some(why)),
        Err(e) => return Err(metadata_error(e)),
    };
    let (params, metrics) = keys(&runs);
    let base = format!("/ui/experiments/{id}?filter={}", percent(&q.filter));
    let sort = |column: String| -> Markup {
        let (next, mark) = if q.order == format!("{column} DESC") {
            (format!("{column} ASC"), " ↓")
        } else if q.order == format!("{column} ASC") {
            (format!("{column} DESC"), " ↑")
        } else {
            (format!("{column} DESC"), "")
        };
        html! { a href={ (base) "&order=" (percent(&next)) } { (mark) "⇅" } }
    };
    let body = html! {
        form.search method="get" action={ "/ui/experiments/" (id) } {
            input type="search" name="filter" value=(q.filter) placeholder="metrics.rmse < 20 and params.max_iter = '100'";
            input type="hidden" name="order" value=(q.order);
            " " button type="submit" { "Search" }
        }
        @if let Some(why) = &problem { p.error { (why) } }
        @if runs.is_empty() && problem.is_none() {
            p.quiet { @if q.filter.trim().is_empty() { "This experiment has no run yet." } @else { "No run matches this filter." } }
        }
        form method="get" action="/ui/runs/compare" {
            table.runs {
                thead {
                    tr {
                        th {}
                        th { "run" } th { "status" } th { "started " (sort("attributes.start_time".into())) }
                        @for p in &params { th.param { (p) " " (sort(format!("params.`{p}`"))) } }
                        @for m in &metrics { th.metric.num { (m) " " (sort(format!("metrics.`{m}`"))) } }
                    }
                }
                tbody {
                    @for r in &runs {
                        tr {
                            td { input type="checkbox" name="ids" value=(r.info.run_id); }
                            td { a href={ "/ui/runs/" (r.info.run_id) } { (if r.info.run_name.is_empty() { &r.info.run_id } else { &r.info.run_name }) } }
                            td { span class={ "status " (r.info.status.to_lowercase()) } { (r.info.status) } }
                            td { (when(r.info.start_time)) }
                            @for p in &params { td { (param_of(r, p).unwrap_or("")) } }
                            @for m in &metrics { td.num { (metric_of(r, m).map(|m| number(m.value)).unwrap_or_default()) } }
                        }
                    }
                }
            }
            @if runs.len() > 1 { button type="submit" { "Compare the chosen runs" } }
        }
        p.pages {
            @if q.page > 0 { a href={ (base) "&order=" (percent(&q.order)) "&page=" (q.page - 1) } { "← newer" } " " }
            @if more { a href={ (base) "&order=" (percent(&q.order)) "&page=" (q.page + 1) } { "more →" } }
        }
    };
    Ok(page(
        &ui,
        &viewer,
        &format!("Experiment {}", experiment.name),
        Section::Experiments,
        body,
    ))
}

/// The parameter and metric keys of `runs`, each once, in order.
fn keys(runs: &[Run]) -> (BTreeSet<&str>, BTreeSet<&str>) {
    let params = runs
        .iter()
        .flat_map(|r| r.data.params.iter().map(|p| p.key.as_str()))
        .collect();
    let metrics = runs
        .iter()
        .flat_map(|r| r.data.metrics.iter().map(|m| m.key.as_str()))
        .collect();
    (params, metrics)
}

/// Each metric's history of `runs`, as chart data: one chart per metric, one line per run.
async fn histories(ui: &Ui, runs: &[Run]) -> Result<Vec<(String, serde_json::Value)>, UiError> {
    let (_, metrics) = keys(runs);
    let mut out = Vec::new();
    for key in metrics {
        let mut series = Vec::new();
        for r in runs {
            let points = ui
                .lake
                .tracking()
                .metric_history(&r.info.run_id, key)
                .await
                .map_err(metadata_error)?;
            if points.is_empty() {
                continue;
            }
            let label = if r.info.run_name.is_empty() {
                r.info.run_id.clone()
            } else {
                r.info.run_name.clone()
            };
            let points: Vec<(f64, Option<f64>)> = points
                .iter()
                .map(|p| (p.step as f64, p.value.is_finite().then_some(p.value)))
                .collect();
            series.push(serde_json::json!({"label": label, "points": points}));
        }
        out.push((
            key.to_string(),
            serde_json::json!({"title": key, "x": "step", "series": series}),
        ));
    }
    Ok(out)
}

fn charts(histories: &[(String, serde_json::Value)]) -> Markup {
    html! {
        @for (i, (key, data)) in histories.iter().enumerate() {
            @let id = format!("metric-{i}");
            h3 { (key) }
            script id=(id) type="application/json" { (island(data)) }
            div.series-chart data-source=(id) data-x="step" {}
        }
    }
}

async fn find_run(ui: &Ui, id: &str) -> Result<Run, UiError> {
    ui.lake
        .tracking()
        .run(id)
        .await
        .map_err(metadata_error)?
        .ok_or_else(|| UiError::new(StatusCode::NOT_FOUND, format!("no run `{id}`")))
}

#[derive(Deserialize)]
pub(crate) struct Folder {
    #[serde(default)]
    path: String,
}

/// The run's artifacts under `folder`: a path to climb back up, folders to open, files to
/// download.
async fn artifacts(ui: &Ui, r: &Run, folder: &str) -> Result<Markup, UiError> {
    let folder = folder.trim_matches('/');
    let entries = ui.lake.list_artifacts(&r.info.artifact_uri, folder).await?;
    let id = &r.info.run_id;
    let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let mut crumbs = vec![(String::new(), "artifacts".to_string())];
    let mut at = String::new();
    for part in folder.split('/').filter(|p| !p.is_empty()) {
        at = if at.is_empty() {
            part.to_string()
        } else {
            format!("{at}/{part}")
        };
        crumbs.push((at.clone(), part.to_string()));
    }
    Ok(html! {
        p.crumbs {
            @for (i, (path, label)) in crumbs.iter().enumerate() {
                @if i > 0 { " / " }
                a href={ "/ui/runs/" (id) "?path=" (percent(path)) "#artifacts" } { (label) }
            }
        }
        @if entries.is_empty() {
            p.quiet { @if folder.is_empty() { "This run has no artifact." } @else { "Nothing is under this folder." } }
        } @else {
            table.artifacts {
                tbody {
                    @for e in &entries {
                        tr {
                            @if e.is_dir {
                                td { a href={ "/ui/runs/" (id) "?path=" (percent(&e.path)) "#artifacts" } { "▸ " (name(&e.path)) "/" } }
                                td {}
                            } @else {
                                td { a href={ "/ui/runs/" (id) "/artifacts/" (e.path.split('/').map(percent).collect::<Vec<_>>().join("/")) } download { (name(&e.path)) } }
                                td.num { (e.size.map(crate::layout::bytes).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// One artifact of a run, streamed as a download (never shown inline: a file a run wrote
/// is not a page of this site).
pub(crate) async fn artifact(
    State(ui): State<Ui>,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let r = find_run(&ui, &id).await?;
    let body = ui
        .lake
        .open_artifact(&r.info.artifact_uri, &path)
        .await?
        .ok_or_else(|| {
            UiError::new(
                StatusCode::NOT_FOUND,
                format!("run `{id}` has no artifact `{path}`"),
            )
        })?;
    let file = path.rsplit('/').next().unwrap_or("artifact");
    let ascii: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, body.size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
                    percent(file)
                ),
            ),
        ],
        axum::body::Body::from_stream(body.stream),
    )
        .into_response())
}

pub(crate) async fn run(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(folder): Query<Folder>,
) -> Result<Html<String>, UiError> {
    let r = find_run(&ui, &id).await?;
    let history = histories(&ui, std::slice::from_ref(&r)).await?;
    let artifacts = artifacts(&ui, &r, &folder.path).await?;
    let body = html! {
        p.quiet {
            span class={ "status " (r.info.status.to_lowercase()) } { (r.info.status) }
            " · experiment " a href={ "/ui/experiments/" (r.info.experiment_id) } { (r.info.experiment_id) }
            " · started " (when(r.info.start_time))
            @if let Some(end) = r.info.end_time { " · ended " (when(end)) }
            " · by " (r.info.user_id)
        }
        p.mono.quiet { (r.info.artifact_uri) }
        section {
            h2 { "Parameters" }
            table { tbody { @for p in &r.data.params { tr { td.mono { (p.key) } td { (p.value) } } } } }
        }
        section {
            h2 { "Metrics (latest)" }
            table { tbody { @for m in &r.data.metrics { tr { td.mono { (m.key) } td.num { (number(m.value)) } td.quiet { "step " (m.step) } } } } }
            (charts(&history))
        }
        section #artifacts {
            h2 { "Artifacts" }
            (artifacts)
        }
        section {
            h2 { "Tags" }
            table { tbody { @for t in &r.data.tags { tr { td.mono { (t.key) } td { (t.value.chars().take(300).collect::<String>()) } } } } }
        }
    };
    let title = if r.info.run_name.is_empty() {
        format!("Run {id}")
    } else {
        format!("Run {}", r.info.run_name)
    };
    Ok(page(&ui, &viewer, &title, Section::Experiments, body))
}

pub(crate) async fn compare(
    State(ui): State<Ui>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Html<String>, UiError> {
    // `ids=a&ids=b`: a repeated key, which a map-shaped query extractor would not keep.
    let ids: Vec<String> = raw
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "ids")
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .take(COMPARE)
        .collect();
    if ids.len() < 2 {
        return Err(UiError::new(
            StatusCode::BAD_REQUEST,
            "choose two or more runs to compare (at most 10)",
        ));
    }
    let runs = ui
        .lake
        .tracking()
        .runs_by_ids(&ids)
        .await
        .map_err(metadata_error)?;
    if runs.len() != ids.len() {
        return Err(UiError::new(
            StatusCode::NOT_FOUND,
            "one of those runs does not exist",
        ));
    }
    let (params, metrics) = keys(&runs);
    let history = histories(&ui, &runs).await?;
    let row = |label: &str, values: Vec<String>| -> Markup {
        let differ = values.iter().collect::<BTreeSet<_>>().len() > 1;
        html! {
            tr class=[differ.then_some("differs")] {
                th { (label) }
                @for v in &values { td { (v) } }
            }
        }
    };
    let body = html! {
        table.compare {
            thead { tr { th {} @for r in &runs { th { a href={ "/ui/runs/" (r.info.run_id) } { (if r.info.run_name.is_empty() { &r.info.run_id } else { &r.info.run_name }) } } } } }
            tbody {
                (row("status", runs.iter().map(|r| r.info.status.clone()).collect()))
                @for p in &params { (row(&format!("param {p}"), runs.iter().map(|r| param_of(r, p).unwrap_or("").to_string()).collect())) }
                @for m in &metrics { (row(&format!("metric {m}"), runs.iter().map(|r| metric_of(r, m).map(|m| number(m.value)).unwrap_or_default()).collect())) }
            }
        }
        p.quiet { "Rows where the runs differ are marked." }
        (charts(&history))
    };
    Ok(page(
        &ui,
        &viewer,
        "Compare runs",
        Section::Experiments,
        body,
    ))
}
