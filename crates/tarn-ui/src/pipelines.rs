//! Pipelines: each pipeline with its triggers and its steps drawn as a graph (the next step,
//! a choice's branches with their conditions and default, the catch a failure goes to), and
//! its recent executions. The graph is SVG made here, so it needs no script.

use crate::layout::{page, Section, UiError};
use crate::session::Viewer;
use crate::Ui;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use maud::{html, Markup};
use std::collections::{BTreeMap, VecDeque};
use tarn_config::{PipelineSpec, StepKind, Trigger};

const BOX_W: f64 = 170.0;
const BOX_H: f64 = 44.0;
const COL: f64 = 240.0;
const ROW: f64 = 74.0;
/// The catch's node name in the graph.
const CATCH: &str = "catch";

fn triggers(p: &PipelineSpec) -> Vec<String> {
    p.triggers
        .iter()
        .map(|t| match t {
            Trigger::S3 { prefix, suffix } => format!(
                "an object in {}/{} under `{prefix}*{suffix}`",
                p.domain, p.origin
            ),
            Trigger::EventRule {
                source,
                detail_type,
            } => format!(
                "an event from {} of type {}",
                if source.is_empty() {
                    "any source".into()
                } else {
                    source.join(" or ")
                },
                if detail_type.is_empty() {
                    "any".into()
                } else {
                    detail_type.join(" or ")
                }
            ),
            Trigger::Schedule(cron) => format!("the schedule `{cron}` (UTC)"),
        })
        .collect()
}

/// (from, to, label) of every edge between steps.
fn edges(p: &PipelineSpec) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for s in &p.steps {
        if let StepKind::Choice { choices, default } = &s.kind {
            for c in choices {
                out.push((
                    s.name.clone(),
                    c.next_step.clone(),
                    format!("{} = {}", c.variable, c.equals),
                ));
            }
            if let Some(d) = default {
                out.push((s.name.clone(), d.clone(), "otherwise".into()));
            }
        } else if let Some(n) = &s.next {
            out.push((s.name.clone(), n.clone(), String::new()));
        }
    }
    out
}

/// The graph: steps in columns by their distance from the first step, the catch last.
fn graph(p: &PipelineSpec) -> Markup {
    let edges = edges(p);
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    let mut queue = VecDeque::new();
    if let Some(first) = p.steps.first() {
        depth.insert(&first.name, 0);
        queue.push_back(first.name.as_str());
    }
    while let Some(n) = queue.pop_front() {
        let d = depth[n];
        for (from, to, _) in &edges {
            if from == n && !depth.contains_key(to.as_str()) {
                depth.insert(to, d + 1);
                queue.push_back(to);
            }
        }
    }
    let deepest = depth.values().copied().max().unwrap_or(0);
    let mut columns: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for s in &p.steps {
        let d = depth.get(s.name.as_str()).copied().unwrap_or(deepest + 1);
        columns.entry(d).or_default().push(&s.name);
    }
    let mut at: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (col, names) in &columns {
        for (row, n) in names.iter().enumerate() {
            at.insert(n, (20.0 + *col as f64 * COL, 20.0 + row as f64 * ROW));
        }
    }
    let tallest = columns.values().map(Vec::len).max().unwrap_or(1);
    if p.catch.is_some() {
        let col = columns.keys().next_back().copied().unwrap_or(0) + 1;
        at.insert(
            CATCH,
            (20.0 + col as f64 * COL, 20.0 + (tallest as f64) * ROW),
        );
    }
    let width = at
        .values()
        .map(|(x, _)| x + BOX_W + 20.0)
        .fold(200.0, f64::max);
    let height = at
        .values()
        .map(|(_, y)| y + BOX_H + 30.0)
        .fold(100.0, f64::max);
    let kind_of = |name: &str| {
        p.steps
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.kind.type_name())
            .unwrap_or("catch")
    };
    html! {
        svg.graph xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } role="img" aria-label={ "the steps of " (p.name) } {
            defs {
                marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" fill="#4a5568" {}
                }
            }
            @for (from, to, label) in &edges {
                @if let (Some(&(x1, y1)), Some(&(x2, y2))) = (at.get(from.as_str()), at.get(to.as_str())) {
                    @let (sx, sy, ex, ey) = (x1 + BOX_W, y1 + BOX_H / 2.0, x2, y2 + BOX_H / 2.0);
                    @if ex > sx {
                        line x1=(sx) y1=(sy) x2=(ex) y2=(ey) stroke="#4a5568" stroke-width="1.5" marker-end="url(#arrow)" {}
                        @if !label.is_empty() {
                            text x=((sx + ex) / 2.0) y=((sy + ey) / 2.0 - 6.0) text-anchor="middle" font-size="11" fill="#2d3748" { (label) }
                        }
                    } @else {
                        // Back to an earlier column: around, below the boxes.
                        @let low = y1.max(y2) + BOX_H + 16.0;
                        path d={ "M " (x1 + BOX_W / 2.0) " " (y1 + BOX_H) " C " (x1 + BOX_W / 2.0) " " (low) ", " (x2 + BOX_W / 2.0) " " (low) ", " (x2 + BOX_W / 2.0) " " (y2 + BOX_H) } fill="none" stroke="#4a5568" stroke-width="1.5" marker-end="url(#arrow)" {}
                        @if !label.is_empty() {
                            text x=((x1 + x2) / 2.0 + BOX_W / 2.0) y=(low + 4.0) text-anchor="middle" font-size="11" fill="#2d3748" { (label) }
                        }
                    }
                }
            }
            @if let Some(&(cx, cy)) = at.get(CATCH) {
                @for s in p.steps.iter().filter(|s| !matches!(s.kind, StepKind::Choice { .. })) {
                    @if let Some(&(x, y)) = at.get(s.name.as_str()) {
                        line x1=(x + BOX_W / 2.0) y1=(y + BOX_H) x2=(cx) y2=(cy + BOX_H / 2.0) stroke="#c53030" stroke-width="1" stroke-dasharray="4 3" marker-end="url(#arrow)" {}
                    }
                }
            }
            @for (name, &(x, y)) in &at {
                @let kind = kind_of(name);
                g.node {
                    rect x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="6"
                        fill=(if kind == "choice" { "#fefcbf" } else if kind == "catch" { "#fed7d7" } else { "#ebf8ff" })
                        stroke="#2b6cb0" stroke-width="1.2" {}
                    text x=(x + BOX_W / 2.0) y=(y + 19.0) text-anchor="middle" font-size="13" font-weight="600" fill="#1a202c" { (name) }
                    text x=(x + BOX_W / 2.0) y=(y + 35.0) text-anchor="middle" font-size="11" fill="#4a5568" { (kind) }
                }
            }
        }
    }
}

pub(crate) async fn list(State(ui): State<Ui>, viewer: Viewer) -> Result<Html<String>, UiError> {
    let loaded = tarn_config::load_pipelines(&ui.lake.config);
    let body = html! {
        @match &loaded {
            Ok(pipelines) => {
                @if pipelines.is_empty() { p.quiet { "No pipeline yet: a folder under " code { "pipelines/" } " with a config.yml." } }
                table {
                    thead { tr { th { "pipeline" } th { "domain" } th { "layers" } th { "started by" } th.num { "steps" } th {} } }
                    tbody {
                        @for p in pipelines {
                            tr {
                                td { a href={ "/ui/pipelines/" (p.name) } { (p.name) } }
                                td { (p.domain) }
                                td { (p.origin) " → " (p.target) }
                                td { (triggers(p).join("; ")) }
                                td.num { (p.steps.len()) }
                                td { a href={ "/ui/executions?pipeline=" (p.name) } { "executions" } }
                            }
                        }
                    }
                }
            }
            Err(e) => p.error { (e.to_string()) },
        }
    };
    Ok(page(&ui, &viewer, "Pipelines", Section::Pipelines, body))
}

pub(crate) async fn show(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Html<String>, UiError> {
    let pipelines = tarn_config::load_pipelines(&ui.lake.config)
        .map_err(|e| UiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let p = pipelines
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| UiError::new(StatusCode::NOT_FOUND, format!("no pipeline `{name}`")))?;
    let recent = ui.lake.executions_page(Some(&name), None, None, 10).await?;
    let body = html! {
        p.quiet { "domain " (p.domain) " · " (p.origin) " → " (p.target) " · " span.mono { (p.dir.display().to_string()) } }
        section {
            h2 { "Started by" }
            ul { @for t in triggers(p) { li { (t) } } }
        }
        section {
            h2 { "Steps" }
            (graph(p))
            table {
                thead { tr { th { "step" } th { "type" } th { "next" } th.num { "attempts" } th { "timeout" } th.num { "line" } } }
                tbody {
                    @for s in &p.steps {
                        tr {
                            td { (s.name) } td { (s.kind.type_name()) } td { (s.next.as_deref().unwrap_or("")) }
                            td.num { (s.retry.max_attempts) }
                            td { (s.timeout.map(|t| format!("{} s", t.as_secs())).unwrap_or_default()) }
                            td.num { (s.line) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Recent executions" }
            ul {
                @for e in &recent.items {
                    li { a href={ "/ui/executions/" (e.id) } { (e.id) } " " span class={ "status " (e.status) } { (e.status) } " " (e.created_at) }
                }
            }
            p { a href={ "/ui/executions?pipeline=" (p.name) } { "all its executions" } }
        }
    };
    Ok(page(
        &ui,
        &viewer,
        &format!("Pipeline {name}"),
        Section::Pipelines,
        body,
    ))
}
