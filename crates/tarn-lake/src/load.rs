//! `tarn load`: a file or a raw-zone object into a Delta table, under its data contract, and
//! the catalog brought up to date in the same step.

use crate::{Lake, LakeError, TableAddress};
use arrow::datatypes::Schema;
use serde::Serialize;
use sha2::Digest;
use std::collections::BTreeMap;
use tarn_metadata::{Column, LoadRecord, TableDraft};
use tarn_tables::{Contract, Format, LoadMode, LoadRequest, Source};

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadArgs {
    /// `domain.layer.table` (a trusted or service table).
    pub table: String,
    /// A local file, or an object as `DOMAIN/LAYER/KEY`.
    pub source: String,
    pub format: Option<Format>,
    pub mode: LoadMode,
    /// Merge key columns (defaults to the contract's key).
    pub key: Vec<String>,
    /// Write even when the table already holds a load of these very bytes in this mode (a
    /// second copy on purpose); without it such a load is reported as already loaded.
    pub again: bool,
}

impl LoadArgs {
    /// Appends `source` to `table`, its format from its name or bytes, merging on nothing.
    pub fn append(table: impl Into<String>, source: impl Into<String>) -> Self {
        LoadArgs {
            table: table.into(),
            source: source.into(),
            format: None,
            mode: LoadMode::Append,
            key: vec![],
            again: false,
        }
    }
}

/// What a load did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LoadReport {
    pub table: String,
    pub load_id: String,
    pub mode: LoadMode,
    pub source: String,
    pub contract: Option<String>,
    pub table_version: i64,
    pub rows_written: usize,
    pub rows_rejected: usize,
    pub rejected_table: Option<String>,
    pub row_count: i64,
    pub ignored_columns: Vec<String>,
    /// Columns the table gained with this load (a table without a contract widens to the
    /// columns of what is loaded into it; `schema_evolution: refuse` refuses instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_columns: Vec<String>,
    /// The catalog's schema version after the load.
    pub catalog_version: i64,
    /// The table already had a commit of this load: the same bytes loaded in the same mode
    /// before (re-running a load after a crash never doubles it; `again` writes a second copy),
    /// or the same pipeline step (see [`Lake::load_once`]). Nothing was written again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub already_loaded: bool,
}

/// Catalog columns of an Arrow schema, partition keys apart.
pub(crate) fn columns_of(schema: &Schema, partition_by: &[String]) -> (Vec<Column>, Vec<Column>) {
    let mut cols = Vec::new();
    let mut keys = Vec::new();
    for f in schema.fields() {
        let c = Column {
            name: f.name().clone(),
            data_type: tarn_catalog::arrow_type_name(f.data_type()),
            nullable: f.is_nullable(),
        };
        if partition_by.contains(&c.name) {
            keys.push(c);
        } else {
            cols.push(c);
        }
    }
    (cols, keys)
}

impl Lake {
    /// The contract of a table, when `contracts/` declares one.
    pub fn contract(&self, a: &TableAddress) -> Result<Option<Contract>, LakeError> {
        // Only this table's contract matters to its loads: a broken file elsewhere in
        // contracts/ is that table's problem, not every table's.
        let found = tarn_tables::load_contract(&self.config.contracts_dir(), &a.to_string())?;
        if let Some(c) = &found {
            let mut p = c.table.split('.');
            let (d, l) = (p.next().unwrap_or(""), p.next().unwrap_or(""));
            self.config.check_zone(d, l).map_err(|why| {
                LakeError::Usage(format!("{}: `table: {}`: {why}", c.path.display(), c.table))
            })?;
        }
        Ok(found)
    }

    /// Checks that a table can be written by loads (not in the raw layer).
    pub(crate) fn writable(&self, a: &TableAddress) -> Result<(), LakeError> {
        if a.layer == "raw" {
            return Err(LakeError::Usage(format!(
                "{a} is in the raw layer, which holds files as landed; use `tarn land` for raw files and load into a trusted or service table"
            )));
        }
        Ok(())
    }

    /// Reads what `source` names: a local file (when `local` allows), or else an object
    /// `DOMAIN/LAYER/KEY`.
    async fn source_bytes(&self, source: &str, local: bool) -> Result<Vec<u8>, LakeError> {
        let path = std::path::Path::new(source);
        if local && path.is_file() {
            return tokio::fs::read(path).await.map_err(|e| LakeError::Io {
                path: source.into(),
                source: e,
            });
        }
        match self.zones.parse_target(source) {
            Ok((zone, key)) if !key.is_empty() => Ok(self.zones.read(&zone, &key).await?.to_vec()),
            _ => Err(LakeError::Usage(format!(
                "`{source}` is neither a local file nor an object DOMAIN/LAYER/KEY in a zone; check the path (see `tarn ls`)"
            ))),
        }
    }

    /// Loads a local file, or an object `DOMAIN/LAYER/KEY`, into a Delta table.
    pub async fn load(&self, args: &LoadArgs) -> Result<LoadReport, LakeError> {
        self.load_from(args, true, None, None).await
    }

    /// Loads a file that arrived by upload (kept in a temporary place): history, reports and
    /// errors name it `name`, never the place it is kept.
    pub async fn load_upload(&self, args: &LoadArgs, name: &str) -> Result<LoadReport, LakeError> {
        self.load_from(args, true, None, Some(name)).await
    }

    /// Loads like [`Lake::load`], at most once per `txn`: the Delta commits carry `txn` as an
    /// application transaction id, and a table that already has it is not written again. A
    /// pipeline step resumed after a crash passes its execution and step, so a retried load
    /// never duplicates rows.
    pub async fn load_once(&self, args: &LoadArgs, txn: &str) -> Result<LoadReport, LakeError> {
        self.load_from(args, true, Some(txn), None).await
    }

    /// Loads an object `DOMAIN/LAYER/KEY` into a Delta table; never reads local files (for
    /// requests from the network).
    pub async fn load_object(&self, args: &LoadArgs) -> Result<LoadReport, LakeError> {
        self.load_from(args, false, None, None).await
    }

    async fn load_from(
        &self,
        args: &LoadArgs,
        local: bool,
        txn: Option<&str>,
        shown: Option<&str>,
    ) -> Result<LoadReport, LakeError> {
        let a = self.address(&args.table)?;
        self.writable(&a)?;
        let shown = shown.unwrap_or(&args.source).to_string();
        let bytes = self.source_bytes(&args.source, local).await.map_err(|e| {
            match (e, shown != args.source) {
                (LakeError::Usage(_), true) => {
                    LakeError::Usage(format!("`{shown}` could not be read"))
                }
                (e, _) => e,
            }
        })?;
        let name = shown.clone();
        let format = args.format;
        let (source, digest) = tokio::task::spawn_blocking(move || {
            // The content hash (the load's identity) is taken beside the parsing, not after it.
            std::thread::scope(|scope| {
                let digest = scope.spawn(|| hex::encode(sha2::Sha256::digest(&bytes)));
                let source = Source::read(&name, &bytes, format);
                let digest = digest.join().expect("hashing bytes cannot panic");
                source.map(|s| (s, digest))
            })
        })
        .await
        .map_err(|e| LakeError::Usage(format!("reading the source failed: {e}")))??;
        self.load_source(args, source, &digest, txn, shown).await
    }

    /// Loads the Parquet files a job staged under `staged` (a folder of the lake's store, as
    /// `_tarn/staging/...`) into a Delta table as one commit, at most once per `txn`, under the
    /// table's contract (rejects, catalog versions and history as any load's). `shown` names
    /// the load in the table's history.
    pub async fn load_staged(
        &self,
        args: &LoadArgs,
        staged: &str,
        txn: &str,
        shown: &str,
    ) -> Result<LoadReport, LakeError> {
        use futures::TryStreamExt;
        use object_store::{ObjectStore, ObjectStoreExt};
        let a = self.address(&args.table)?;
        self.writable(&a)?;
        let store = self.zones.store().clone();
        let prefix = object_store::path::Path::from(staged.trim_matches('/'));
        let mut parts: Vec<object_store::path::Path> = store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| {
                LakeError::Usage(format!("listing the staged files under {staged}: {e}"))
            })?;
        parts.retain(|p| p.as_ref().ends_with(".parquet"));
        parts.sort();
        let mut batches = Vec::new();
        let mut digest = sha2::Sha256::new();
        for part in &parts {
            let got = store.get(part).await;
            let bytes = match got {
                Ok(g) => g.bytes().await,
                Err(e) => Err(e),
            }
            .map_err(|e| LakeError::Usage(format!("reading the staged file {part}: {e}")))?;
            digest.update(sha2::Sha256::digest(&bytes));
            let name = part.to_string();
            let read = tokio::task::spawn_blocking(move || {
                Source::read(&name, &bytes, Some(Format::Parquet))
            })
            .await
            .map_err(|e| LakeError::Usage(format!("reading {part} failed: {e}")))??;
            batches.extend(read.batches);
        }
        if batches.iter().all(|b| b.num_rows() == 0) && parts.is_empty() {
            return Err(LakeError::Usage(format!(
                "the job staged no file under {staged} for {a}; nothing was loaded"
            )));
        }
        let source = Source {
            batches,
            malformed: Vec::new(),
            format: Format::Parquet,
        };
        let digest = hex::encode(digest.finalize());
        self.load_source(args, source, &digest, Some(txn), shown.to_string())
            .await
    }

    /// Writes what was read (`source`, whose bytes hash to `digest`) as a load.
    async fn load_source(
        &self,
        args: &LoadArgs,
        source: Source,
        digest: &str,
        txn: Option<&str>,
        shown: String,
    ) -> Result<LoadReport, LakeError> {
        let a = self.address(&args.table)?;
        let contract = self.contract(&a)?;
        // Without a contract a table takes the columns of what is loaded into it: say which
        // it gains, or refuse when the lake says so, before anything is written.
        let mut added_columns = Vec::new();
        if contract.is_none() && args.mode != LoadMode::Overwrite {
            if let Some(existing) = self.meta.catalog().table(&a.database(), &a.table).await? {
                let known: Vec<&str> = existing
                    .columns
                    .iter()
                    .chain(existing.partition_keys.iter())
                    .map(|c| c.name.as_str())
                    .collect();
                added_columns = source
                    .columns()
                    .into_iter()
                    .filter(|c| !known.contains(&c.as_str()))
                    .collect();
            }
            if !added_columns.is_empty()
                && self.config.schema_evolution == tarn_config::SchemaEvolution::Refuse
            {
                return Err(LakeError::Usage(format!(
                    "`{shown}` has columns {a} lacks: {}; the lake sets `schema_evolution: refuse`, so nothing was loaded: declare the columns in a contract under contracts/, or load with --mode overwrite",
                    added_columns.join(", ")
                )));
            }
        }
        let key = if args.key.is_empty() {
            contract.as_ref().map(|c| c.key.clone()).unwrap_or_default()
        } else {
            args.key.clone()
        };
        if args.mode == LoadMode::Merge && key.is_empty() {
            return Err(LakeError::Usage(
                "--mode merge needs --key COLS (or a contract with `key:`)".into(),
            ));
        }
        let load_id = uuid::Uuid::now_v7().to_string();
        // The Delta transaction id that makes a load happen at most once: a pipeline step's own,
        // or else one derived from the bytes and the mode (the table is the log's own), so
        // re-running a load that may or may not have committed never writes it twice. An
        // overwrite is its own undo (running it again leaves the same table), so only a second
        // overwrite *after other writes* would be wrongly skipped: overwrites are never skipped.
        let txn = match (txn, args.again, args.mode) {
            (Some(t), _, _) => t.to_string(),
            (None, false, LoadMode::Append | LoadMode::Merge) => {
                format!("tarn.load:{}:{digest}", args.mode.as_str())
            }
            (None, _, _) => format!("tarn.load:{}:{digest}:{load_id}", args.mode.as_str()),
        };
        let table_url = self.table_url(&a);
        let rejected = TableAddress {
            table: format!("{}_rejected", a.table),
            ..a.clone()
        };
        let rejected_url = self.table_url(&rejected);
        if args.mode != LoadMode::Overwrite {
            self.check_log_kept(&a, &table_url).await?;
        }
        // A commit that lost a race the Delta log cannot settle by itself (two writers creating
        // the table, changing its schema, or merging into the same files at once) is tried
        // again from the start, reading the table anew; the transaction id keeps a second try
        // from writing twice whatever happened to the first.
        let outcome = tarn_tables::retry_conflicts(|| {
            tarn_tables::load(LoadRequest {
                stores: &self.stores,
                table_url: &table_url,
                rejected_url: &rejected_url,
                table_name: &a.table,
                mode: args.mode,
                key: key.clone(),
                contract: contract.as_ref(),
                source: &source,
                source_name: &shown,
                load_id: &load_id,
                txn: Some(&txn),
            })
        })
        .await?;

        let partition_by = contract
            .as_ref()
            .map(|c| c.partition_by.clone())
            .unwrap_or_default();
        let schema = outcome.schema.clone();
        let mut parameters = BTreeMap::new();
        parameters.insert("classification".to_string(), "delta".to_string());
        if let Some(c) = &contract {
            parameters.insert("contract".into(), c.path.display().to_string());
        }
        let record = self
            .register_delta(
                &a,
                &table_url,
                &schema,
                &partition_by,
                parameters,
                &format!("load {load_id} ({} from {})", args.mode.as_str(), shown),
            )
            .await?;
        self.meta
            .catalog()
            .set_delta_state(&record.id, outcome.row_count, outcome.table_version)
            .await?;
        if !outcome.already_loaded {
            self.meta
                .catalog()
                .record_load(&LoadRecord {
                    id: load_id.clone(),
                    table_id: record.id.clone(),
                    mode: args.mode.as_str().into(),
                    source: shown.clone(),
                    rows_written: outcome.rows_written as i64,
                    rows_rejected: outcome.rows_rejected as i64,
                    table_version: outcome.table_version,
                    created_at: chrono::Utc::now().to_rfc3339(),
                })
                .await?;
        }
        // Loads committed but never recorded (a process killed between its Delta commit and
        // this point) are read back from the log: after one, the whole log is read.
        if let Some(dt) = &outcome.table {
            self.sync_loads(&record.id, dt, outcome.already_loaded)
                .await?;
        }
        let mut rejected_table = None;
        if outcome.rejected_version.is_some() {
            if let Some(t) = tarn_tables::open(&self.stores, &rejected_url, None).await? {
                let schema = t
                    .snapshot()
                    .map_err(tarn_tables::TablesError::from)?
                    .snapshot()
                    .arrow_schema();
                let mut p = BTreeMap::new();
                p.insert("classification".to_string(), "delta".to_string());
                p.insert("rejected_rows_of".to_string(), a.to_string());
                let r = self
                    .register_delta(
                        &rejected,
                        &rejected_url,
                        &schema,
                        &[],
                        p,
                        &format!("load {load_id}: rejected rows"),
                    )
                    .await?;
                self.meta
                    .catalog()
                    .set_delta_state(
                        &r.id,
                        tarn_tables::count_rows(&t).await?,
                        t.version().unwrap_or(0) as i64,
                    )
                    .await?;
            }
            rejected_table = Some(rejected.to_string());
        }
        Ok(LoadReport {
            table: a.to_string(),
            load_id,
            mode: args.mode,
            source: shown.clone(),
            contract: contract.map(|c| c.path.display().to_string()),
            table_version: outcome.table_version,
            rows_written: outcome.rows_written,
            rows_rejected: outcome.rows_rejected,
            rejected_table,
            row_count: outcome.row_count,
            ignored_columns: outcome.ignored_columns,
            added_columns,
            catalog_version: record.version,
            already_loaded: outcome.already_loaded,
        })
    }

    /// Refuses to start a table anew at version 0 where the catalog knows rows whose Delta log
    /// is gone (the folder deleted outside tarn): that would hide the loss.
    async fn check_log_kept(&self, a: &TableAddress, url: &str) -> Result<(), LakeError> {
        let Some(t) = self.meta.catalog().table(&a.database(), &a.table).await? else {
            return Ok(());
        };
        if t.format != "delta" || t.row_count.unwrap_or(0) == 0 {
            return Ok(());
        }
        if tarn_tables::open(&self.stores, url, None).await?.is_none() {
            return Err(LakeError::Usage(format!(
                "the catalog lists {a} with {} row(s) at {url}, but its Delta log is gone (deleted outside tarn); nothing was loaded. Restore the folder, load with --mode overwrite to start the table anew, or run `tarn doctor` to remove it from the catalog",
                t.row_count.unwrap_or(0)
            )));
        }
        Ok(())
    }

    /// Registers (or evolves) a Delta table in the catalog.
    pub(crate) async fn register_delta(
        &self,
        a: &TableAddress,
        url: &str,
        schema: &Schema,
        partition_by: &[String],
        parameters: BTreeMap<String, String>,
        reason: &str,
    ) -> Result<tarn_metadata::TableRecord, LakeError> {
        let (columns, partition_keys) = columns_of(schema, partition_by);
        let (record, _) = self
            .meta
            .catalog()
            .put_table(
                &TableDraft {
                    database: a.database(),
                    name: a.table.clone(),
                    location: url.to_string(),
                    format: "delta".into(),
                    columns,
                    partition_keys,
                    parameters,
                },
                reason,
            )
            .await?;
        Ok(record)
    }
}
