//! Objects that appear in a zone without tarn landing them (files copied straight into a
//! `file://` zone, objects put into an S3 zone by another tool) are noticed by listing the
//! zone and comparing it with a durable cursor in the metadata store (each key's store change
//! tag): a new or changed object is read once, hashed, and recorded as an `object.created`
//! event exactly as a landing would record it. An object tarn landed itself (its event is
//! newer than the object) is marked seen without being read; so is one whose event a crash
//! kept tarn from recording (killed between the put and the event), which gets its event here.
//! The files of Delta tables in a zone are the tables', never objects of their own.

use crate::{StorageError, Zone, Zones};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tarn_metadata::{NewEvent, Store};

/// An object modified less than this long ago may still be being written: it waits for the
/// next look.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Lists `zone` under `prefix` and records an event for each object not seen before (or
/// changed since). Answers how many events were recorded.
pub async fn notice(
    zones: &Zones,
    meta: &Store,
    zone: &Zone,
    prefix: &str,
) -> Result<usize, StorageError> {
    look(zones, meta, zone, prefix, false).await
}

/// How many objects [`notice`] would record an event for, changing nothing.
pub async fn unnoticed(
    zones: &Zones,
    meta: &Store,
    zone: &Zone,
    prefix: &str,
) -> Result<usize, StorageError> {
    look(zones, meta, zone, prefix, true).await
}

async fn look(
    zones: &Zones,
    meta: &Store,
    zone: &Zone,
    prefix: &str,
    dry_run: bool,
) -> Result<usize, StorageError> {
    let name = zone.name();
    let seen = meta.events().seen_objects(&name, prefix).await?;
    let settled = chrono::Utc::now() - chrono::Duration::from_std(SETTLE).unwrap_or_default();
    let mut recorded = 0;
    let listed = zones.list(zone, prefix).await?;
    // A Delta table's files are the table's, not objects landed in the zone.
    let tables: std::collections::BTreeSet<String> = listed
        .iter()
        .filter_map(|o| {
            o.key
                .split_once("/_delta_log/")
                .map(|(t, _)| format!("{t}/"))
        })
        .collect();
    for o in listed {
        if o.key.starts_with("_delta_log/") || tables.iter().any(|t| o.key.starts_with(t.as_str()))
        {
            continue;
        }
        let tag = o
            .e_tag
            .clone()
            .unwrap_or_else(|| format!("{}:{}", o.last_modified, o.size));
        if seen.get(&o.key) == Some(&(tag.clone(), o.size as i64)) {
            continue;
        }
        let fresh = chrono::DateTime::parse_from_rfc3339(&o.last_modified)
            .map(|t| t > settled)
            .unwrap_or(false);
        if fresh {
            continue;
        }
        // Landed by tarn itself (an event for this key and size recorded after the object was
        // written): seen, without reading it back. Landing stays free of watcher bookkeeping.
        let written = chrono::DateTime::parse_from_rfc3339(&o.last_modified).ok();
        let landed = meta
            .events()
            .landed_at(&name, &o.key, o.size as i64)
            .await?;
        let landed = landed.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
        if matches!((written, landed), (Some(w), Some(l)) if l >= w) {
            if !dry_run {
                meta.events()
                    .mark_seen(&name, &o.key, &tag, o.size as i64)
                    .await?;
            }
            continue;
        }
        if dry_run {
            // Without an event of this key and size at all, a look would record one.
            if landed.is_none() {
                recorded += 1;
            }
            continue;
        }
        let bytes = match zones.read(zone, &o.key).await {
            Ok(b) => b,
            Err(StorageError::NotFound(_)) => continue, // gone since the listing
            Err(e) => return Err(e),
        };
        let sha = hex::encode(Sha256::digest(&bytes));
        let mut event = NewEvent::object_created(&name, &o.key, &sha, bytes.len() as u64);
        event.detail = serde_json::json!({
            "size": bytes.len(), "layer": zone.layer, "domain": zone.domain, "noticed": true,
        });
        if meta.events().record_event(&event).await? {
            recorded += 1;
            tracing::info!(zone = %name, key = o.key, "noticed an object landed outside tarn");
        }
        meta.events()
            .mark_seen(&name, &o.key, &tag, o.size as i64)
            .await?;
    }
    Ok(recorded)
}
