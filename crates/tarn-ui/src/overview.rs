//! The overview: every zone (domain x layer) with its objects, bytes, tables and newest
//! landing; the newest events; running and failed executions; the newest monitor alerts.
//!
//! Counting a zone lists every object in it, which takes long in a big lake, so the zones'
//! figures are counted in the background at most every 30 s ([`ZoneCounts`]) and the page
//! shows the latest count with its time, as a bucket console shows its daily metrics.

use crate::layout::{bytes, page, Section, UiError};
use crate::session::Viewer;
use crate::Ui;
use axum::extract::State;
use axum::response::Html;
use maud::html;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Events shown, newest first.
const EVENTS: i64 = 20;
/// Executions shown per status.
const EXECUTIONS: usize = 10;
/// How old the zones' figures may be before a view counts them again.
const RECOUNT: Duration = Duration::from_secs(30);
/// How long a view waits for a count when there is none yet.
const FIRST_COUNT: Duration = Duration::from_secs(2);

/// One zone's figures: objects, bytes, and the newest object's time.
#[derive(Clone, Debug)]
pub(crate) struct ZoneFigures {
    domain: String,
    layer: String,
    objects: usize,
    size: u64,
    newest: String,
}

/// The zones' figures, counted in the background; each page view asks for a recount once the
/// last is older than [`RECOUNT`] and shows the last complete one meanwhile.
#[derive(Clone)]
pub(crate) struct ZoneCounts {
    latest: watch::Sender<Option<Counted>>,
    counting: Arc<Mutex<bool>>,
}

/// A complete count, when it ended, and whether listing a zone failed.
#[derive(Clone)]
struct Counted {
    at: Instant,
    when: String,
    zones: Vec<ZoneFigures>,
    problem: Option<String>,
}

impl Default for ZoneCounts {
    fn default() -> Self {
        ZoneCounts {
            latest: watch::channel(None).0,
            counting: Arc::new(Mutex::new(false)),
        }
    }
}

impl ZoneCounts {
    /// The latest count (waiting up to [`FIRST_COUNT`] when there is none yet), starting a
    /// recount in the background when it is old.
    async fn get(&self, lake: &tarn_lake::Lake) -> Option<Counted> {
        let stale = self
            .latest
            .borrow()
            .as_ref()
            .is_none_or(|c| c.at.elapsed() > RECOUNT);
        if stale {
            let mut counting = self.counting.lock().unwrap_or_else(|e| e.into_inner());
            if !*counting {
                *counting = true;
                let (me, lake) = (self.clone(), lake.clone());
                tokio::spawn(async move {
                    let counted = count(&lake).await;
                    me.latest.send_replace(Some(counted));
                    *me.counting.lock().unwrap_or_else(|e| e.into_inner()) = false;
                });
            }
        }
        let mut rx = self.latest.subscribe();
        let waited = tokio::time::timeout(FIRST_COUNT, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(c)) => c.clone(),
            _ => None,
        }
    }
}

/// Lists every zone and adds up its objects.
async fn count(lake: &tarn_lake::Lake) -> Counted {
    let mut zones = Vec::new();
    let mut problem = None;
    for z in lake.zones.all() {
        match lake.ls(&format!("{}/{}", z.domain, z.layer)).await {
            Ok(objects) => zones.push(ZoneFigures {
                objects: objects.len(),
                size: objects.iter().map(|o| o.size).sum(),
                newest: objects
                    .iter()
                    .map(|o| o.last_modified.as_str())
                    .max()
                    .unwrap_or("")
                    .to_string(),
                domain: z.domain,
                layer: z.layer,
            }),
            Err(e) => {
                problem.get_or_insert_with(|| format!("zone {}/{}: {e}", z.domain, z.layer));
            }
        }
    }
    Counted {
        at: Instant::now(),
        when: chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        zones,
        problem,
    }
}

pub(crate) async fn show(State(ui): State<Ui>, viewer: Viewer) -> Result<Html<String>, UiError> {
    let lake = &ui.lake;
    let tables = lake.tables(None, None).await?;
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tables {
        let zone = t.table.rsplit_once('.').map_or("", |(z, _)| z).to_string();
        *per_zone.entry(zone).or_default() += 1;
    }
    let counted = ui.zone_counts.get(lake).await;
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
            @match &counted {
                None => p.quiet { "Counting the zones' objects; reload in a moment." }
                Some(c) => {
                    p.quiet { "Objects counted at " (c.when) " (again at most every 30 s)." }
                    @if let Some(problem) = &c.problem { p.error { (problem) } }
                    table {
                        thead { tr { th { "domain" } th { "layer" } th.num { "objects" } th.num { "bytes" } th.num { "tables" } th { "newest object" } } }
                        tbody {
                            @for z in &c.zones {
                                tr {
                                    td { (z.domain) }
                                    td { (z.layer) }
                                    td.num { (z.objects) }
                                    td.num { (bytes(z.size)) }
                                    td.num {
                                        a href={ "/ui/tables?search=" (z.domain) "." (z.layer) "." } {
                                            (per_zone.get(&format!("{}.{}", z.domain, z.layer)).copied().unwrap_or(0))
                                        }
                                    }
                                    td { (z.newest) }
                                }
                            }
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
