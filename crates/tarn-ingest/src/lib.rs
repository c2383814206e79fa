//! Singer ingestion: published taps land their streams in the lake, typed, catalogued and
//! exactly once.
//!
//! [`run`] installs a tap from PyPI into its own virtualenv, hands it its config (settings and
//! secrets, in a private file), its saved state and its catalog (the `select:` of `tarn.yml`
//! applied), and writes what it prints: each stream into the Delta table
//! `DOMAIN.LAYER.<name>_<stream>`, records that break the stream's schema into the table's
//! `_rejected` table with the reason, and each STATE saved only once every record before it is
//! committed (see [`writer`](crate::writer) for how a crash between the two is settled).
//! [`secrets`] is tarn's own secret store.

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod catalog;
mod error;
mod run;
pub mod secrets;
mod singer;
mod writer;

pub use error::IngestError;
pub use run::{
    discover, install, run, selected_catalog, spec, tap_dir, Program, Progress, ProgressSink,
    RunOptions, RunReport, MAX_LINE,
};
pub use singer::VERSION_COLUMN;
pub use writer::{app_id, settle_pending, Settled, StreamCount};

/// Records a `schedule.fired` event for each time a tap's `schedule:` came due in
/// `(since, now]` (keyed by tap, schedule and time, so several nodes record it once), and
/// answers the taps whose event this call recorded: the ones to run now.
pub async fn fire_schedules(
    lake: &tarn_lake::Lake,
    since: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, IngestError> {
    let mut due = Vec::new();
    for tap in &lake.config.taps {
        let Some(expr) = &tap.schedule else { continue };
        let Ok(cron) = croner::Cron::new(expr).with_seconds_optional().parse() else {
            continue;
        };
        let mut at = since;
        let mut fired = false;
        while let Ok(next) = cron.find_next_occurrence(&at, false) {
            if next > now {
                break;
            }
            let when = next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let e = tarn_lake::NewEvent {
                kind: "schedule.fired".into(),
                zone: format!("tap:{}", tap.name),
                key: expr.clone(),
                etag: when.clone(),
                size: 0,
                detail: serde_json::json!({"schedule": expr, "tap": tap.name, "scheduled_time": when}),
            };
            fired |= lake.events().record_event(&e).await?;
            at = next;
        }
        if fired {
            due.push(tap.name.clone());
        }
    }
    Ok(due)
}

/// The saved state of tap `name` (`None` before its first flush).
pub async fn state(
    lake: &tarn_lake::Lake,
    name: &str,
) -> Result<Option<tarn_lake::taps::TapState>, IngestError> {
    run::spec(lake, name)?;
    Ok(lake.taps().state(name).await?)
}

/// Clears the saved state of tap `name`: its next run starts from the beginning. Answers
/// whether there was one.
pub async fn reset(lake: &tarn_lake::Lake, name: &str) -> Result<bool, IngestError> {
    run::spec(lake, name)?;
    Ok(lake.taps().reset(name).await?)
}
