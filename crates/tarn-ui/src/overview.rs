//! The overview: every zone (domain x layer) with its objects, bytes, tables and newest
//! landing; the newest events; running and failed executions; the newest monitor alerts.

use crate::layout::{bytes, page, Section, UiError};
use crate::session::Viewer;
use crate::Ui;
use axum::extract::State;
use axum::response::Html;
use maud::html;
use std::collections::BTreeMap;

/// Events shown, newest first.
const EVENTS: i64 = 20;
/// Executions shown per status.
const EXECUTIONS: usize = 10;

pub(crate) async fn show(State(ui): State<Ui>, viewer: Viewer) -> Result<Html<String>, UiError> {
    let lake = &ui.lake;
    let tables = lake.tables(None, None).await?;
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tables {
        let zone = t.table.rsplit_once('.').map_or("", |(z, _)| z).to_string();
        *per_zone.entry(zone).or_default() += 1;
    }
    let mut zones = Vec::new();
    for z in lake.zones.all() {
        let objects = lake.ls(&format!("{}/{}", z.domain, z.layer)).await?;
        let size: u64 = objects.iter().map(|o| o.size).sum();
        let newest = objects
            .iter()
            .map(|o| o.last_modified.as_str())
            .max()
            .unwrap_or("")
            .to_string();
        let tables = per_zone
            .get(&format!("{}.{}", z.domain, z.layer))
            .copied()
            .unwrap_or(0);
        zones.push((z.domain, z.layer, objects.len(), size, tables, newest));
    }
    let mut events = lake.latest_events(None, EVENTS).await?;
    events.reverse();
    let running = lake
        .executions_page(None, Some("running"), None, EXECUTIONS)
        .await?
        .items;
    let failed = lake
        .executions_page(None, Some("failed"), None, EXECUTIONS)
        .await?
        .items;
    let alerts: Vec<_> = lake
        .latest_events(Some(tarn_lake::CUSTOM_EVENT), 200)
        .await?
        .into_iter()
        .rev()
        .filter(|e| e.key == "monitor.alert")
        .take(10)
        .collect();
    let executions = |title: &str, items: &[tarn_lake::ExecutionRecord]| {
        html! {
            section {
                h2 { (title) " (" (items.len()) ")" }
                @if items.is_empty() {
                    p.quiet { "none" }
                } @else {
                    table {
                        thead { tr { th { "execution" } th { "pipeline" } th { "step" } th { "created" } th { "error" } } }
                        tbody {
                            @for e in items {
                                tr {
                                    td.mono { (e.id) }
                                    td { (e.pipeline) }
                                    td { (e.step.as_deref().unwrap_or("")) }
                                    td { (e.created_at) }
                                    td.error { (e.error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        section {
            h2 { "Zones" }
            table {
                thead { tr { th { "domain" } th { "layer" } th.num { "objects" } th.num { "bytes" } th.num { "tables" } th { "newest object" } } }
                tbody {
                    @for (domain, layer, objects, size, tables, newest) in &zones {
                        tr {
                            td { (domain) }
                            td { (layer) }
                            td.num { (objects) }
                            td.num { (bytes(*size)) }
                            td.num { a href={ "/ui/tables?search=" (domain) "." (layer) "." } { (tables) } }
                            td { (newest) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Monitor alerts" }
            @if alerts.is_empty() {
                p.quiet { "none" }
            } @else {
                ul {
                    @for a in &alerts {
                        li {
                            (a.created_at) ": monitor "
                            strong { (a.detail["detail"]["monitor"].as_str().unwrap_or("?")) }
                            ", window from " (a.detail["detail"]["window_start"].as_str().unwrap_or("?"))
                            ", " (a.detail["detail"]["breaches"].as_array().map_or(0, |b| b.len())) " breaches"
                        }
                    }
                }
            }
        }
        (executions("Running executions", &running))
        (executions("Failed executions", &failed))
        section {
            h2 { "Newest events" }
            table {
                thead { tr { th { "when" } th { "kind" } th { "zone" } th { "key" } th.num { "size" } } }
                tbody {
                    @for e in &events {
                        tr {
                            td { (e.created_at) }
                            td { (e.kind) }
                            td { (e.zone) }
                            td.mono { (e.key) }
                            td.num { (bytes(e.size)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&ui, &viewer, "Overview", Section::Overview, body))
}
