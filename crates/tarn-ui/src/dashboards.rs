//! KPI dashboards: each `dashboards/NAME.yml` a page whose tiles are its queries' answers
//! drawn as a number, a line, bars or a table, read again every `refresh:`; its tiles' queries
//! run side by side (within the lake's query slots). A query on the SQL page is saved as a
//! tile here, added to the end of its dashboard's file.

use crate::layout::{json_island, page, Section, UiError};
use crate::session::check_form;
use crate::session::Viewer;
use crate::sql::{chart_data, rows_table};
use crate::Ui;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use tarn_config::{NewTile, Tile};
use tarn_lake::QueryOptions;

/// Rows a tile reads at most.
const TILE_ROWS: usize = 1000;

pub(crate) async fn list(State(ui): State<Ui>, viewer: Viewer) -> Result<Html<String>, UiError> {
    let loaded = tarn_config::load_dashboards(&ui.lake.config);
    let body = html! {
        @match &loaded {
            Ok(all) => {
                @if all.is_empty() { p.quiet { "No dashboard yet: write " code { "dashboards/NAME.yml" } " beside tarn.yml (title, refresh, tiles of sql and chart)." } }
                ul { @for d in all { li { a href={ "/ui/dashboards/" (d.name) } { (d.title) } " · " (d.tiles.len()) " tiles" } } }
            }
            Err(e) => p.error { (e.to_string()) },
        }
    };
    Ok(page(&ui, &viewer, "Dashboards", Section::Dashboards, body))
}

/// One tile: its query's answer drawn as the tile says, or why the query failed.
async fn tile(ui: &Ui, viewer: &Viewer, i: usize, t: &Tile) -> Markup {
    let opts = QueryOptions {
        row_limit: Some(TILE_ROWS),
        may_read: viewer.may_read.clone(),
        timeout: None,
    };
    let answer = ui.lake.sql(&t.sql, &opts).await;
    let column = |name: &Option<String>, default: usize, schema: &arrow::datatypes::SchemaRef| {
        name.as_ref()
            .and_then(|n| schema.fields().iter().position(|f| f.name() == n))
            .unwrap_or(default.min(schema.fields().len().saturating_sub(1)))
    };
    html! {
        div class={ "tile " (t.chart) } {
            h2 { (t.title) }
            @match &answer {
                Err(e) => p.error { (e.to_string()) },
                Ok(r) => {
                    @if t.chart == "number" {
                        @let first = r.batches.iter().find(|b| b.num_rows() > 0);
                        p.number {
                            @match first {
                                Some(b) => (arrow::util::display::ArrayFormatter::try_new(b.column(0).as_ref(), &Default::default()).map(|f| f.value(0).to_string()).unwrap_or_default()),
                                None => "–",
                            }
                        }
                    } @else if t.chart == "table" {
                        (rows_table(&r.schema, &r.batches, TILE_ROWS))
                    } @else {
                        @let id = format!("tile-{i}");
                        script id=(id) type="application/json" { (json_island(&chart_data(&r.schema, &r.batches))) }
                        div.tile-chart data-source=(id) data-kind=(t.chart) data-height="240"
                            data-x=(column(&t.x, 0, &r.schema)) data-y=(column(&t.y, 1, &r.schema)) {}
                    }
                    p.quiet.mono { (t.sql) }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct SaveTile {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dashboard: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    sql: String,
    #[serde(default)]
    chart: String,
    #[serde(default)]
    x: String,
    #[serde(default)]
    y: String,
}

/// Adds a tile to a dashboard's file; then shows the dashboard.
pub(crate) async fn save(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Form(f): Form<SaveTile>,
) -> Response {
    if let Err(e) = check_form(&ui, &headers, &f.csrf) {
        return e.into_response();
    }
    // One save at a time: two at once would each add to the file as it was.
    static SAVING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = SAVING.lock().await;
    let tile = NewTile {
        title: f.title.trim().to_string(),
        sql: f.sql,
        chart: f.chart,
        x: Some(f.x).filter(|x| !x.is_empty()),
        y: Some(f.y).filter(|y| !y.is_empty()),
    };
    let config = ui.lake.config.clone();
    let name = f.dashboard.trim().to_string();
    let saved =
        tokio::task::spawn_blocking(move || tarn_config::append_tile(&config, &name, &tile)).await;
    match saved {
        Ok(Ok(d)) => Redirect::to(&format!(
            "/ui/dashboards/{}",
            crate::catalog::percent(&d.name)
        ))
        .into_response(),
        Ok(Err(e)) => UiError::new(StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(e) => UiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub(crate) async fn show(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Html<String>, UiError> {
    let all = tarn_config::load_dashboards(&ui.lake.config)
        .map_err(|e| UiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let d = all
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| UiError::new(StatusCode::NOT_FOUND, format!("no dashboard `{name}`")))?;
    let tiles = futures::future::join_all(
        d.tiles
            .iter()
            .enumerate()
            .map(|(i, t)| tile(&ui, &viewer, i, t)),
    )
    .await;
    let body = html! {
        @if let Some(r) = d.refresh {
            meta http-equiv="refresh" content=(r.as_secs());
            p.quiet { "read again every " (r.as_secs()) " s · " span.mono { (d.path.display().to_string()) } }
        }
        div.tiles { @for t in &tiles { (t) } }
    };
    Ok(page(&ui, &viewer, &d.title, Section::Dashboards, body))
}
