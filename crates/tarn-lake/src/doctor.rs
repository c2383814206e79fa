//! `tarn doctor`: checking that the catalog tells the truth about what is stored, and
//! repairing it. A Delta table's version, row count, schema and loads are facts of its log;
//! the catalog holds a copy, brought back in line here after any crash between the two writes.
//! Objects a crash left without their `object.created` event get it, and the temporary files
//! of writers killed mid-write are removed. `tarn serve` runs the repairs when it starts.

use crate::{Lake, LakeError, TableAddress};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tarn_metadata::LoadRecord;

/// A temporary file untouched for this long, or an upload started this long ago, belongs to a
/// writer that is gone (the default of `tarn doctor --stale-after`, and what `tarn serve` uses
/// at start: long enough for a large upload of another node to finish).
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// One thing found wrong (and, unless checking only, put right).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    /// `unregistered_table`, `stale_row_count`, `schema`, `unrecorded_load`, `missing_log`,
    /// `object_without_event`, `temporary_file`, `open_upload` or `staged_write`.
    pub kind: String,
    /// The table (`domain.layer.table`) or object (`domain/layer/key`) concerned.
    pub place: String,
    pub detail: String,
    pub fixed: bool,
}

/// What a check found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DoctorReport {
    pub tables_checked: usize,
    pub zones_checked: usize,
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    fn found(&mut self, kind: &str, place: impl Into<String>, detail: String, fixed: bool) {
        let f = Finding {
            kind: kind.into(),
            place: place.into(),
            detail,
            fixed,
        };
        tracing::info!(kind = f.kind, place = f.place, fixed, "{}", f.detail);
        self.findings.push(f);
    }
}

impl Lake {
    /// Checks catalog against Delta logs, objects against events, and zones for temporary files
    /// left by crashes; repairs what it finds unless `check_only`.
    pub async fn doctor(
        &self,
        check_only: bool,
        stale: Duration,
    ) -> Result<DoctorReport, LakeError> {
        let repair = !check_only;
        let mut report = DoctorReport::default();
        self.doctor_tables(repair, &mut report).await?;
        for zone in self.zones.all() {
            report.zones_checked += 1;
            let n = if repair {
                tarn_storage::notice(&self.zones, &self.meta, &zone, "").await?
            } else {
                tarn_storage::unnoticed(&self.zones, &self.meta, &zone, "").await?
            };
            if n > 0 {
                report.found(
                    "object_without_event",
                    zone.name(),
                    format!(
                        "{n} object(s) had no object.created event (a land or upload stopped between the object and its event, or a file put there by another tool){}",
                        if repair { "; recorded now" } else { "" }
                    ),
                    repair,
                );
            }
            if let Some(dir) = self.local_dir(&zone) {
                for f in stale_temporary_files(&dir, stale) {
                    let place = f.display().to_string();
                    let fixed = repair && std::fs::remove_file(&f).is_ok();
                    report.found(
                        "temporary_file",
                        place,
                        "a temporary file of a writer that stopped mid-write".into(),
                        fixed,
                    );
                }
            }
        }
        // Bodies a killed server was still receiving.
        for entry in std::fs::read_dir(self.incoming_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            // Untouched for `stale`: neither the folder nor the body in it written since.
            let touched = std::iter::once(entry.path())
                .chain(
                    std::fs::read_dir(entry.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.path()),
                )
                .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                .max();
            let old = touched
                .and_then(|m| std::time::SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age >= stale);
            if old {
                let path = entry.path();
                let fixed = repair && std::fs::remove_dir_all(&path).is_ok();
                report.found(
                    "temporary_file",
                    path.display().to_string(),
                    "an upload a stopped server was still receiving".into(),
                    fixed,
                );
            }
        }
        self.doctor_staged(repair, stale, &mut report).await?;
        for u in self.zones.stale_uploads(stale).await? {
            let fixed = repair && self.zones.abort_upload(&u).await.is_ok();
            report.found(
                "open_upload",
                u.key.clone(),
                format!(
                    "a multipart upload started {} and never finished (its writer stopped)",
                    u.initiated
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "at an unknown time".into())
                ),
                fixed,
            );
        }
        Ok(report)
    }

    /// Files a Glue ETL job staged (`_tarn/staging/EXECUTION/...`) that nothing will commit:
    /// its execution has ended (or is unknown) and none of them was written for `stale`. A
    /// committed step removes its staging itself; these are left by a Spark driver that kept
    /// writing after its attempt was given up, or a node killed between commit and removal.
    async fn doctor_staged(
        &self,
        repair: bool,
        stale: Duration,
        report: &mut DoctorReport,
    ) -> Result<(), LakeError> {
        use futures::TryStreamExt;
        use object_store::{ObjectStore, ObjectStoreExt};
        let store = self.zones.store();
        let root = object_store::path::Path::from("_tarn/staging");
        let found: Vec<object_store::ObjectMeta> = store
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|e| LakeError::Storage(e.into()))?;
        let mut by_execution: BTreeMap<String, Vec<object_store::ObjectMeta>> = BTreeMap::new();
        for m in found {
            let execution = m.location.parts().nth(2).map(|p| p.as_ref().to_string());
            if let Some(e) = execution {
                by_execution.entry(e).or_default().push(m);
            }
        }
        let now = chrono::Utc::now();
        for (execution, files) in by_execution {
            let newest = files.iter().map(|m| m.last_modified).max().unwrap_or(now);
            let quiet = (now - newest).to_std().unwrap_or_default() >= stale;
            let why = match self.meta.executions().execution(&execution).await? {
                Some(e) => match e.status.as_str() {
                    tarn_metadata::status::SUCCEEDED
                    | tarn_metadata::status::FAILED
                    | tarn_metadata::status::CANCELLED => format!(
                        "execution {execution} has ended ({}); an attempt it gave up kept writing",
                        e.status
                    ),
                    _ => continue,
                },
                None => format!("no execution {execution} is recorded"),
            };
            if !quiet {
                continue;
            }
            let mut fixed = repair;
            if repair {
                for m in &files {
                    if store.delete(&m.location).await.is_err() {
                        fixed = false;
                    }
                }
            }
            report.found(
                "staged_write",
                format!("_tarn/staging/{execution}"),
                format!(
                    "{} file(s) a Glue ETL job staged that were never committed ({why})",
                    files.len()
                ),
                fixed,
            );
        }
        Ok(())
    }

    /// Where `tarn serve` keeps request bodies while it receives them (`.tarn/incoming/` of
    /// the lake folder).
    pub fn incoming_dir(&self) -> std::path::PathBuf {
        self.config.root.join(".tarn").join("incoming")
    }

    /// The folder of a zone on a `file://` stage.
    fn local_dir(&self, zone: &tarn_storage::Zone) -> Option<std::path::PathBuf> {
        let url = self.zones.url_of(&zone.root());
        url.strip_prefix("file://").map(std::path::PathBuf::from)
    }

    async fn doctor_tables(
        &self,
        repair: bool,
        report: &mut DoctorReport,
    ) -> Result<(), LakeError> {
        let mut known = std::collections::BTreeSet::new();
        for (domain, layer, t) in self.visible_tables().await? {
            if t.format != "delta" {
                continue;
            }
            known.insert((t.database.clone(), t.name.clone()));
            report.tables_checked += 1;
            let a = TableAddress {
                domain,
                layer,
                table: t.name.clone(),
            };
            let place = a.to_string();
            let Some(dt) = tarn_tables::open(&self.stores, &t.location, None).await? else {
                let fixed = repair && self.meta.catalog().forget_table(&t.id).await.is_ok();
                report.found(
                    "missing_log",
                    place,
                    format!(
                        "the catalog lists {} row(s) at {}, but there is no Delta log there (deleted outside tarn); {}",
                        t.row_count.unwrap_or(0),
                        t.location,
                        if fixed { "the table was removed from the catalog" } else { "restore the folder, or run `tarn doctor` to remove it from the catalog" }
                    ),
                    fixed,
                );
                continue;
            };
            let version = dt.version().unwrap_or(0) as i64;
            let rows = tarn_tables::count_rows(&dt).await?;
            if t.row_count != Some(rows) || t.delta_version != Some(version) {
                if repair {
                    self.meta
                        .catalog()
                        .set_delta_state(&t.id, rows, version)
                        .await?;
                }
                report.found(
                    "stale_row_count",
                    place.clone(),
                    format!(
                        "the catalog said {} row(s) (Delta version {}); the log says {rows} at version {version}",
                        t.row_count.map(|r| r.to_string()).unwrap_or("unknown".into()),
                        t.delta_version.map(|r| r.to_string()).unwrap_or("unknown".into()),
                    ),
                    repair,
                );
            }
            let schema = dt
                .snapshot()
                .map_err(tarn_tables::TablesError::from)?
                .snapshot()
                .arrow_schema();
            let partition_by: Vec<String> =
                t.partition_keys.iter().map(|c| c.name.clone()).collect();
            let (columns, _) = crate::load::columns_of(&schema, &partition_by);
            if columns != t.columns {
                if repair {
                    self.register_delta(
                        &a,
                        &t.location,
                        &schema,
                        &partition_by,
                        t.parameters.clone(),
                        "doctor: schema read back from the Delta log",
                    )
                    .await?;
                }
                report.found(
                    "schema",
                    place.clone(),
                    "the catalog's columns differ from the Delta log's schema".into(),
                    repair,
                );
            }
            let missing = self.unrecorded_loads(&t.id, &dt, true).await?;
            for l in missing {
                if repair {
                    self.meta.catalog().record_load(&l).await?;
                }
                report.found(
                    "unrecorded_load",
                    place.clone(),
                    format!("load {} ({} from {}) committed Delta version {} but was not in the catalog", l.id, l.mode, l.source, l.table_version),
                    repair,
                );
            }
        }
        // Delta tables in trusted and service zones the catalog does not know (a process
        // killed after creating a table's first commit, before registering it).
        for zone in self.zones.all() {
            if zone.layer == "raw" {
                continue;
            }
            let mut tables = std::collections::BTreeSet::new();
            for o in self.zones.list(&zone, "").await? {
                if let Some((name, _)) = o.key.split_once("/_delta_log/") {
                    if !name.contains('/') {
                        tables.insert(name.to_string());
                    }
                }
            }
            for name in tables {
                if known.contains(&(zone.database(), name.clone())) {
                    continue;
                }
                let a = TableAddress {
                    domain: zone.domain.clone(),
                    layer: zone.layer.clone(),
                    table: name.clone(),
                };
                let url = self.table_url(&a);
                let Some(dt) = tarn_tables::open(&self.stores, &url, None).await? else {
                    continue;
                };
                report.tables_checked += 1;
                if repair {
                    self.register_found(&a, &url, &dt).await?;
                }
                report.found(
                    "unregistered_table",
                    a.to_string(),
                    format!(
                        "a Delta table at {url} (version {}) was not in the catalog",
                        dt.version().unwrap_or(0)
                    ),
                    repair,
                );
            }
        }
        Ok(())
    }

    /// Registers a Delta table found in a zone, with its row count and loads from its log.
    async fn register_found(
        &self,
        a: &TableAddress,
        url: &str,
        dt: &tarn_tables::DeltaTable,
    ) -> Result<(), LakeError> {
        let snapshot = dt.snapshot().map_err(tarn_tables::TablesError::from)?;
        let schema = snapshot.snapshot().arrow_schema();
        let partition_by = snapshot.metadata().partition_columns().to_vec();
        let mut parameters = BTreeMap::new();
        parameters.insert("classification".to_string(), "delta".to_string());
        if let Some(base) = a.table.strip_suffix("_rejected") {
            parameters.insert(
                "rejected_rows_of".into(),
                format!("{}.{}.{base}", a.domain, a.layer),
            );
        } else if let Some(c) = self.contract(a)? {
            parameters.insert("contract".into(), c.path.display().to_string());
        }
        let record = self
            .register_delta(
                a,
                url,
                &schema,
                &partition_by,
                parameters,
                "doctor: a Delta table found in its zone",
            )
            .await?;
        self.meta
            .catalog()
            .set_delta_state(
                &record.id,
                tarn_tables::count_rows(dt).await?,
                dt.version().unwrap_or(0) as i64,
            )
            .await?;
        for l in self.unrecorded_loads(&record.id, dt, true).await? {
            self.meta.catalog().record_load(&l).await?;
        }
        Ok(())
    }

    /// Records the loads a table's log has and the catalog lacks (after the newest recorded one,
    /// or all when `full`); answers how many.
    pub(crate) async fn sync_loads(
        &self,
        table_id: &str,
        dt: &tarn_tables::DeltaTable,
        full: bool,
    ) -> Result<usize, LakeError> {
        let missing = self.unrecorded_loads(table_id, dt, full).await?;
        for l in &missing {
            self.meta.catalog().record_load(l).await?;
        }
        Ok(missing.len())
    }

    async fn unrecorded_loads(
        &self,
        table_id: &str,
        dt: &tarn_tables::DeltaTable,
        full: bool,
    ) -> Result<Vec<LoadRecord>, LakeError> {
        let recorded = self.meta.catalog().loads(table_id).await?;
        let after = if full {
            None
        } else {
            recorded.iter().map(|l| l.table_version).max()
        };
        let ids: std::collections::HashSet<&str> = recorded.iter().map(|l| l.id.as_str()).collect();
        Ok(tarn_tables::loads_since(dt, after)
            .await?
            .into_iter()
            .filter(|c| !ids.contains(c.load_id.as_str()))
            .map(|c| LoadRecord {
                id: c.load_id,
                table_id: table_id.to_string(),
                mode: c.mode,
                source: c.source,
                rows_written: c.rows_written,
                rows_rejected: c.rows_rejected,
                table_version: c.version,
                created_at: c
                    .timestamp
                    .unwrap_or_else(|| chrono::Utc::now().to_rfc3339()),
            })
            .collect())
    }
}

/// Files under `dir` that writers make while writing and rename when done: object_store's
/// `KEY#N` and Delta's `_commit_*.json.tmp`, untouched for `stale`.
fn stale_temporary_files(dir: &std::path::Path, stale: Duration) -> Vec<std::path::PathBuf> {
    let now = std::time::SystemTime::now();
    walkdir_files(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let staging = name
                .rsplit_once('#')
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            let commit = name.starts_with("_commit_") && name.ends_with(".json.tmp");
            (staging || commit)
                && std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|age| age >= stale)
        })
        .collect()
}

fn walkdir_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}
