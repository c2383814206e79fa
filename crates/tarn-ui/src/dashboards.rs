//! KPI dashboards: each `dashboards/NAME.yml` a page whose tiles are its queries' answers
//! drawn as a number, a line, bars or a table, read again every `refresh:`.

use crate::layout::{json_island, page, Section, UiError};
use crate::session::Viewer;
use crate::sql::{chart_data, rows_table};
use crate::Ui;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use maud::{html, Markup};
use tarn_config::Tile;
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
async fn tile(ui: &Ui, i: usize, t: &Tile) -> Markup {
    let opts = QueryOptions {
        row_limit: Some(TILE_ROWS),
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
    let mut tiles = Vec::new();
    for (i, t) in d.tiles.iter().enumerate() {
        tiles.push(tile(&ui, i, t).await);
    }
    let body = html! {
        @if let Some(r) = d.refresh {
            meta http-equiv="refresh" content=(r.as_secs());
            p.quiet { "read again every " (r.as_secs()) " s · " span.mono { (d.path.display().to_string()) } }
        }
        div.tiles { @for t in &tiles { (t) } }
    };
    Ok(page(&ui, &viewer, &d.title, Section::Dashboards, body))
}
