//! Taps on their schedules beside `tarn serve`: each `schedule:` that comes due is recorded
//! once as a `schedule.fired` event (so of several nodes one runs it), and the tap runs.

use crate::Say;
use std::time::Duration;
use tarn_lake::Lake;

/// Starts running the lake's scheduled taps; stops when `stop` is cancelled. `None` when no
/// tap has a schedule.
pub fn start_taps(
    lake: Lake,
    stop: tokio_util::sync::CancellationToken,
    say: Say,
) -> Option<tokio::task::JoinHandle<()>> {
    let scheduled = lake
        .config
        .taps
        .iter()
        .filter(|t| t.schedule.is_some())
        .count();
    if scheduled == 0 {
        return None;
    }
    say(format!("{scheduled} tap(s) run on their schedules"));
    Some(tokio::spawn(async move {
        let mut since = chrono::Utc::now();
        let running = std::sync::Arc::new(std::sync::Mutex::new(
            std::collections::HashSet::<String>::new(),
        ));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            let now = chrono::Utc::now();
            let due = match tarn_ingest::fire_schedules(&lake, since, now).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("firing taps' schedules: {e}");
                    continue;
                }
            };
            since = now;
            for name in due {
                // A tap still running from its last time is not started twice.
                if !running.lock().expect("running set").insert(name.clone()) {
                    say(format!(
                        "tap {name} is still running; this time of its schedule is skipped"
                    ));
                    continue;
                }
                let (lake, say, running) = (lake.clone(), say.clone(), running.clone());
                tokio::spawn(async move {
                    match tarn_ingest::run(&lake, &name, &tarn_ingest::RunOptions::default()).await
                    {
                        Ok(r) => say(format!(
                            "tap {name}: {} record(s) in {:.1}s",
                            r.streams.values().map(|c| c.committed).sum::<u64>(),
                            r.seconds
                        )),
                        Err(e) => say(format!("tap {name} failed: {e}")),
                    }
                    running.lock().expect("running set").remove(&name);
                });
            }
        }
    }))
}
