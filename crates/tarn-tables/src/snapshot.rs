//! A Delta table's latest version read straight from its log: the schema, the partition
//! columns and the data files a reader of that version reads. A first query of a table needs
//! no more, and reading a few JSON commits this way takes a small fraction of the time
//! delta-rs's full snapshot (the kernel's log replay) takes.
//!
//! Only the plain case is read here: commit files from version 0 on, no checkpoint, and a
//! protocol without reader features that change what a file's rows mean (column mapping,
//! deletion vectors). Anything else is `None`, and the caller opens the table with delta-rs,
//! which reads every case and names what is wrong with a broken log.

use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::ObjectStore;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use url::Url;

use crate::Stores;

/// Reader features whose tables read as plain Parquet files (no rewriting of names or rows).
const PLAIN_READER_FEATURES: &[&str] = &["timestampNtz", "vacuumProtocolCheck"];

/// The latest version of a Delta table, as its log says.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: i64,
    /// The table's schema, as the log's `schemaString` holds it.
    pub schema: deltalake::kernel::StructType,
    pub partition_columns: Vec<String>,
    /// The data files of this version, in the order they were added.
    pub files: Vec<SnapshotFile>,
    /// Where the files are: the store's URL (`file://`, `s3://bucket`) and, on the store, the
    /// table's folder.
    pub store_url: String,
    pub root: Path,
}

/// One data file of a [`Snapshot`].
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    /// The file's place on the store.
    pub location: Path,
    pub size: u64,
    /// Each partition column's value as the log writes it (`None` for null).
    pub partition_values: HashMap<String, Option<String>>,
    /// `numRecords` of the file's statistics, when the log has them.
    pub rows: Option<u64>,
}

#[derive(Deserialize)]
struct Line {
    add: Option<Add>,
    remove: Option<Remove>,
    #[serde(rename = "metaData")]
    meta_data: Option<MetaData>,
    protocol: Option<Protocol>,
}

#[derive(Deserialize)]
struct Add {
    path: String,
    #[serde(rename = "partitionValues", default)]
    partition_values: HashMap<String, Option<String>>,
    size: i64,
    stats: Option<String>,
    #[serde(rename = "deletionVector")]
    deletion_vector: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Remove {
    path: String,
}

#[derive(Deserialize)]
struct MetaData {
    #[serde(rename = "schemaString")]
    schema_string: String,
    #[serde(rename = "partitionColumns", default)]
    partition_columns: Vec<String>,
    #[serde(default)]
    configuration: HashMap<String, Option<String>>,
}

#[derive(Deserialize)]
struct Protocol {
    #[serde(rename = "minReaderVersion")]
    min_reader_version: i32,
    #[serde(rename = "readerFeatures")]
    reader_features: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Stats {
    #[serde(rename = "numRecords")]
    num_records: Option<u64>,
}

/// The latest version of the Delta table at `table_url`, read from its log; `None` when the
/// log is not the plain case this reader handles (or is missing or unreadable), for the
/// caller to open the table with delta-rs instead.
pub async fn snapshot(stores: &Stores, table_url: &str) -> Option<Snapshot> {
    let url = Url::parse(table_url.trim_end_matches('/')).ok()?;
    let root = Path::from_url_path(url.path()).ok()?;
    let log = root.clone().join("_delta_log");
    let (store_url, commits) = if url.scheme() == "file" {
        let dir = url.to_file_path().ok()?.join("_delta_log");
        ("file://".to_string(), local_commits(&dir)?)
    } else {
        let store = stores.store_for(&url)?;
        (
            format!("{}://{}", url.scheme(), url.host_str()?),
            store_commits(&store, &log).await?,
        )
    };
    let mut protocol = None;
    let mut meta = None;
    // Files in the order they were added; a removed one (or one added again later) is None.
    let mut files: Vec<Option<Add>> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for text in &commits {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let line: Line = serde_json::from_str(line).ok()?;
            if let Some(p) = line.protocol {
                protocol = Some(p);
            }
            if let Some(m) = line.meta_data {
                meta = Some(m);
            }
            if let Some(r) = line.remove {
                if let Some(i) = at.remove(&r.path) {
                    files[i] = None;
                }
            }
            if let Some(a) = line.add {
                if a.deletion_vector.as_ref().is_some_and(|d| !d.is_null()) {
                    return None;
                }
                if let Some(i) = at.insert(a.path.clone(), files.len()) {
                    files[i] = None;
                }
                files.push(Some(a));
            }
        }
    }
    let (protocol, meta) = (protocol?, meta?);
    let plain_features = protocol
        .reader_features
        .iter()
        .flatten()
        .all(|f| PLAIN_READER_FEATURES.contains(&f.as_str()));
    if !(protocol.min_reader_version == 1 || protocol.min_reader_version == 3 && plain_features) {
        return None;
    }
    let mapped = meta
        .configuration
        .get("delta.columnMapping.mode")
        .is_some_and(|m| m.as_deref().is_some_and(|m| m != "none"));
    if mapped {
        return None;
    }
    let schema: deltalake::kernel::StructType = serde_json::from_str(&meta.schema_string).ok()?;
    let mut out = Vec::with_capacity(at.len());
    for add in files.into_iter().flatten() {
        let path = &add.path;
        let location = if path.contains("://") {
            let file = Url::parse(path).ok()?;
            if file.scheme() != url.scheme() || file.host_str() != url.host_str() {
                return None;
            }
            Path::from_url_path(file.path()).ok()?
        } else {
            Path::from_url_path(format!("{}/{}", url.path().trim_end_matches('/'), path)).ok()?
        };
        let rows = add
            .stats
            .as_deref()
            .and_then(|s| serde_json::from_str::<Stats>(s).ok())
            .and_then(|s| s.num_records);
        out.push(SnapshotFile {
            location,
            size: u64::try_from(add.size).ok()?,
            partition_values: add.partition_values,
            rows,
        });
    }
    Some(Snapshot {
        version: commits.len() as i64 - 1,
        schema,
        partition_columns: meta.partition_columns,
        files: out,
        store_url,
        root,
    })
}

/// Whether the log of the Delta table at `table_url` holds a commit after `version`, or may:
/// one look-up of the next commit's file (a `stat`, or a HEAD on a bucket). Commits are
/// numbered without gaps, so a table read at `version` is still current when the file of
/// `version + 1` is not there: the cheap way for a long-lived reader to learn that nothing
/// was committed since. A look-up that cannot tell (a store it does not know, a failing
/// request) answers true, for the caller to read the log.
pub async fn committed_after(stores: &Stores, table_url: &str, version: i64) -> bool {
    next_commit_exists(stores, table_url, version + 1)
        .await
        .unwrap_or(true)
}

async fn next_commit_exists(stores: &Stores, table_url: &str, next: i64) -> Option<bool> {
    let url = Url::parse(table_url.trim_end_matches('/')).ok()?;
    let name = format!("{:020}.json", u64::try_from(next).ok()?);
    if url.scheme() == "file" {
        let file = url.to_file_path().ok()?.join("_delta_log").join(name);
        return match std::fs::metadata(&file) {
            Ok(_) => Some(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
            Err(_) => None,
        };
    }
    let store = stores.store_for(&url)?;
    let file = Path::from_url_path(url.path())
        .ok()?
        .join("_delta_log")
        .join(name);
    use deltalake::logstore::object_store::ObjectStoreExt;
    match store.head(&file).await {
        Ok(_) => Some(true),
        Err(deltalake::logstore::object_store::Error::NotFound { .. }) => Some(false),
        Err(_) => None,
    }
}

/// The version of a commit file's name (`00000000000000000007.json`), or `None`.
fn commit_version(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Whether a log entry's name is a checkpoint (or the pointer to one).
fn is_checkpoint(name: &str) -> bool {
    name == "_last_checkpoint" || name.contains(".checkpoint.")
}

/// The texts of commits `0..=n`, in order, when they are all there and no checkpoint is.
fn in_order(mut named: Vec<(u64, String)>) -> Option<Vec<String>> {
    named.sort_by_key(|(v, _)| *v);
    named
        .iter()
        .enumerate()
        .all(|(i, (v, _))| *v == i as u64)
        .then(|| named.into_iter().map(|(_, t)| t).collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
}

fn local_commits(dir: &std::path::Path) -> Option<Vec<String>> {
    let mut named = Vec::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let name = entry.ok()?.file_name();
        let name = name.to_str()?;
        if is_checkpoint(name) {
            return None;
        }
        if let Some(v) = commit_version(name) {
            named.push((v, std::fs::read_to_string(dir.join(name)).ok()?));
        }
    }
    in_order(named)
}

async fn store_commits(store: &Arc<dyn ObjectStore>, log: &Path) -> Option<Vec<String>> {
    use deltalake::logstore::object_store::ObjectStoreExt;
    use futures::{StreamExt, TryStreamExt};
    let listed: Vec<_> = store.list(Some(log)).try_collect().await.ok()?;
    let mut wanted = Vec::new();
    for meta in listed {
        let name = meta.location.filename()?.to_string();
        if is_checkpoint(&name) {
            return None;
        }
        if let Some(v) = commit_version(&name) {
            wanted.push((v, meta.location));
        }
    }
    let named: Vec<Option<(u64, String)>> = futures::stream::iter(wanted)
        .map(|(v, location)| {
            let store = store.clone();
            async move {
                let bytes = store.get(&location).await.ok()?.bytes().await.ok()?;
                Some((v, String::from_utf8(bytes.to_vec()).ok()?))
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    in_order(named.into_iter().collect::<Option<Vec<_>>>()?)
}
