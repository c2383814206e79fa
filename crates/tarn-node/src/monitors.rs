//! Monitors on their schedules beside `tarn serve`: each due time of a monitor's cron
//! schedule is claimed once (an event keyed by monitor and time, so several nodes sharing a
//! lake run it once between them), then the monitor runs and its alerts go out.

use crate::serve::Say;
use std::time::Duration;
use tarn_lake::{Lake, NewEvent};

/// The kind of the events that claim a scheduled monitor run.
pub const MONITOR_SCHEDULED: &str = "monitor.scheduled";

/// Starts the scheduler when some monitor has a `schedule:`; it stops with `stop`.
pub fn start_monitors(
    lake: Lake,
    stop: tokio_util::sync::CancellationToken,
    say: Say,
) -> Option<tokio::task::JoinHandle<()>> {
    let specs = match tarn_config::load_monitors(&lake.config) {
        Ok(s) => s,
        Err(e) => {
            say(format!("monitors are not running:\n{e}"));
            return None;
        }
    };
    let scheduled: Vec<(tarn_config::MonitorSpec, croner::Cron)> = specs
        .into_iter()
        .filter_map(|s| {
            let expr = s.schedule.clone()?;
            let cron = croner::Cron::new(&expr)
                .with_seconds_optional()
                .parse()
                .ok()?;
            Some((s, cron))
        })
        .collect();
    if scheduled.is_empty() {
        return None;
    }
    say(format!(
        "{} monitor(s) run on their schedules",
        scheduled.len()
    ));
    Some(tokio::spawn(async move {
        let mut since = chrono::Utc::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            let now = chrono::Utc::now();
            for (spec, cron) in &scheduled {
                // Only the latest due time runs: a node that slept does not replay every
                // missed one (each run evaluates every window anyway).
                let mut due = None;
                let mut at = since;
                while let Ok(next) = cron.find_next_occurrence(&at, false) {
                    if next > now {
                        break;
                    }
                    due = Some(next);
                    at = next;
                }
                let Some(due) = due else { continue };
                let when = due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let claim = NewEvent {
                    kind: MONITOR_SCHEDULED.into(),
                    zone: String::new(),
                    key: spec.name.clone(),
                    etag: when.clone(),
                    size: 0,
                    detail: serde_json::json!({"monitor": spec.name, "scheduled_time": when}),
                };
                match lake.events().record_event(&claim).await {
                    Ok(true) => {}
                    Ok(false) => continue, // another node runs it
                    Err(e) => {
                        tracing::warn!("monitor {}: claiming its run: {e}", spec.name);
                        continue;
                    }
                }
                match tarn_monitoring::run(&lake, spec, &Default::default()).await {
                    Ok(r) if r.note.is_some() => say(format!(
                        "monitor {} at {when}: {}",
                        spec.name,
                        r.note.unwrap_or_default()
                    )),
                    Ok(r) => say(format!(
                        "monitor {} ran at {when}: {} window(s), {} alert(s), {} recovered",
                        spec.name,
                        r.windows.len(),
                        r.alerts.len(),
                        r.recovered.len()
                    )),
                    Err(e) => say(format!("monitor {} failed at {when}: {e}", spec.name)),
                }
            }
            since = now;
        }
    }))
}
