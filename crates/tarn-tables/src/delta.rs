//! Delta tables: loading (append, overwrite, merge on a key), rejected rows beside the table,
//! history, and opening an older version.

use crate::conform::{conform_against, Conformed};
use crate::contract::Contract;
use crate::source::Source;
use crate::stores::Stores;
use crate::TablesError;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::prelude::{col, SessionContext};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use serde::Serialize;
use std::collections::HashMap;
use url::Url;

/// How a load writes into its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    Append,
    Overwrite,
    /// Upsert on a key: matching rows are updated, others inserted.
    Merge,
}

impl std::str::FromStr for LoadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "append" => Ok(LoadMode::Append),
            "overwrite" => Ok(LoadMode::Overwrite),
            "merge" => Ok(LoadMode::Merge),
            o => Err(format!(
                "unknown mode `{o}`; use append, overwrite or merge"
            )),
        }
    }
}

impl LoadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadMode::Append => "append",
            LoadMode::Overwrite => "overwrite",
            LoadMode::Merge => "merge",
        }
    }
}

/// What to load where.
#[derive(Debug)]
pub struct LoadRequest<'a> {
    /// Where the lake's tables are stored.
    pub stores: &'a Stores,
    /// The table's location (a URL).
    pub table_url: &'a str,
    /// The location of `TABLE_rejected`.
    pub rejected_url: &'a str,
    pub table_name: &'a str,
    pub mode: LoadMode,
    /// Merge key (from `--key`, or the contract's key).
    pub key: Vec<String>,
    pub contract: Option<&'a Contract>,
    pub source: &'a Source,
    pub source_name: &'a str,
    pub load_id: &'a str,
    /// A Delta application transaction id: when the table already has a commit with it, the
    /// load is not written again (a pipeline step resumed after a crash).
    pub txn: Option<&'a str>,
}

/// What a load did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LoadOutcome {
    pub load_id: String,
    pub table_version: i64,
    pub rows_written: usize,
    pub rows_rejected: usize,
    pub rejected_version: Option<i64>,
    /// Rows in the table after the load.
    pub row_count: i64,
    pub ignored_columns: Vec<String>,
    /// The table already had this load's transaction id: nothing was written again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub already_loaded: bool,
    #[serde(skip, default = "empty_schema")]
    pub schema: SchemaRef,
    /// The table as the load left it (for reading its log without opening it again).
    #[serde(skip)]
    pub table: Option<DeltaTable>,
}

fn empty_schema() -> SchemaRef {
    std::sync::Arc::new(deltalake::arrow::datatypes::Schema::empty())
}

/// A new, empty table handle at `table_url` (its folder created when local).
async fn create_at(stores: &Stores, table_url: &str) -> Result<DeltaTable, TablesError> {
    if let Some(path) = table_url.strip_prefix("file://") {
        std::fs::create_dir_all(path).map_err(|source| TablesError::Folder {
            path: path.to_string(),
            source,
        })?;
    }
    // Called where `open` found no table: building without loading spares the kernel a probe
    // it would log as an error.
    Ok(stores.builder(url(table_url)?)?.build()?)
}

fn url(s: &str) -> Result<Url, TablesError> {
    let s = if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    };
    Url::parse(&s).map_err(|e| TablesError::Location(format!("{s}: {e}")))
}

/// Opens a Delta table at its latest version (or `version`); `None` when none exists there.
pub async fn open(
    stores: &Stores,
    table_url: &str,
    version: Option<i64>,
) -> Result<Option<DeltaTable>, TablesError> {
    // A local folder without a log is no table yet; asking the kernel would log an error.
    if let Some(path) = table_url.strip_prefix("file://") {
        if !std::path::Path::new(path).join("_delta_log").is_dir() {
            return Ok(None);
        }
    }
    let mut b = stores.builder(url(table_url)?)?;
    if let Some(v) = version {
        b = b.with_version(v.max(0) as u64);
    }
    match b.load().await {
        Ok(t) => Ok(Some(t)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) if e.to_string().contains("does not exist") && version.is_none() => Ok(None),
        Err(_) if version.is_some() => Err(TablesError::NoSuchVersion {
            table: table_url.to_string(),
            version: version.unwrap_or_default(),
        }),
        Err(DeltaTableError::InvalidVersion(v)) => Err(TablesError::NoSuchVersion {
            table: table_url.to_string(),
            version: v as i64,
        }),
        Err(source) => Err(unreadable(table_url, source)),
    }
}

/// Brings a table opened by [`open`] up to its latest version (the commits since, read from
/// its log); a log it cannot read is named as [`open`] names it.
pub async fn update(table: &mut DeltaTable, table_url: &str) -> Result<(), TablesError> {
    table
        .update_incremental(None)
        .await
        .map_err(|source| unreadable(table_url, source))
}

/// The error of a table whose log does not read: the table, the commit file that is not JSON
/// when one is not, and the cause without its backtrace.
fn unreadable(table_url: &str, source: DeltaTableError) -> TablesError {
    TablesError::Open {
        table: match broken_commit(table_url) {
            Some(file) => format!("{table_url} (its commit {file} is not valid JSON: cut short?)"),
            None => table_url.to_string(),
        },
        source: Box::new(source),
    }
}

/// The commit metadata of a load: enough to rebuild the catalog's record of it from the Delta
/// log alone (see [`loads_since`]).
/// The commit file of a local table's log that does not read as JSON lines, if one does not.
fn broken_commit(table_url: &str) -> Option<String> {
    let log = std::path::Path::new(table_url.strip_prefix("file://")?).join("_delta_log");
    let mut files: Vec<_> = std::fs::read_dir(&log)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.into_iter().rev().find_map(|f| {
        let text = std::fs::read_to_string(&f).ok()?;
        text.lines()
            .any(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
            .then(|| f.display().to_string())
    })
}

fn commit_props(
    req: &LoadRequest<'_>,
    rows_written: usize,
    rows_rejected: usize,
) -> CommitProperties {
    let mut meta = HashMap::new();
    meta.insert("tarn.load_id".to_string(), serde_json::json!(req.load_id));
    meta.insert(
        "tarn.source".to_string(),
        serde_json::json!(req.source_name),
    );
    meta.insert(
        "tarn.mode".to_string(),
        serde_json::json!(req.mode.as_str()),
    );
    meta.insert(
        "tarn.rows_written".to_string(),
        serde_json::json!(rows_written),
    );
    meta.insert(
        "tarn.rows_rejected".to_string(),
        serde_json::json!(rows_rejected),
    );
    let props = CommitProperties::default()
        .with_metadata(meta)
        .with_max_retries(20);
    match req.txn {
        Some(app) => props.with_application_transaction(Transaction::new(app, 1)),
        None => props,
    }
}

/// A table's first commit must not be retried by delta-rs: on losing the race for version 0 it
/// would commit its own `metaData` (another table id) at version 1 without any conflict check.
/// Failing instead lets the caller open the table the winner created and append to it.
fn first_commit(t: &DeltaTable, props: CommitProperties) -> CommitProperties {
    if t.version().is_none() {
        props.with_max_retries(0)
    } else {
        props
    }
}

/// Runs `attempt` again (with backoff and jitter) while it loses commit races Delta's log cannot
/// settle by itself; a lost commit wrote nothing, so trying again cannot write twice.
pub async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, TablesError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, TablesError>>,
{
    let mut tries: u64 = 0;
    loop {
        match attempt().await {
            Err(e) if tries < 12 && e.is_commit_conflict() => {
                tries += 1;
                let jitter = (uuid::Uuid::new_v4().as_u128() % 100) as u64;
                let wait = (25u64 << tries.min(5)) + jitter;
                tracing::debug!(tries, wait, "commit lost a race; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            }
            other => return other,
        }
    }
}

/// Whether `t` has a commit with application transaction `app`.
async fn has_txn(t: &DeltaTable, app: Option<&str>) -> Result<bool, TablesError> {
    let Some(app) = app else { return Ok(false) };
    if t.version().is_none() {
        return Ok(false); // a table not yet written has no transactions
    }
    let version = t
        .snapshot()?
        .transaction_version(t.log_store().as_ref(), app)
        .await?;
    Ok(version.is_some())
}

/// Loads a source into a Delta table, writing contract breaks to `TABLE_rejected`.
///
/// The rejected rows are committed first, then the table; each Delta commit is atomic, so a
/// crash leaves the table at its previous version. Both commits carry the load id.
pub async fn load(req: LoadRequest<'_>) -> Result<LoadOutcome, TablesError> {
    let existing = open(req.stores, req.table_url, None).await?;
    if let Some(t) = &existing {
        if has_txn(t, req.txn).await? {
            return Ok(LoadOutcome {
                load_id: req.load_id.to_string(),
                table_version: t.version().unwrap_or(0) as i64,
                rows_written: 0,
                rows_rejected: 0,
                rejected_version: None,
                row_count: count_rows(t).await?,
                ignored_columns: vec![],
                already_loaded: true,
                schema: t.snapshot()?.snapshot().arrow_schema(),
                table: Some(t.clone()),
            });
        }
    }
    let existing_schema = existing
        .as_ref()
        .map(|t| t.snapshot().map(|s| s.snapshot().arrow_schema()))
        .transpose()?;
    let existing_keys = match (&existing, req.contract, req.mode) {
        (Some(t), Some(c), LoadMode::Append) if !c.key.is_empty() => key_values(t, &c.key).await?,
        _ => Vec::new(),
    };
    let conformed: Conformed = {
        let src = req.source;
        let contract = req.contract;
        let schema = existing_schema.clone();
        let id = req.load_id.to_string();
        // Casting and checking is CPU work; keep it off the async workers.
        tokio::task::block_in_place(|| {
            conform_against(src, contract, schema.as_deref(), &existing_keys, &id)
        })?
    };
    let rows_written: usize = conformed.good.iter().map(|b| b.num_rows()).sum();

    let mut rejected_version = None;
    if !conformed.rejected.is_empty() {
        let t = match open(req.stores, req.rejected_url, None).await? {
            Some(t) => t,
            None => create_at(req.stores, req.rejected_url).await?,
        };
        if has_txn(&t, req.txn).await? {
            // Written before a crash; the table's own commit was not.
            rejected_version = t.version().map(|v| v as i64);
        } else {
            let props = first_commit(&t, commit_props(&req, 0, conformed.rejected_rows));
            let t = t
                .write(conformed.rejected.clone())
                .with_save_mode(SaveMode::Append)
                .with_schema_mode(SchemaMode::Merge)
                .with_table_name(format!("{}_rejected", req.table_name))
                .with_commit_properties(props)
                .await?;
            rejected_version = t.version().map(|v| v as i64);
        }
    }

    let partition_by = req
        .contract
        .map(|c| c.partition_by.clone())
        .unwrap_or_default();
    let table = match (req.mode, existing) {
        (LoadMode::Merge, Some(t)) => merge(t, &conformed, &req).await?,
        (mode, existing) => {
            let t = match existing {
                Some(t) => t,
                None => create_at(req.stores, req.table_url).await?,
            };
            write_to(
                t,
                conformed.good.clone(),
                &conformed.schema,
                req.table_name,
                mode == LoadMode::Overwrite,
                &partition_by,
                commit_props(&req, rows_written, conformed.rejected_rows),
            )
            .await?
        }
    };
    let row_count = count_rows(&table).await?;
    Ok(LoadOutcome {
        load_id: req.load_id.to_string(),
        table_version: table.version().unwrap_or(0) as i64,
        rows_written,
        rows_rejected: conformed.rejected_rows,
        rejected_version,
        row_count,
        ignored_columns: conformed.ignored_columns.clone(),
        already_loaded: false,
        schema: table.snapshot()?.snapshot().arrow_schema(),
        table: Some(table),
    })
}

/// Writes batches into a table (created when missing), appending or replacing its content.
pub async fn write_batches(
    stores: &Stores,
    table_url: &str,
    table_name: &str,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    overwrite: bool,
) -> Result<LoadOutcome, TablesError> {
    let rows_written = batches.iter().map(|b| b.num_rows()).sum();
    let table = retry_conflicts(|| async {
        let t = match open(stores, table_url, None).await? {
            Some(t) => t,
            None => create_at(stores, table_url).await?,
        };
        write_to(
            t,
            batches.clone(),
            schema,
            table_name,
            overwrite,
            &[],
            CommitProperties::default().with_max_retries(20),
        )
        .await
    })
    .await?;
    Ok(LoadOutcome {
        load_id: String::new(),
        table_version: table.version().unwrap_or(0) as i64,
        rows_written,
        rows_rejected: 0,
        rejected_version: None,
        row_count: count_rows(&table).await?,
        ignored_columns: vec![],
        already_loaded: false,
        schema: table.snapshot()?.snapshot().arrow_schema(),
        table: None,
    })
}

/// Appends batches to a table (created when missing) exactly once: the commit carries
/// application transaction `app` at `version`, and a version the table already holds for `app`
/// is not written again (answers `None`; else the table's new version, its row count and its
/// schema after the write). A writer numbers its commits 1, 2, 3 ... so a retry after an
/// unclear failure never duplicates rows.
///
/// New columns merge into the table's schema; a column the table already has keeps its type,
/// and a value that does not cast to it is written as null (the caller keeps the raw value
/// when it matters, as the inference log keeps its JSON).
pub async fn append_once(
    stores: &Stores,
    table_url: &str,
    table_name: &str,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    app: &str,
    version: i64,
) -> Result<Option<(i64, i64, SchemaRef)>, TablesError> {
    retry_conflicts(|| async {
        let t = match open(stores, table_url, None).await? {
            Some(t) => t,
            None => create_at(stores, table_url).await?,
        };
        if t.version().is_some() {
            let done = t
                .snapshot()?
                .transaction_version(t.log_store().as_ref(), app)
                .await?;
            if done.is_some_and(|v| v >= version) {
                return Ok(None);
            }
        }
        let props = CommitProperties::default()
            .with_max_retries(20)
            .with_application_transaction(Transaction::new(app, version));
        let batches = match t.version() {
            Some(_) => to_table_types(&batches, &t.snapshot()?.snapshot().arrow_schema())?,
            None => batches.clone(),
        };
        let t = write_to(t, batches, schema, table_name, false, &[], props).await?;
        let rows = count_rows(&t).await?;
        let written = t.snapshot()?.snapshot().arrow_schema();
        Ok(Some((t.version().unwrap_or(0) as i64, rows, written)))
    })
    .await
}

async fn write_to(
    t: DeltaTable,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    table_name: &str,
    overwrite: bool,
    partition_by: &[String],
    props: CommitProperties,
) -> Result<DeltaTable, TablesError> {
    let fresh = t.version().is_none();
    let (save, schema_mode) = modes(overwrite);
    let props = first_commit(&t, props);
    let mut w = t
        .write(with_schema(batches, schema))
        .with_save_mode(save)
        .with_table_name(table_name)
        .with_writer_properties(writer_properties())
        .with_commit_properties(props);
    // A new table takes the batches' schema as it is (merging into an empty schema would put
    // the columns in name order).
    if !fresh {
        w = w.with_schema_mode(schema_mode);
    }
    if fresh && !partition_by.is_empty() {
        w = w.with_partition_columns(partition_by.to_vec());
    }
    Ok(w.await?)
}

/// Replacing a table's content replaces its schema too; appending merges new columns in.
fn modes(overwrite: bool) -> (SaveMode, SchemaMode) {
    if overwrite {
        (SaveMode::Overwrite, SchemaMode::Overwrite)
    } else {
        (SaveMode::Append, SchemaMode::Merge)
    }
}

/// Parquet settings of the files tarn writes: row groups small enough that a scan of one
/// file spreads over every core, snappy for fast decoding.
fn writer_properties() -> deltalake::parquet::file::properties::WriterProperties {
    use deltalake::parquet::basic::Compression;
    deltalake::parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(64 * 1024))
        .set_compression(Compression::SNAPPY)
        .build()
}

/// Casts every column the table already has to the table's type (unsafe values become null).
fn to_table_types(
    batches: &[RecordBatch],
    table: &SchemaRef,
) -> Result<Vec<RecordBatch>, TablesError> {
    use deltalake::arrow::compute::{cast_with_options, CastOptions};
    use deltalake::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    batches
        .iter()
        .map(|b| {
            let schema = b.schema();
            if schema.fields().iter().all(|f| {
                table
                    .field_with_name(f.name())
                    .map_or(true, |t| t.data_type() == f.data_type())
            }) {
                return Ok(b.clone());
            }
            let mut fields = Vec::with_capacity(b.num_columns());
            let mut columns = Vec::with_capacity(b.num_columns());
            for (f, c) in schema.fields().iter().zip(b.columns()) {
                match table.field_with_name(f.name()) {
                    Ok(t) if t.data_type() != f.data_type() => {
                        let cast =
                            cast_with_options(c, t.data_type(), &options).unwrap_or_else(|_| {
                                deltalake::arrow::array::new_null_array(t.data_type(), c.len())
                            });
                        fields.push(Field::new(f.name(), t.data_type().clone(), true));
                        columns.push(cast);
                    }
                    _ => {
                        fields.push(f.as_ref().clone());
                        columns.push(c.clone());
                    }
                }
            }
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(TablesError::from)
        })
        .collect()
}

/// Delta needs at least one batch to know the schema of an empty write.
fn with_schema(mut batches: Vec<RecordBatch>, schema: &SchemaRef) -> Vec<RecordBatch> {
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema.clone()));
    }
    batches
}

async fn merge(
    table: DeltaTable,
    c: &Conformed,
    req: &LoadRequest<'_>,
) -> Result<DeltaTable, TablesError> {
    if req.key.is_empty() {
        return Err(TablesError::Usage(
            "--mode merge needs --key COLS (or a contract with `key:`)".into(),
        ));
    }
    for k in &req.key {
        if c.schema.field_with_name(k).is_err() {
            return Err(TablesError::Usage(format!(
                "merge key `{k}` is not a column of the source"
            )));
        }
    }
    let ctx = SessionContext::new();
    let df = ctx.read_batches(with_schema(c.good.clone(), &c.schema))?;
    let predicate = req
        .key
        .iter()
        .map(|k| format!("target.\"{k}\" = source.\"{k}\""))
        .collect::<Vec<_>>()
        .join(" AND ");
    let cols: Vec<String> = c.schema.fields().iter().map(|f| f.name().clone()).collect();
    let (t, _metrics) = table
        .merge(df, predicate)
        .with_source_alias("source")
        .with_target_alias("target")
        .with_commit_properties(commit_props(
            req,
            c.good.iter().map(|b| b.num_rows()).sum(),
            c.rejected_rows,
        ))
        .when_matched_update(|u| {
            cols.iter().fold(u, |u, c| {
                u.update(format!("\"{c}\""), col(format!("source.\"{c}\"")))
            })
        })?
        .when_not_matched_insert(|i| {
            cols.iter().fold(i, |i, c| {
                i.set(format!("\"{c}\""), col(format!("source.\"{c}\"")))
            })
        })?
        .await?;
    Ok(t)
}

/// The key columns of every row of the table, in key order.
async fn key_values(table: &DeltaTable, key: &[String]) -> Result<Vec<RecordBatch>, TablesError> {
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let df = ctx.read_table(table.table_provider().await?)?;
    let cols: Vec<&str> = key.iter().map(String::as_str).collect();
    Ok(df.select_columns(&cols)?.collect().await?)
}

/// One data file of a Delta table's version: its path under the table, its size, and its
/// partition values (`None` for a null one).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DataFile {
    pub path: String,
    pub size: i64,
    pub rows: Option<i64>,
    pub partition: std::collections::BTreeMap<String, Option<String>>,
}

/// The data files of the version `table` is at: what a reader of that version reads, and
/// nothing a later commit added.
pub fn data_files(table: &DeltaTable) -> Result<Vec<DataFile>, TablesError> {
    let state = table.snapshot()?;
    Ok(state
        .log_data()
        .iter()
        .map(|f| {
            let partition = f
                .partition_values()
                .map(|s| {
                    s.fields()
                        .iter()
                        .zip(s.values())
                        .map(|(field, v)| {
                            use deltalake::kernel::scalars::ScalarExt;
                            // As the log writes a partition value (no quotes, no encoding).
                            let text = (!v.is_null()).then(|| ScalarExt::serialize(v));
                            (field.name().to_string(), text)
                        })
                        .collect()
                })
                .unwrap_or_default();
            DataFile {
                path: f.path().to_string(),
                size: f.size(),
                rows: f.num_records().map(|n| n as i64),
                partition,
            }
        })
        .collect())
}

/// Rows in the table's current version.
pub async fn count_rows(table: &DeltaTable) -> Result<i64, TablesError> {
    // Every file's `numRecords` statistic, as the log holds it: no data is read (an
    // inference log is appended to on every flush, and a scan per append grew with the table).
    if let Ok(state) = table.snapshot() {
        let counted: Option<i64> = state
            .log_data()
            .iter()
            .map(|f| f.num_records().map(|n| n as i64))
            .sum();
        if let Some(n) = counted {
            return Ok(n);
        }
    }
    // A file written without statistics: count by reading.
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    let df = ctx.read_table(provider)?;
    Ok(df.count().await? as i64)
}

/// A load as its Delta commit records it (the commit metadata tarn writes with every load).
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedLoad {
    pub version: i64,
    pub load_id: String,
    pub source: String,
    pub mode: String,
    pub rows_written: i64,
    pub rows_rejected: i64,
    pub timestamp: Option<String>,
}

/// The loads committed to a table after version `after` (every one when `None`), oldest first.
pub async fn loads_since(
    table: &DeltaTable,
    after: Option<i64>,
) -> Result<Vec<CommittedLoad>, TablesError> {
    let latest = table.version().map(|v| v as i64).unwrap_or(-1);
    let newer = match after {
        Some(a) if a >= latest => return Ok(Vec::new()),
        Some(a) => Some((latest - a) as usize),
        None => None,
    };
    let commits: Vec<_> = table.history(newer).try_collect().await?;
    let mut out: Vec<CommittedLoad> = commits
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let text = |k: &str| c.info.get(k).and_then(|v| v.as_str()).map(String::from);
            let number = |k: &str| c.info.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
            Some(CommittedLoad {
                version: c
                    .read_version
                    .map(|v| v as i64 + 1)
                    .unwrap_or(latest - i as i64),
                load_id: text("tarn.load_id")?,
                source: text("tarn.source").unwrap_or_default(),
                mode: text("tarn.mode").unwrap_or_else(|| {
                    match c.operation.as_deref() {
                        Some("MERGE") => "merge",
                        _ => "append",
                    }
                    .into()
                }),
                rows_written: number("tarn.rows_written"),
                rows_rejected: number("tarn.rows_rejected"),
                timestamp: c
                    .timestamp
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|t| t.to_rfc3339()),
            })
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// One commit of a table.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub version: i64,
    pub timestamp: Option<String>,
    pub operation: String,
    pub parameters: serde_json::Value,
    pub load_id: Option<String>,
}

/// Every commit of a table, newest first.
pub async fn history(stores: &Stores, table_url: &str) -> Result<Vec<HistoryEntry>, TablesError> {
    let Some(table) = open(stores, table_url, None).await? else {
        return Err(TablesError::NotDelta(table_url.to_string()));
    };
    let latest = table.version().unwrap_or(0) as i64;
    let commits: Vec<_> = table.history(None).try_collect().await?;
    Ok(commits
        .into_iter()
        .enumerate()
        .map(|(i, c)| HistoryEntry {
            version: c
                .read_version
                .map(|v| v as i64 + 1)
                .unwrap_or(latest - i as i64),
            timestamp: c
                .timestamp
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339()),
            operation: c.operation.unwrap_or_default(),
            parameters: serde_json::to_value(c.operation_parameters.unwrap_or_default())
                .unwrap_or_default(),
            load_id: c
                .info
                .get("tarn.load_id")
                .and_then(|v| v.as_str())
                .map(String::from),
        })
        .collect())
}

/// Batches to write as they come (a stream of already-computed results).
/// Batches to write as they come; an error (its text) stops the write, which commits nothing.
pub type BatchSource = futures::stream::BoxStream<'static, Result<RecordBatch, String>>;

/// One partition that hands out its stream once.
struct Once {
    schema: SchemaRef,
    stream: std::sync::Mutex<Option<BatchSource>>,
}

impl std::fmt::Debug for Once {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Once")
    }
}

impl deltalake::datafusion::physical_plan::streaming::PartitionStream for Once {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(
        &self,
        _ctx: std::sync::Arc<deltalake::datafusion::execution::TaskContext>,
    ) -> deltalake::datafusion::execution::SendableRecordBatchStream {
        use deltalake::datafusion::error::DataFusionError;
        use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        use futures::StreamExt;
        let stream = self.stream.lock().expect("stream lock").take();
        let stream = stream
            .map(|s| s.map(|r| r.map_err(DataFusionError::Execution)).boxed())
            .unwrap_or_else(|| {
                Box::pin(futures::stream::once(async {
                    Err(DataFusionError::Execution(
                        "the batches were already written".into(),
                    ))
                }))
            });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// Writes a stream of batches into a table (created when missing), replacing (or appending
/// to) its content in one commit; batches are written as they come, so memory stays bounded
/// whatever the stream's length.
pub async fn write_stream(
    stores: &Stores,
    table_url: &str,
    table_name: &str,
    schema: &SchemaRef,
    stream: BatchSource,
    overwrite: bool,
) -> Result<LoadOutcome, TablesError> {
    use deltalake::datafusion::catalog::streaming::StreamingTable;
    let t = match open(stores, table_url, None).await? {
        Some(t) => t,
        None => create_at(stores, table_url).await?,
    };
    let source = StreamingTable::try_new(
        schema.clone(),
        vec![std::sync::Arc::new(Once {
            schema: schema.clone(),
            stream: std::sync::Mutex::new(Some(stream)),
        })],
    )?;
    let ctx = SessionContext::new();
    let plan = ctx
        .read_table(std::sync::Arc::new(source))?
        .logical_plan()
        .clone();
    let (save, schema_mode) = modes(overwrite);
    let props = first_commit(&t, CommitProperties::default().with_max_retries(20));
    let table = t
        .write(Vec::new())
        .with_input_plan(plan)
        .with_save_mode(save)
        .with_schema_mode(schema_mode)
        .with_table_name(table_name)
        .with_writer_properties(writer_properties())
        .with_commit_properties(props)
        .await?;
    let row_count = count_rows(&table).await?;
    Ok(LoadOutcome {
        load_id: String::new(),
        table_version: table.version().unwrap_or(0) as i64,
        rows_written: row_count as usize,
        rows_rejected: 0,
        rejected_version: None,
        row_count,
        ignored_columns: vec![],
        already_loaded: false,
        schema: table.snapshot()?.snapshot().arrow_schema(),
        table: None,
    })
}

/// How a stream's batch goes into its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamWrite {
    /// Added to what the table holds.
    Append,
    /// Upserted on these key columns (a batch holds each key once).
    Merge(Vec<String>),
}

/// What a transactional commit left: the table's version, its rows, its schema.
#[derive(Debug, Clone)]
pub struct Committed {
    pub version: i64,
    pub rows: i64,
    pub schema: SchemaRef,
}

/// Commits `batches` into a table (created when missing) with application transaction `app` at
/// `version`, so whoever reads the log later knows this commit belongs to that transaction
/// (a Singer tap's flush). New columns merge into the table's schema; a column the table has
/// keeps its type.
#[allow(clippy::too_many_arguments)]
pub async fn commit_txn(
    stores: &Stores,
    table_url: &str,
    table_name: &str,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    write: &StreamWrite,
    app: &str,
    version: i64,
    metadata: &serde_json::Map<String, serde_json::Value>,
) -> Result<Committed, TablesError> {
    retry_conflicts(|| async {
        let t = match open(stores, table_url, None).await? {
            Some(t) => t,
            None => create_at(stores, table_url).await?,
        };
        let props = CommitProperties::default()
            .with_max_retries(20)
            .with_metadata(metadata.clone())
            .with_application_transaction(Transaction::new(app, version));
        let t = match (write, t.version()) {
            (StreamWrite::Merge(keys), Some(_)) => {
                let table_schema = t.snapshot()?.snapshot().arrow_schema();
                let batches = to_table_types(&batches, &table_schema)?;
                merge_batches(t, batches, schema, keys, props).await?
            }
            (_, Some(_)) => {
                let batches = to_table_types(&batches, &t.snapshot()?.snapshot().arrow_schema())?;
                write_to(t, batches, schema, table_name, false, &[], props).await?
            }
            (_, None) => {
                write_to(t, batches.clone(), schema, table_name, false, &[], props).await?
            }
        };
        Ok(Committed {
            version: t.version().unwrap_or(0) as i64,
            rows: count_rows(&t).await?,
            schema: t.snapshot()?.snapshot().arrow_schema(),
        })
    })
    .await
}

async fn merge_batches(
    table: DeltaTable,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    keys: &[String],
    props: CommitProperties,
) -> Result<DeltaTable, TablesError> {
    let batch_schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| schema.clone());
    for k in keys {
        if batch_schema.field_with_name(k).is_err() {
            return Err(TablesError::Usage(format!(
                "key property `{k}` is not a property of the stream's schema"
            )));
        }
    }
    let ctx = SessionContext::new();
    let df = ctx.read_batches(with_schema(batches, &batch_schema))?;
    let predicate = keys
        .iter()
        .map(|k| format!("target.\"{k}\" = source.\"{k}\""))
        .collect::<Vec<_>>()
        .join(" AND ");
    let cols: Vec<String> = batch_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let (t, _metrics) = table
        .merge(df, predicate)
        .with_source_alias("source")
        .with_target_alias("target")
        .with_merge_schema(true)
        .with_writer_properties(writer_properties())
        .with_commit_properties(props)
        .when_matched_update(|u| {
            cols.iter().fold(u, |u, c| {
                u.update(format!("\"{c}\""), col(format!("source.\"{c}\"")))
            })
        })?
        .when_not_matched_insert(|i| {
            cols.iter().fold(i, |i, c| {
                i.set(format!("\"{c}\""), col(format!("source.\"{c}\"")))
            })
        })?
        .await?;
    Ok(t)
}

/// The version of application transaction `app` the table's log holds (none when the table
/// does not exist or never saw `app`), and the table's own version.
pub async fn txn_version(
    stores: &Stores,
    table_url: &str,
    app: &str,
) -> Result<(Option<i64>, Option<i64>), TablesError> {
    let Some(t) = open(stores, table_url, None).await? else {
        return Ok((None, None));
    };
    let Some(v) = t.version() else {
        return Ok((None, None));
    };
    let txn = t
        .snapshot()?
        .transaction_version(t.log_store().as_ref(), app)
        .await?;
    Ok((txn, Some(v as i64)))
}

/// Puts the table back as it was at `version` (a new commit), or empties it when `version` is
/// `None` (the table did not exist then). The commit carries `metadata`.
pub async fn roll_back(
    stores: &Stores,
    table_url: &str,
    version: Option<i64>,
    metadata: &serde_json::Map<String, serde_json::Value>,
) -> Result<Option<i64>, TablesError> {
    let Some(t) = open(stores, table_url, None).await? else {
        return Ok(None);
    };
    let props = CommitProperties::default().with_metadata(metadata.clone());
    let t = match version {
        Some(v) => {
            let (t, _) = t
                .restore()
                .with_version_to_restore(v.max(0) as u64)
                .with_commit_properties(props)
                .await?;
            t
        }
        None => {
            let (t, _) = t.delete().with_commit_properties(props).await?;
            t
        }
    };
    Ok(t.version().map(|v| v as i64))
}

/// Deletes the rows `predicate` (SQL over the table's columns) holds for, in one commit with
/// application transaction `app` at `version`; answers the table's new version.
pub async fn delete_where(
    stores: &Stores,
    table_url: &str,
    predicate: &str,
    app: &str,
    version: i64,
) -> Result<Option<i64>, TablesError> {
    let Some(t) = open(stores, table_url, None).await? else {
        return Ok(None);
    };
    if t.version().is_none() {
        return Ok(None);
    }
    let props =
        CommitProperties::default().with_application_transaction(Transaction::new(app, version));
    let (t, _) = t
        .delete()
        .with_predicate(predicate.to_string())
        .with_commit_properties(props)
        .await?;
    Ok(t.version().map(|v| v as i64))
}
