//! Landing: streaming local files into a zone, once, with the raw layer kept append-only.

use crate::zones::{Zone, Zones, VERSIONS_PREFIX};
use crate::StorageError;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use tarn_metadata::{NewEvent, Store};
use tokio::io::AsyncReadExt;

/// Files above this size go up as multipart uploads, in parts of this size.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// How to land.
#[derive(Debug, Clone, Default)]
pub struct LandOptions {
    /// Replace an existing raw object with other content (the old one is kept in `_versions/`).
    pub force: bool,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LandOutcome {
    /// A new key.
    Created,
    /// An existing key got new content (the old content is in `_versions/` for raw zones).
    Replaced,
    /// The key already held exactly these bytes; nothing was written.
    Unchanged,
}

/// One landed object.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Landed {
    pub zone: String,
    pub key: String,
    pub size: u64,
    /// SHA-256 of the content: the identity of what was landed.
    pub etag: String,
    pub outcome: LandOutcome,
    /// Whether an `object.created` event was recorded (false when it already was).
    pub event_recorded: bool,
    /// Where the replaced content was kept, for raw objects landed with `--force`.
    pub previous_version: Option<String>,
}

/// The files a land of `path` at `key` writes, each with its key, every key checked before
/// anything is written: a file lands at `key` (or its own name when `key` is empty), a
/// folder's files keep their relative paths under `key`. The server's clients plan with it too.
pub fn land_plan(
    path: &Path,
    key: &str,
) -> Result<Vec<(std::path::PathBuf, String)>, StorageError> {
    let md = std::fs::metadata(path).map_err(read_local(path))?;
    if md.is_file() {
        let key = if key.is_empty() {
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string()
        } else {
            key.to_string()
        };
        crate::validate_key(&key)?;
        return Ok(vec![(path.to_path_buf(), key)]);
    }
    let mut files: Vec<std::path::PathBuf> = walkdir::WalkDir::new(path)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(StorageError::NothingToLand {
            path: path.display().to_string(),
        });
    }
    let mut plan = Vec::with_capacity(files.len());
    for f in files {
        let rel = f
            .strip_prefix(path)
            .unwrap_or(&f)
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        let k = if key.is_empty() {
            rel
        } else {
            // `raw/crash/` and `raw/crash` both mean the folder `crash`.
            format!("{}/{rel}", key.trim_end_matches('/'))
        };
        crate::validate_key(&k)?;
        plan.push((f, k));
    }
    Ok(plan)
}

impl Zones {
    /// Lands a file or every file of a folder. A folder's files keep their relative paths
    /// under `key`; an empty `key` means the file's own name. `progress` receives each
    /// increment of bytes handled, so it can drive one bar for the whole folder.
    pub async fn land(
        &self,
        meta: &Store,
        path: &Path,
        zone: &Zone,
        key: &str,
        opts: &LandOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<Landed>, StorageError> {
        let plan = land_plan(path, key)?;
        let mut out = Vec::with_capacity(plan.len());
        for (f, k) in plan {
            out.push(self.land_file(meta, &f, zone, &k, opts, progress).await?);
        }
        Ok(out)
    }

    /// Lands one file under `key`. `progress` is called with each increment of bytes handled.
    pub async fn land_file(
        &self,
        meta: &Store,
        path: &Path,
        zone: &Zone,
        key: &str,
        opts: &LandOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Landed, StorageError> {
        self.check_key(key)?;
        let (etag, size) = hash_file(path).await.map_err(read_local(path))?;
        let location = zone.path(key);
        let store = self.store();
        let raw = zone.layer == "raw";

        let mut outcome = LandOutcome::Created;
        let mut previous_version = None;
        match store.head(&location).await {
            Ok(existing) => {
                let existing_hash = hash_object(store.as_ref(), &location).await?;
                if existing_hash == etag {
                    outcome = LandOutcome::Unchanged;
                } else {
                    if raw && !opts.force {
                        return Err(StorageError::RawExists {
                            zone: zone.name(),
                            key: key.to_string(),
                            versions: VERSIONS_PREFIX.into(),
                        });
                    }
                    if raw {
                        let stamp = existing.last_modified.format("%Y%m%dT%H%M%S%.6fZ");
                        let kept =
                            format!("{VERSIONS_PREFIX}/{key}/{stamp}-{}", &existing_hash[..12]);
                        store.copy(&location, &zone.path(&kept)).await?;
                        previous_version = Some(kept);
                    }
                    outcome = LandOutcome::Replaced;
                }
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }

        if outcome != LandOutcome::Unchanged {
            match upload(
                self,
                &location,
                path,
                size,
                raw && outcome == LandOutcome::Created,
                progress,
            )
            .await
            {
                Ok(()) => {}
                // Another landing created the key between our look and our put: the same
                // bytes make this one "unchanged", other bytes meet the append-only rule.
                Err(StorageError::Store(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                )) => {
                    if hash_object(store.as_ref(), &location).await? != etag {
                        return Err(StorageError::RawExists {
                            zone: zone.name(),
                            key: key.to_string(),
                            versions: VERSIONS_PREFIX.into(),
                        });
                    }
                    outcome = LandOutcome::Unchanged;
                }
                Err(e) => return Err(e),
            }
        } else {
            progress(size);
        }

        let mut event = NewEvent::object_created(&zone.name(), key, &etag, size);
        event.detail =
            serde_json::json!({ "size": size, "layer": zone.layer, "domain": zone.domain });
        let event_recorded = meta.events().record_event(&event).await?;
        tracing::info!(zone = %zone.name(), key, size, ?outcome, event_recorded, "landed");
        Ok(Landed {
            zone: zone.name(),
            key: key.to_string(),
            size,
            etag,
            outcome,
            event_recorded,
            previous_version,
        })
    }
}

async fn upload(
    zones: &Zones,
    location: &ObjectPath,
    path: &Path,
    size: u64,
    create_only: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), StorageError> {
    let store = zones.store();
    let read_err = read_local(path);
    let mut file = tokio::fs::File::open(path).await.map_err(&read_err)?;
    if size as usize <= PART_SIZE {
        let mut buf = Vec::with_capacity(size as usize);
        file.read_to_end(&mut buf).await.map_err(&read_err)?;
        let mode = if create_only {
            // Two landings racing for the same new raw key: only one wins, the other sees it exists.
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        store
            .put_opts(location, PutPayload::from(buf), PutOptions::from(mode))
            .await?;
        progress(size);
        return Ok(());
    }
    let upload = store.put_multipart(location).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut buf = vec![0u8; PART_SIZE];
    // Any failure aborts the upload, so S3 keeps no parts of it (a killed process leaves an
    // open upload for `tarn doctor`).
    loop {
        let n = match file.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                writer.abort().await.ok();
                return Err(read_err(e));
            }
        };
        if let Err(e) = writer.wait_for_capacity(4).await {
            writer.abort().await.ok();
            return Err(e.into());
        }
        writer.write(&buf[..n]);
        progress(n as u64);
    }
    writer.finish().await?;
    Ok(())
}

/// The error for a local file that cannot be read.
fn read_local(path: &Path) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::ReadLocal {
        path: path.display().to_string(),
        source,
    }
}

async fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

async fn hash_object(
    store: &dyn object_store::ObjectStore,
    location: &ObjectPath,
) -> Result<String, StorageError> {
    use futures::StreamExt;
    let mut stream = store.get(location).await?.into_stream();
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tarn_config::{LakeConfig, Selection};

    async fn lake() -> (tempfile::TempDir, Zones, Store) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tarn.yml"), "lake: t\ndomains: [flights]\n").unwrap();
        let cfg = LakeConfig::load(dir.path(), &Selection::default()).unwrap();
        let zones = Zones::open(&cfg).unwrap();
        let meta = Store::open(&cfg.metadata).await.unwrap();
        (dir, zones, meta)
    }

    #[tokio::test]
    async fn raw_is_append_only_and_force_keeps_the_old_version() {
        let (dir, zones, meta) = lake().await;
        let zone = zones.zone("flights", "raw").unwrap();
        let f = dir.path().join("a.csv");
        std::fs::write(&f, "a\n1\n").unwrap();
        let noop = |_| {};
        let first = zones
            .land_file(&meta, &f, &zone, "a.csv", &LandOptions::default(), &noop)
            .await
            .unwrap();
        assert_eq!(first.outcome, LandOutcome::Created);
        assert!(first.event_recorded);
        // Same bytes again: nothing written, no second event.
        let again = zones
            .land_file(&meta, &f, &zone, "a.csv", &LandOptions::default(), &noop)
            .await
            .unwrap();
        assert_eq!(again.outcome, LandOutcome::Unchanged);
        assert!(!again.event_recorded);
        // Other bytes: refused without --force, the original untouched.
        std::fs::write(&f, "a\n2\n").unwrap();
        let err = zones
            .land_file(&meta, &f, &zone, "a.csv", &LandOptions::default(), &noop)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        assert_eq!(&zones.read(&zone, "a.csv").await.unwrap()[..], b"a\n1\n");
        // With --force: replaced, and the old bytes recoverable.
        let forced = zones
            .land_file(
                &meta,
                &f,
                &zone,
                "a.csv",
                &LandOptions { force: true },
                &noop,
            )
            .await
            .unwrap();
        assert_eq!(forced.outcome, LandOutcome::Replaced);
        let kept = forced.previous_version.unwrap();
        assert_eq!(&zones.read(&zone, &kept).await.unwrap()[..], b"a\n1\n");
        assert_eq!(&zones.read(&zone, "a.csv").await.unwrap()[..], b"a\n2\n");
        // Listing hides the kept versions.
        let keys: Vec<String> = zones
            .list(&zone, "")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["a.csv"]);
        assert_eq!(
            meta.events()
                .list(None, None, None, 10)
                .await
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn large_files_go_up_in_parts() {
        let (dir, zones, meta) = lake().await;
        let zone = zones.zone("flights", "trusted").unwrap();
        let f = dir.path().join("big.bin");
        let data: Vec<u8> = (0..(PART_SIZE * 2 + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&f, &data).unwrap();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let landed = zones
            .land_file(
                &meta,
                &f,
                &zone,
                "big.bin",
                &LandOptions::default(),
                &|_| {
                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                },
            )
            .await
            .unwrap();
        assert_eq!(landed.size, data.len() as u64);
        assert!(calls.into_inner() >= 3);
        assert_eq!(
            zones.read(&zone, "big.bin").await.unwrap().len(),
            data.len()
        );
    }
}
