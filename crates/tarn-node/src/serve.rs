//! `tarn serve` put together: the HTTP API, the model endpoints, the pipeline engine beside
//! them, and the repairs a crash calls for, all on one lake until a signal stops them.

use crate::NodeError;
use std::sync::Arc;
use tarn_lake::Lake;

/// Where lines for people go (the binary prints them on stderr).
pub type Say = Arc<dyn Fn(String) + Send + Sync>;

/// How `tarn serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: std::net::SocketAddr,
    /// Require a bearer token on every call but /health and /ready.
    pub auth: bool,
    /// The largest object a PUT may land (default: tarn.yml's `limits.object_size`).
    pub max_object_bytes: Option<u64>,
    /// How often endpoints look for moved aliases and new deployments.
    pub endpoint_poll: std::time::Duration,
}

/// `tarn serve`: the lake's HTTP API, its endpoints and (beside them) its pipeline engine,
/// until SIGINT or SIGTERM. What it does for people to read goes to `say`.
pub async fn serve(lake: Lake, options: ServeOptions, say: Say) -> Result<(), NodeError> {
    let ServeOptions {
        addr,
        auth,
        max_object_bytes,
        endpoint_poll,
    } = options;
    let mut limits = lake.config.limits.clone();
    if let Some(bytes) = max_object_bytes {
        limits.object_size = bytes;
    }
    tarn_serving::sync_declared(&lake, "tarn.yml").await?;
    let mut serving = tarn_serving::ServingOptions {
        poll: endpoint_poll,
        ..Default::default()
    };
    serving.log.max_columns = limits.inference_columns;
    let endpoints = tarn_serving::Endpoints::start(lake.clone(), serving).await;
    for e in endpoints.statuses() {
        match &e.version {
            Some(v) => say(format!(
                "endpoint {} serves {} version {v} ({})",
                e.name,
                e.model,
                e.runtime.as_deref().unwrap_or("")
            )),
            None => say(format!("endpoint {} is not serving: {}", e.name, e.state)),
        }
    }
    let app = tarn_server::App::build(lake.clone(), limits)
        .with_auth(auth)
        .with_endpoints(endpoints.clone());
    let landed = app.landed();
    let stop = tokio_util::sync::CancellationToken::new();
    let engine = Arc::new(std::sync::Mutex::new(None));
    let slot = engine.clone();
    let monitors = Arc::new(std::sync::Mutex::new(None));
    let monitors_slot = monitors.clone();
    let taps = Arc::new(std::sync::Mutex::new(None));
    let taps_slot = taps.clone();
    let result = app
        .serve(addr, tarn_server::shutdown_signal(), |bound| {
            tracing::info!(%bound, "tarn serve listening");
            say(format!("listening on http://{bound} (Ctrl-C to stop)"));
            *slot.lock().expect("engine slot") =
                start_engine(lake.clone(), landed, auth, bound, stop.clone(), say.clone());
            *monitors_slot.lock().expect("monitors slot") =
                crate::start_monitors(lake.clone(), stop.clone(), say.clone());
            *taps_slot.lock().expect("taps slot") =
                crate::taps::start_taps(lake.clone(), stop.clone(), say.clone());
            // What a crash left behind is put right in the background, while requests
            // are already served.
            let checked = lake.clone();
            let say = say.clone();
            tokio::spawn(async move {
                match checked.doctor(false, tarn_lake::STALE_AFTER).await {
                    Ok(r) => {
                        for f in &r.findings {
                            say(format!(
                                "repaired at start: {} {}: {}",
                                f.kind, f.place, f.detail
                            ));
                        }
                        say(format!(
                            "checked the lake at start: {} finding(s) in {} zone(s)",
                            r.findings.len(),
                            r.zones_checked
                        ));
                    }
                    Err(e) => say(format!("checked the lake at start: stopped by {e}")),
                }
            });
        })
        .await;
    stop.cancel();
    endpoints.close().await;
    let handle = engine.lock().expect("engine slot").take();
    if let Some(h) = handle {
        h.await.ok();
    }
    let handle = monitors.lock().expect("monitors slot").take();
    if let Some(h) = handle {
        h.await.ok();
    }
    let handle = taps.lock().expect("taps slot").take();
    if let Some(h) = handle {
        h.await.ok();
    }
    Ok(result?)
}

/// `tarn worker`: runs executions of the lake's pipelines (leased, so never twice across the
/// deployment's nodes) with `workers` at once, and nothing else (no HTTP, no watcher, no
/// schedules), until SIGINT or SIGTERM.
pub async fn work(lake: Lake, workers: usize, say: Say) -> Result<(), NodeError> {
    let engine = crate::engine(&lake)?.executions_only();
    say(format!(
        "node {} runs executions of {} pipeline(s), {workers} at once (Ctrl-C to stop)",
        tarn_lake::this_node().trim_end_matches(':'),
        engine.pipelines.len()
    ));
    engine
        .run(workers, async {
            let _ = tarn_server::shutdown_signal().await;
        })
        .await;
    Ok(())
}

/// Starts the pipeline engine beside `tarn serve` when the lake has pipelines; it stops when
/// `stop` is cancelled. Steps reach the server at `bound` (with a token of their own when
/// auth is on, revoked when the server stops).
pub fn start_engine(
    lake: Lake,
    landed: Arc<tokio::sync::Notify>,
    auth: bool,
    bound: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    say: Say,
) -> Option<tokio::task::JoinHandle<()>> {
    // The engine runs pipelines and publishes events to the topics that list them.
    if !lake.config.runs_pipelines() {
        return None;
    }
    Some(tokio::spawn(async move {
        let engine = match crate::engine(&lake) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("pipelines are not running: {e}");
                say(format!("pipelines are not running:\n{e}"));
                return;
            }
        };
        let host = if bound.ip().is_unspecified() {
            std::net::SocketAddr::from(([127, 0, 0, 1], bound.port()))
        } else {
            bound
        };
        let url = format!("http://{host}");
        let engine = engine.with_server(url, auth);
        let wake = engine.wake.clone();
        let forward = tokio::spawn(async move {
            loop {
                landed.notified().await;
                wake.notify_one();
            }
        });
        let workers = std::env::var("TARN_WORKERS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(4);
        tracing::info!(
            pipelines = engine.pipelines.len(),
            workers,
            "pipelines running"
        );
        engine.run(workers, stop.cancelled_owned()).await;
        forward.abort();
    }))
}
