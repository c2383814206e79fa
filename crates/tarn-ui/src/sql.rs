//! The SQL page: an editor (Ctrl+Enter runs), the rows of the answer (paged in the page), an
//! error that marks its place in the query, a chart of chosen columns (line, bar, scatter),
//! and downloads as CSV or Parquet. Queries run as `tarn sql` runs them: read-only, within the
//! lake's query limits.

use crate::layout::{json_island, page, Section, UiError};
use crate::session::Viewer;
use crate::Ui;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use tarn_lake::{OutputFormat, QueryOptions};

/// Rows the page shows of an answer (the rest: download it).
pub const PAGE_ROWS: usize = 1000;

#[derive(Deserialize)]
pub(crate) struct Asked {
    #[serde(default)]
    query: String,
}

#[derive(Deserialize)]
pub(crate) struct Download {
    query: String,
    format: String,
}

fn editor_form(query: &str) -> Markup {
    html! {
        form id="sql" method="post" action="/ui/sql" {
            textarea id="query" name="query" rows="8" spellcheck="false" autofocus
                placeholder="SELECT * FROM domain.layer.table LIMIT 10" { (query) }
            div.actions {
                button type="submit" title="Ctrl+Enter" { "Run" }
                span.quiet { " Ctrl+Enter runs · read-only · at most " (PAGE_ROWS) " rows shown" }
                button type="submit" formaction="/ui/sql/download" name="format" value="csv" { "CSV" }
                button type="submit" formaction="/ui/sql/download" name="format" value="parquet" { "Parquet" }
            }
        }
        section id="history" { h2 { "Recent queries" } ol id="recent" {} }
    }
}

pub(crate) async fn editor(
    State(ui): State<Ui>,
    viewer: Viewer,
    Query(q): Query<Asked>,
) -> Html<String> {
    page(&ui, &viewer, "SQL", Section::Sql, editor_form(&q.query))
}

pub(crate) async fn run(
    State(ui): State<Ui>,
    viewer: Viewer,
    Form(q): Form<Asked>,
) -> Html<String> {
    let lake = &ui.lake;
    let opts = QueryOptions {
        row_limit: Some(PAGE_ROWS),
        may_read: viewer.may_read.clone(),
        timeout: None,
    };
    let started = std::time::Instant::now();
    let answer = lake.sql(&q.query, &opts).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let body = html! {
        (editor_form(&q.query))
        @match &answer {
            Ok(r) => {
                p.quiet {
                    (r.rows()) " rows" @if r.truncated { " (the first " (PAGE_ROWS) "; download for all)" }
                    " in " (format!("{ms:.0}")) " ms"
                }
                (chart_controls(&r.schema))
                script id="chart-data" type="application/json" { (json_island(&chart_data(&r.schema, &r.batches))) }
                div id="chart" {}
                @if viewer.may_write() { (save_form(&ui, &q.query, &r.schema)) }
                (rows_table(&r.schema, &r.batches, PAGE_ROWS))
            }
            Err(e) => (error_at(&q.query, e)),
        }
    };
    page(&ui, &viewer, "SQL", Section::Sql, body)
}

pub(crate) async fn download(
    State(ui): State<Ui>,
    viewer: Viewer,
    Form(d): Form<Download>,
) -> Response {
    let (format, content_type, ext) = match d.format.as_str() {
        "csv" => (OutputFormat::Csv, "text/csv", "csv"),
        "parquet" => (
            OutputFormat::Parquet,
            "application/vnd.apache.parquet",
            "parquet",
        ),
        other => {
            return UiError::new(
                StatusCode::BAD_REQUEST,
                format!("no download as `{other}`: choose csv or parquet"),
            )
            .into_response()
        }
    };
    let limit = ui.lake.config.limits.query_rows;
    let opts = QueryOptions {
        row_limit: Some(limit),
        may_read: viewer.may_read.clone(),
        timeout: None,
    };
    // The file streams as the query produces its rows, as the API's answers do.
    let bytes = match ui.lake.sql_bytes(&d.query, &opts, format).await {
        Ok(b) => b,
        Err(e) => return UiError::new(StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"result.{ext}\""),
            ),
        ],
        axum::body::Body::from_stream(bytes),
    )
        .into_response()
}

/// An error, with the query shown and the place it points at marked.
fn error_at(query: &str, e: &tarn_lake::LakeError) -> Markup {
    let (message, place) = match e {
        tarn_lake::LakeError::Query(tarn_lake::QueryError::Sql {
            message,
            line: Some(line),
            column: Some(column),
            ..
        }) => (message.clone(), Some((*line, *column))),
        other => (other.to_string(), None),
    };
    html! {
        div.error-box {
            p.error { (message) @if let Some((l, c)) = place { " (line " (l) ", column " (c) ")" } }
            @if let Some((line, column)) = place {
                pre.query-error {
                    @for (i, text) in query.lines().enumerate() {
                        @if i + 1 == line {
                            @let at = text.char_indices().nth(column.saturating_sub(1)).map_or(text.len(), |(b, _)| b);
                            (text[..at]) mark { (text[at..].chars().next().map(String::from).unwrap_or_else(|| " ".into())) } (text[at..].chars().skip(1).collect::<String>()) "\n"
                        } @else {
                            (text) "\n"
                        }
                    }
                }
            }
        }
    }
}

/// The rows of `batches` as a table, at most `max`; every value escaped.
pub(crate) fn rows_table(schema: &SchemaRef, batches: &[RecordBatch], max: usize) -> Markup {
    let options = FormatOptions::default().with_null("");
    let mut rows: Vec<Vec<String>> = Vec::new();
    'batches: for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for r in 0..b.num_rows() {
            if rows.len() >= max {
                break 'batches;
            }
            rows.push(
                formatters
                    .iter()
                    .map(|f| {
                        f.as_ref()
                            .map(|f| f.value(r).to_string())
                            .unwrap_or_default()
                    })
                    .collect(),
            );
        }
    }
    html! {
        table.rows data-page-rows="100" {
            thead { tr { @for f in schema.fields() { th title=(f.data_type().to_string()) { (f.name()) } } } }
            tbody {
                @for row in &rows {
                    tr { @for v in row { td { (v) } } }
                }
            }
        }
    }
}

/// The chart's choices: which column along x, which along y, and the kind.
/// Saves the query as a tile of a dashboard (a new one, or one of `dashboards/`).
fn save_form(ui: &Ui, query: &str, schema: &SchemaRef) -> Markup {
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    let existing: Vec<String> = tarn_config::load_dashboards(&ui.lake.config)
        .map(|all| all.into_iter().map(|d| d.name).collect())
        .unwrap_or_default();
    html! {
        details.save-tile {
            summary { "Save as a dashboard tile" }
            form method="post" action="/ui/dashboards/tiles" {
                input type="hidden" name="csrf" value=(ui.csrf);
                input type="hidden" name="sql" value=(query);
                label { "dashboard " input type="text" name="dashboard" list="dashboard-names" required pattern="[a-z][a-z0-9_]*" placeholder="kpis"; }
                datalist id="dashboard-names" { @for d in &existing { option value=(d) {} } }
                label { " title " input type="text" name="title" required; }
                label { " chart " select name="chart" { @for c in tarn_config::CHARTS { option value=(c) { (c) } } } }
                label { " x " select name="x" { option value="" { "first column" } @for n in &names { option value=(n) { (n) } } } }
                label { " y " select name="y" { option value="" { "second column" } @for n in &names { option value=(n) { (n) } } } }
                " " button type="submit" { "Save tile" }
            }
        }
    }
}

fn chart_controls(schema: &SchemaRef) -> Markup {
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    html! {
        form.chart id="chart-controls" {
            label { "chart " select name="kind" { option value="" { "none" } option value="line" { "line" } option value="bar" { "bar" } option value="scatter" { "scatter" } } }
            label { " x " select name="x" { @for (i, n) in names.iter().enumerate() { option value=(i) { (n) } } } }
            label { " y " select name="y" { @for (i, n) in names.iter().enumerate() { option value=(i) selected[i == 1] { (n) } } } }
        }
    }
}

/// The answer's columns as numbers for the chart (`null` where a value is not one: text is
/// charted by its position), with each value as text for the labels.
pub(crate) fn chart_data(schema: &SchemaRef, batches: &[RecordBatch]) -> serde_json::Value {
    let mut columns: Vec<Vec<serde_json::Value>> = vec![Vec::new(); schema.fields().len()];
    let mut labels: Vec<Vec<String>> = vec![Vec::new(); schema.fields().len()];
    let options = FormatOptions::default().with_null("");
    for b in batches {
        for (i, c) in b.columns().iter().enumerate() {
            let numbers = match c.data_type() {
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
                    arrow::compute::cast(
                        c,
                        &DataType::Timestamp(arrow::datatypes::TimeUnit::Second, None),
                    )
                    .and_then(|t| arrow::compute::cast(&t, &DataType::Int64))
                    .and_then(|t| arrow::compute::cast(&t, &DataType::Float64))
                    .ok()
                }
                d if d.is_numeric() || *d == DataType::Boolean => {
                    arrow::compute::cast(c, &DataType::Float64).ok()
                }
                _ => None,
            };
            let formatter = ArrayFormatter::try_new(c.as_ref(), &options).ok();
            for r in 0..b.num_rows() {
                let v = match &numbers {
                    Some(n) => {
                        let n = n.as_primitive::<Float64Type>();
                        if n.is_null(r) || !n.value(r).is_finite() {
                            serde_json::Value::Null
                        } else {
                            serde_json::json!(n.value(r))
                        }
                    }
                    None => serde_json::json!(columns[i].len()),
                };
                columns[i].push(v);
                if let Some(f) = &formatter {
                    labels[i].push(f.value(r).to_string());
                }
            }
        }
    }
    let kinds: Vec<&str> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => "time",
            d if d.is_numeric() || *d == DataType::Boolean => "number",
            _ => "text",
        })
        .collect();
    serde_json::json!({
        "names": schema.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>(),
        "kinds": kinds,
        "columns": columns,
        "labels": labels,
    })
}
