//! Glue ETL scripts on Spark: tarn's `awsglue` (GlueContext, DynamicFrame, transforms, Job,
//! getResolvedOptions over PySpark: `tarn_process::AWSGLUE`) shipped to the driver and executors
//! with `--py-files`; where a job stages what it writes; and, once its script has ended, the
//! staged writes committed into their tables (one load each, under the table's contract, with
//! a Delta application transaction id of the execution, step and write, so a retried or
//! resumed step never writes twice) and the job's bookmarks kept.

use std::path::{Path, PathBuf};
use tarn_lake::{Lake, LoadArgs, LoadMode};

/// The zip of tarn's `awsglue` under `.tarn/glue/` (written once per version of the library).
pub(crate) fn library(lake: &Lake) -> Result<PathBuf, String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (name, text) in tarn_process::AWSGLUE {
        h.update(name.as_bytes());
        h.update(text.as_bytes());
    }
    let dir = lake.config.root.join(".tarn/glue");
    let path = dir.join(format!("awsglue-{}.zip", &hex::encode(h.finalize())[..12]));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let write = || -> Result<(), Box<dyn std::error::Error>> {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&tmp)?);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, text) in tarn_process::AWSGLUE {
            zip.start_file(*name, opts)?;
            std::io::Write::write_all(&mut zip, text.as_bytes())?;
        }
        zip.finish()?;
        Ok(())
    };
    write().map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// Where one attempt of a job stages its writes: its folder in the lake's store.
pub(crate) struct Staging {
    /// The folder's path inside the store (`_tarn/staging/EXECUTION/STEP/ATTEMPT`).
    pub path: String,
    /// Its URL (`file:///...` or `s3://bucket/...`).
    pub url: String,
}

impl Staging {
    pub(crate) fn new(lake: &Lake, execution: &str, step: &str, attempt: &str) -> Staging {
        let path = format!("_tarn/staging/{execution}/{step}/{attempt}");
        let url = lake
            .zones
            .url_of(&object_store::path::Path::from(path.as_str()));
        Staging { path, url }
    }
}

/// The object a job's bookmarks are kept in (in the lake's store, beside its tables).
fn bookmarks_path(pipeline: &str, step: &str) -> object_store::path::Path {
    object_store::path::Path::from(format!("_tarn/glue-bookmarks/{pipeline}/{step}.json"))
}

/// What the job's bookmarked reads saw in its earlier runs, written to `to` for the script.
pub(crate) async fn bookmarks_for(
    lake: &Lake,
    pipeline: &str,
    step: &str,
    to: &Path,
) -> Result<(), String> {
    use object_store::ObjectStoreExt;
    let store = lake.zones.store();
    let text = match store.get(&bookmarks_path(pipeline, step)).await {
        Ok(g) => g
            .bytes()
            .await
            .map_err(|e| format!("reading the job's bookmarks: {e}"))?
            .to_vec(),
        Err(object_store::Error::NotFound { .. }) => b"{}".to_vec(),
        Err(e) => return Err(format!("reading the job's bookmarks: {e}")),
    };
    std::fs::write(to, text).map_err(|e| format!("writing {}: {e}", to.display()))
}

/// One line of the manifest a script's `awsglue` writes.
#[derive(serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Entry {
    Write {
        table: String,
        staged: String,
        mode: String,
        rows: u64,
    },
    Bookmark {
        ctx: String,
        files: Vec<String>,
    },
}

/// Commits what the script staged (in the order it wrote) and keeps its bookmarks; answers
/// each write's load report.
pub(crate) async fn commit(
    lake: &Lake,
    manifest: &Path,
    staging: &Staging,
    pipeline: &str,
    execution: &str,
    step: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let text = match std::fs::read_to_string(manifest) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading the job's manifest: {e}")),
    };
    let mut reports = Vec::new();
    let mut marks: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let entry: Entry = serde_json::from_str(line)
            .map_err(|e| format!("line {} of the job's manifest: {e}", i + 1))?;
        match entry {
            Entry::Write {
                table,
                staged,
                mode,
                rows,
            } => {
                let n = reports.len() + 1;
                if rows == 0 {
                    reports.push(serde_json::json!({"table": table, "rows_written": 0}));
                    continue;
                }
                let mode: LoadMode = mode.parse().map_err(|e: String| {
                    format!("write {n} to {table}: {e} (give additional_options mode append, overwrite or merge)")
                })?;
                let args = LoadArgs {
                    table: table.clone(),
                    source: String::new(),
                    format: None,
                    mode,
                    key: Vec::new(),
                    again: false,
                };
                let report = lake
                    .load_staged(
                        &args,
                        &staged,
                        &format!("tarn.glue:{execution}:{step}:{n}"),
                        &format!("glue job {pipeline}/{step} (execution {execution}, write {n})"),
                    )
                    .await
                    .map_err(|e| format!("committing write {n} into {table}: {e}"))?;
                reports.push(serde_json::to_value(&report).unwrap_or_default());
            }
            Entry::Bookmark { ctx, files } => marks.entry(ctx).or_default().extend(files),
        }
    }
    if !marks.is_empty() {
        keep_bookmarks(lake, pipeline, step, marks).await?;
    }
    // This attempt's files and those of earlier attempts of the step (a killed one's).
    let step_folder = staging
        .path
        .rsplit_once('/')
        .map(|(folder, _)| folder.to_string())
        .unwrap_or_else(|| staging.path.clone());
    remove_staged(lake, &step_folder).await;
    Ok(reports)
}

async fn keep_bookmarks(
    lake: &Lake,
    pipeline: &str,
    step: &str,
    marks: std::collections::BTreeMap<String, Vec<String>>,
) -> Result<(), String> {
    use object_store::ObjectStoreExt;
    let store = lake.zones.store();
    let path = bookmarks_path(pipeline, step);
    let mut kept: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        match store.get(&path).await {
            Ok(g) => serde_json::from_slice(&g.bytes().await.map_err(|e| e.to_string())?)
                .unwrap_or_default(),
            Err(_) => Default::default(),
        };
    for (ctx, files) in marks {
        kept.entry(ctx).or_default().extend(files);
    }
    let body = serde_json::to_vec(&kept).map_err(|e| e.to_string())?;
    store
        .put(&path, body.into())
        .await
        .map_err(|e| format!("keeping the job's bookmarks: {e}"))?;
    Ok(())
}

/// Removes an attempt's staged files (what was committed is in its table now; what was not
/// is written again by the next attempt).
pub(crate) async fn remove_staged(lake: &Lake, path: &str) {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let store = lake.zones.store();
    let prefix = object_store::path::Path::from(path);
    let found: Vec<_> = match store.list(Some(&prefix)).try_collect().await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("listing staged files under {path}: {e}");
            return;
        }
    };
    for m in found {
        if let Err(e) = store.delete(&m.location).await {
            tracing::warn!("removing staged file {}: {e}", m.location);
        }
    }
    // A local store keeps the emptied folders.
    let url = lake.zones.url_of(&prefix);
    if let Some(dir) = url.strip_prefix("file://") {
        let _ = std::fs::remove_dir_all(dir);
    }
}
