//! The catalog: tables found by name, column or location; a table's page with its columns
//! and types, partitions, catalog versions with what each changed, Delta history, loads, a
//! sample of its rows, the rows its loads rejected with their reasons, and what reads or
//! writes it.

use crate::layout::{page, Section, UiError};
use crate::session::Viewer;
use crate::sql::rows_table;
use crate::Ui;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use maud::{html, Markup};
use serde::Deserialize;
use tarn_lake::{Column, QueryOptions};

/// Tables one page lists.
const PAGE: usize = 100;
/// Rows of the sample on a table's page.
const SAMPLE_ROWS: usize = 20;
/// Delta commits a table's page shows.
const HISTORY: usize = 20;
/// Rejected rows a table's page shows.
const REJECTED_ROWS: usize = 20;

#[derive(Deserialize)]
pub(crate) struct Search {
    search: Option<String>,
    #[serde(default)]
    page: usize,
}

pub(crate) async fn list(
    State(ui): State<Ui>,
    viewer: Viewer,
    Query(q): Query<Search>,
) -> Result<Html<String>, UiError> {
    let search = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let mut all = ui.lake.tables(None, search).await?;
    all.retain(|t| viewer.may_read_table(&t.table));
    let shown: Vec<_> = all.iter().skip(q.page * PAGE).take(PAGE).collect();
    let more = all.len() > (q.page + 1) * PAGE;
    let body = html! {
        form.search method="get" action="/ui/tables" {
            input type="search" name="search" value=(search.unwrap_or("")) placeholder="table, column or location" autofocus;
            button type="submit" { "Search" }
        }
        p.quiet { (all.len()) " tables" @if let Some(s) = search { " matching “" (s) "”" } }
        table {
            thead { tr { th { "table" } th { "format" } th.num { "columns" } th.num { "rows" } th { "partitioned by" } th.num { "version" } th { "updated" } } }
            tbody {
                @for t in &shown {
                    tr {
                        td { a href={ "/ui/tables/" (t.table) } { (t.table) } }
                        td { (t.format) }
                        td.num { (t.columns) }
                        td.num { (t.row_count.map(|n| n.to_string()).unwrap_or_default()) }
                        td { (t.partition_keys.join(", ")) }
                        td.num { (t.version) }
                        td { (t.updated_at) }
                    }
                }
            }
        }
        @if q.page > 0 || more {
            p.pages {
                @if q.page > 0 { a href={ "/ui/tables?page=" (q.page - 1) "&search=" (search.unwrap_or("")) } { "← newer" } " " }
                @if more { a href={ "/ui/tables?page=" (q.page + 1) "&search=" (search.unwrap_or("")) } { "more →" } }
            }
        }
    };
    Ok(page(&ui, &viewer, "Catalog", Section::Catalog, body))
}

/// What a catalog version changed from the one before it.
fn changes(before: Option<&[Column]>, after: &[Column]) -> Markup {
    let Some(before) = before else {
        return html! { "first version" };
    };
    let added: Vec<&Column> = after
        .iter()
        .filter(|c| !before.iter().any(|b| b.name == c.name))
        .collect();
    let dropped: Vec<&Column> = before
        .iter()
        .filter(|b| !after.iter().any(|c| c.name == b.name))
        .collect();
    let retyped: Vec<(&Column, &Column)> = after
        .iter()
        .filter_map(|c| {
            before
                .iter()
                .find(|b| b.name == c.name && b.data_type != c.data_type)
                .map(|b| (b, c))
        })
        .collect();
    html! {
        @for c in &added { span.added { "+ " (c.name) " " (c.data_type) } " " }
        @for c in &dropped { span.dropped { "− " (c.name) } " " }
        @for (b, c) in &retyped { span.changed { (c.name) ": " (b.data_type) " → " (c.data_type) } " " }
        @if added.is_empty() && dropped.is_empty() && retyped.is_empty() { "no column changed" }
    }
}

pub(crate) async fn table(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Html<String>, UiError> {
    let lake = &ui.lake;
    let t = lake.table(&name).await?;
    let history = lake.history(&name).await.unwrap_or_default();
    let sample_sql = format!("SELECT * FROM {} LIMIT {SAMPLE_ROWS}", quote(&name));
    let sample = glance(lake, &sample_sql, SAMPLE_ROWS).await;
    // The rows loads refused go to `TABLE_rejected` beside it, with the line, the column and
    // the reason (tarn_tables' REJECT_COLUMNS).
    let rejected_name = format!("{name}_rejected");
    let rejected = match lake.table(&rejected_name).await {
        Ok(r) => {
            let sql = format!(
                "SELECT _reason, _line, _column, _raw, _load_id, _rejected_at FROM {} ORDER BY _rejected_at DESC LIMIT {REJECTED_ROWS}",
                quote(&rejected_name)
            );
            let rows = glance(lake, &sql, REJECTED_ROWS).await;
            Some((r.record.row_count, rows))
        }
        Err(_) => None,
    };
    let endpoints: Vec<_> = crate::endpoints::specs(&ui)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(n, s)| s.ok().map(|s| (n, s)))
        .collect();
    let uses = crate::lineage::uses(&lake.config, &endpoints, &name);
    // The data contract its loads are held to (a broken contract file says why here).
    let contract = lake.address(&name).and_then(|a| lake.contract(&a));
    let mut versions = t.versions.clone();
    versions.sort_by_key(|v| v.version);
    let body = html! {
        p.quiet {
            (t.record.format) " · " (t.record.row_count.map(|n| format!("{n} rows")).unwrap_or_else(|| "rows not counted".into()))
            " · catalog version " (t.record.version) " · "
            span.mono { (t.record.location) }
        }
        p { a href={ "/ui/sql?query=" (percent(&sample_sql)) } { "Query it" } }
        section {
            h2 { "Columns" }
            table {
                thead { tr { th { "column" } th { "type" } th { "nullable" } } }
                tbody {
                    @for c in &t.record.columns {
                        tr { td { (c.name) } td.mono { (c.data_type) } td { @if c.nullable { "yes" } @else { "no" } } }
                    }
                    @for c in &t.record.partition_keys {
                        tr { td { (c.name) " (partition)" } td.mono { (c.data_type) } td { "" } }
                    }
                }
            }
        }
        section #contract {
            h2 { "Data contract" }
            @match &contract {
                Ok(None) => p.quiet { "No contract in contracts/ names this table: its loads take the rows as they come." }
                Err(e) => p.error { (e.to_string()) }
                Ok(Some(c)) => {
                    p.quiet {
                        "From " span.mono { (c.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()) }
                        @if !c.key.is_empty() { " · unique key: " span.mono { (c.key.join(", ")) } }
                        @if !c.partition_by.is_empty() { " · partitioned by " span.mono { (c.partition_by.join(", ")) } }
                    }
                    @if let Some(d) = &c.description { p { (d) } }
                    table {
                        thead { tr { th { "column" } th { "type" } th { "nullable" } th { "accepted values" } th.num { "min" } th.num { "max" } th { "description" } } }
                        tbody {
                            @for r in &c.columns {
                                tr {
                                    td { (r.name) }
                                    td.mono { (r.data_type) }
                                    td { @if r.nullable { "yes" } @else { "no" } }
                                    td { (r.accepted_values.as_ref().map(|v| v.join(", ")).unwrap_or_default()) }
                                    td.num { (r.min.map(|v| v.to_string()).unwrap_or_default()) }
                                    td.num { (r.max.map(|v| v.to_string()).unwrap_or_default()) }
                                    td { (r.description.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !t.record.parameters.is_empty() {
            section {
                h2 { "Parameters" }
                table { tbody { @for (k, v) in &t.record.parameters { tr { td.mono { (k) } td { (v) } } } } }
            }
        }
        section.uses {
            h2 { "Read and written by" }
            @if uses.is_empty() { p.quiet { "No pipeline, training job, monitor or endpoint of this lake names this table." } }
            table {
                tbody {
                    @for u in &uses {
                        tr {
                            td { span class={ "tag " (if u.writes { "writes" } else { "reads" }) } { (if u.writes { "writes" } else { "reads" }) } }
                            td { (u.kind) " " a href=(u.link) { (u.name) } }
                            td { (u.how) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Sample" }
            @match &sample {
                Ok(r) => (rows_table(&r.schema, &r.batches, SAMPLE_ROWS)),
                Err(e) => p.error { (e.to_string()) },
            }
        }
        section {
            h2 { "Catalog versions" }
            table {
                thead { tr { th.num { "version" } th { "when" } th { "reason" } th { "what changed" } } }
                tbody {
                    @for (i, v) in versions.iter().enumerate().rev() {
                        tr {
                            td.num { (v.version) }
                            td { (v.created_at) }
                            td { (v.reason) }
                            td { (changes(i.checked_sub(1).map(|j| versions[j].columns.as_slice()), &v.columns)) }
                        }
                    }
                }
            }
        }
        @if let Some((count, rows)) = &rejected {
            section #rejected {
                h2 { "Rejected rows" @if let Some(n) = count { " (" (n) ")" } }
                p.quiet { "Rows loads refused, newest first, with why; all of them are in " a href={ "/ui/tables/" (rejected_name) } { (rejected_name) } "." }
                @match rows {
                    Ok(r) => (rows_table(&r.schema, &r.batches, REJECTED_ROWS)),
                    Err(e) => p.error { (e.to_string()) },
                }
            }
        }
        @if !t.partitions.is_empty() {
            section {
                h2 { "Partitions (" (t.partitions.len()) ")" }
                table { tbody { @for p in t.partitions.iter().take(100) { tr { td.mono { (p.spec) } td.mono { (p.location) } } } } }
            }
        }
        @if !history.is_empty() {
            section {
                h2 { "Delta history" }
                table {
                    thead { tr { th.num { "version" } th { "when" } th { "operation" } th { "load" } } }
                    tbody {
                        @for h in history.iter().take(HISTORY) {
                            tr { td.num { (h.version) } td { (h.timestamp.as_deref().unwrap_or("")) } td { (h.operation) } td.mono { (h.load_id.as_deref().unwrap_or("")) } }
                        }
                    }
                }
            }
        }
        @if !t.loads.is_empty() {
            section {
                h2 { "Loads" }
                table {
                    thead { tr { th { "when" } th { "mode" } th { "source" } th.num { "written" } th.num { "rejected" } th.num { "table version" } } }
                    tbody {
                        @for l in t.loads.iter().rev().take(20) {
                            tr { td { (l.created_at) } td { (l.mode) } td.mono { (l.source) } td.num { (l.rows_written) } td.num { (l.rows_rejected) } td.num { (l.table_version) } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&ui, &viewer, &name, Section::Catalog, body))
}

/// The first `rows` rows `sql` answers, within 10 s: what a table's page shows of it.
async fn glance(
    lake: &tarn_lake::Lake,
    sql: &str,
    rows: usize,
) -> Result<tarn_lake::QueryResult, tarn_lake::LakeError> {
    let opts = QueryOptions {
        row_limit: Some(rows),
        may_read: None,
        timeout: Some(std::time::Duration::from_secs(10)),
    };
    lake.sql(sql, &opts).await
}

/// A table's dotted name as SQL, each part quoted.
fn quote(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// `text` for a URL's query string or path segment (RFC 3986's unreserved characters kept).
pub fn percent(text: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, SET).to_string()
}
