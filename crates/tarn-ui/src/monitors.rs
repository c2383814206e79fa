//! Monitors: each monitor's file as sentences; its runs; the latest run's figures per window
//! as charts (drift per field, performance, every check over time) with the alerts, and the
//! threshold each is judged by.

use crate::layout::{json_island as island, page, Section, UiError};
use crate::session::Viewer;
use crate::Ui;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use maud::html;
use std::collections::BTreeMap;
use tarn_monitoring::{Figure, MonitorError};

/// A chart's lines: each label's points (x, and y where there is a figure).
type Series = BTreeMap<String, Vec<(f64, Option<f64>)>>;

/// Past runs a monitor's page lists.
const RUNS: usize = 20;

fn monitor_error(e: MonitorError) -> UiError {
    let status = match &e {
        MonitorError::NoSuchMonitor { .. } | MonitorError::NoSuchRun { .. } => {
            StatusCode::NOT_FOUND
        }
        MonitorError::Config(_) | MonitorError::Spec { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    UiError::new(status, e.to_string())
}

pub(crate) async fn list(State(ui): State<Ui>, viewer: Viewer) -> Result<Html<String>, UiError> {
    let all = tarn_monitoring::summaries(&ui.lake.config).map_err(monitor_error)?;
    let body = html! {
        @if all.is_empty() { p.quiet { "No monitor yet: write " code { "monitors/NAME.yml" } " beside tarn.yml." } }
        table {
            thead { tr { th { "monitor" } th { "model" } th { "window" } th { "schedule" } th { "checks" } th { "alerts to" } th { "results" } } }
            tbody {
                @for m in &all {
                    tr {
                        td { a href={ "/ui/monitors/" (m.name) } { (m.name) } }
                        td { (m.model.as_deref().unwrap_or("")) }
                        td { (m.window) }
                        td { (m.schedule.as_deref().unwrap_or("")) }
                        td { (m.checks.join(", ")) }
                        td { (m.alert_topic.as_deref().unwrap_or("")) }
                        td { a href={ "/ui/tables/" (m.results_table) } { (m.results_table) } }
                    }
                }
            }
        }
    };
    Ok(page(&ui, &viewer, "Monitors", Section::Monitors, body))
}

pub(crate) async fn show(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Html<String>, UiError> {
    let spec = tarn_monitoring::find(&ui.lake.config, &name).map_err(monitor_error)?;
    let summary = tarn_monitoring::summary(&spec);
    let runs = tarn_monitoring::runs(&ui.lake, &spec, RUNS)
        .await
        .map_err(monitor_error)?;
    let figures: Vec<Figure> = match runs.first() {
        Some(_) => tarn_monitoring::figures(&ui.lake, &spec, None, false)
            .await
            .map_err(monitor_error)?,
        None => Vec::new(),
    };
    // One chart per check: a series per field (and method), a point per window.
    let mut charts: BTreeMap<String, Series> = BTreeMap::new();
    for f in &figures {
        let Some(x) = crate::layout::epoch_seconds(&f.window_start) else {
            continue;
        };
        let label = if f.result.method.is_empty() || f.result.check == "drift" {
            f.result.field.clone()
        } else {
            format!("{} ({})", f.result.field, f.result.method)
        };
        charts
            .entry(f.result.check.clone())
            .or_default()
            .entry(label)
            .or_default()
            .push((x, f.result.value));
    }
    let baseline = tarn_monitoring::kept_baseline(&ui.lake, &spec);
    let alerts: Vec<&Figure> = figures
        .iter()
        .filter(|f| f.result.status == tarn_monitoring::Status::Alert)
        .collect();
    let body = html! {
        p.quiet {
            @if let Some(m) = &summary.model { "model " strong { (m) } " · " }
            "window " (summary.window) " · baseline " (summary.baseline)
            " · results in " a href={ "/ui/tables/" (summary.results_table) } { (summary.results_table) }
        }
        section {
            h2 { "Checks" }
            ul { @for c in &summary.check_settings { li { (c) } } }
            h2 { "Fields" }
            table {
                thead { tr { th { "group" } th { "field" } th { "type" } th { "from" } } }
                tbody { @for f in &summary.fields { tr { td { (f.group) } td { (f.name) } td { (f.field_type) } td.mono { (f.from) } } } }
            }
        }
        section #baseline {
            h2 { "Baseline" }
            @match &baseline {
                None => p.quiet { "Not profiled yet: the first run profiles it (" (summary.baseline) ") and keeps the profile." }
                Some(b) => {
                    p.quiet { (b.rows) " rows, profiled at " (b.profiled_at) " from " code { (b.query) } }
                    table {
                        thead { tr { th { "field" } th.num { "values" } th.num { "missing" } th.num { "distinct" } th { "min" } th.num { "mean" } th.num { "median" } th { "max" } th { "most common" } } }
                        tbody {
                            @for (field, p) in &b.fields {
                                tr {
                                    td { (field) }
                                    td.num { (p.count()) }
                                    td.num { (p.missing()) }
                                    td.num { (p.distinct()) }
                                    td { (p.min().map(shown).unwrap_or_default()) }
                                    td.num { (p.mean_std().map(|(m, _)| format!("{m:.4}")).unwrap_or_default()) }
                                    td.num { (if p.is_numeric() { p.quantile(0.5).map(|m| format!("{m:.4}")).unwrap_or_default() } else { String::new() }) }
                                    td { (p.max().map(shown).unwrap_or_default()) }
                                    td { (common(p)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if runs.is_empty() {
            p.quiet { "No run yet: " code { "tarn monitors run " (name) } ", or its schedule under tarn serve." }
        } @else {
            section {
                h2 { "The latest run, per window" }
                @for (check, series) in &charts {
                    @let id = format!("series-{check}");
                    @let data = serde_json::json!({
                        "title": check,
                        "series": series.iter().map(|(label, points)| serde_json::json!({"label": label, "points": points})).collect::<Vec<_>>(),
                    });
                    h3 { (check) }
                    script id=(id) type="application/json" { (island(&data)) }
                    div.series-chart data-source=(id) {}
                }
            }
            section {
                h2 { "Alerts in the latest run (" (alerts.len()) ")" }
                @if !alerts.is_empty() {
                    table {
                        thead { tr { th { "window" } th { "check" } th { "field" } th { "method" } th.num { "value" } th.num { "threshold" } th { "detail" } } }
                        tbody {
                            @for f in &alerts {
                                tr {
                                    td { (f.window_start) }
                                    td { (f.result.check) }
                                    td { (f.result.field) }
                                    td { (f.result.method) }
                                    td.num { (f.result.value.map(|v| format!("{v:.4}")).unwrap_or_default()) }
                                    td.num { (f.result.threshold.map(|v| v.to_string()).unwrap_or_default()) }
                                    td { (f.result.detail) }
                                }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Runs" }
                table {
                    thead { tr { th { "run" } th { "evaluated" } th.num { "windows" } th.num { "figures" } th.num { "alerts" } } }
                    tbody {
                        @for r in &runs {
                            tr { td.mono { (r.run_id) } td { (r.evaluated_at) } td.num { (r.windows) } td.num { (r.figures) } td.num { (r.alerts) } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        &ui,
        &viewer,
        &format!("Monitor {name}"),
        Section::Monitors,
        body,
    ))
}

/// A profiled value as text.
fn shown(v: &tarn_monitoring::Value) -> String {
    match v {
        tarn_monitoring::Value::Number(x) => format!("{x}"),
        tarn_monitoring::Value::Text(t) => t.clone(),
    }
}

/// The three most common values of a field with few distinct ones, with their shares.
fn common(p: &tarn_monitoring::Profile) -> String {
    if p.distinct() > 50 || p.count() == 0 {
        return String::new();
    }
    let mut values: Vec<_> = p.values().collect();
    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    values
        .iter()
        .take(3)
        .map(|(v, n)| {
            format!(
                "{} ({:.1} %)",
                shown(v),
                100.0 * *n as f64 / p.count() as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
