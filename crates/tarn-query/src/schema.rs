//! The catalog as DataFusion sees it: one catalog per domain, one schema per layer, tables
//! opened lazily from their catalog record (Delta, or CSV/JSON/Parquet folders), and
//! `table@vN` for an older version of a Delta table.

use crate::cache::QueryCache;
use crate::cached::CachedTable;
use async_trait::async_trait;
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::catalog::{SchemaProvider, TableProvider};
use deltalake::datafusion::datasource::file_format::csv::CsvFormat;
use deltalake::datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use deltalake::datafusion::datasource::file_format::json::JsonFormat;
use deltalake::datafusion::datasource::file_format::parquet::ParquetFormat;
use deltalake::datafusion::datasource::file_format::FileFormat;
use deltalake::datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use deltalake::datafusion::error::{DataFusionError, Result};
use deltalake::datafusion::execution::runtime_env::RuntimeEnv;
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_metadata::TableRecord;

/// The tables of one zone (domain x layer).
#[derive(Debug)]
pub(crate) struct LayerSchema {
    pub tables: BTreeMap<String, TableRecord>,
    pub cache: Arc<QueryCache>,
    /// Where the lake's tables are stored.
    pub stores: tarn_tables::Stores,
    /// The engine's runtime: its object stores and its Parquet footer cache.
    pub runtime: Arc<RuntimeEnv>,
}

#[async_trait]
impl SchemaProvider for LayerSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let (base, version) = match name.rsplit_once("@v") {
            Some((b, v)) if v.parse::<i64>().is_ok() => (b, v.parse::<i64>().ok()),
            _ => (name, None),
        };
        let Some(record) = self.tables.get(base) else {
            return Ok(None);
        };
        if version.is_some() && record.format != "delta" {
            return Err(DataFusionError::Plan(format!(
                "table {name}: only Delta tables have versions; {base} is {}",
                record.format
            )));
        }
        provider(&self.stores, record, version, &self.cache, &self.runtime)
            .await
            .map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        let base = name.rsplit_once("@v").map(|(b, _)| b).unwrap_or(name);
        self.tables.contains_key(base)
    }
}

/// Opens a catalogued table for reading.
pub(crate) async fn provider(
    stores: &tarn_tables::Stores,
    record: &TableRecord,
    version: Option<i64>,
    cache: &QueryCache,
    runtime: &Arc<RuntimeEnv>,
) -> Result<Arc<dyn TableProvider>> {
    if record.format == "delta" {
        return delta_provider(stores, record, version, cache, runtime).await;
    }
    let p = &record.parameters;
    let gzip = p.get("compression").map(|c| c == "gzip").unwrap_or(false);
    let compression = if gzip {
        FileCompressionType::GZIP
    } else {
        FileCompressionType::UNCOMPRESSED
    };
    let format: Arc<dyn FileFormat> = match record.format.as_str() {
        "csv" => {
            Arc::new(
                CsvFormat::default()
                    .with_delimiter(
                        p.get("delimiter")
                            .and_then(|d| d.bytes().next())
                            .unwrap_or(b','),
                    )
                    .with_has_header(p.get("header").map(|h| h == "true").unwrap_or(true))
                    // Files written before a column was added lack it: read it as null.
                    .with_truncated_rows(true)
                    .with_file_compression_type(compression),
            )
        }
        "json" => Arc::new(JsonFormat::default().with_file_compression_type(compression)),
        "parquet" => Arc::new(ParquetFormat::default()),
        other => {
            return Err(DataFusionError::Plan(format!(
                "table {} has format {other}, which tarn cannot query",
                record.name
            )))
        }
    };
    let partition_cols: Vec<(String, DataType)> = record
        .partition_keys
        .iter()
        .map(|c| (c.name.clone(), partition_type(&c.data_type)))
        .collect();
    let options = ListingOptions::new(format)
        .with_file_extension("")
        .with_table_partition_cols(partition_cols);
    let typed =
        |c: &tarn_metadata::Column| tarn_tables::arrow_type(&c.data_type).unwrap_or(DataType::Utf8);
    let is_csv = record.format == "csv";
    // CSV is read as text and typed in a view: the reader does not apply null markers
    // itself, and `NA` must read as null, not fail the query.
    let schema = Schema::new(
        record
            .columns
            .iter()
            .map(|c| {
                Field::new(
                    &c.name,
                    if is_csv { DataType::Utf8 } else { typed(c) },
                    true,
                )
            })
            .collect::<Vec<_>>(),
    );
    if !has_files(stores, &record.location).await? {
        return Err(DataFusionError::Plan(format!(
            "table {} has no files at {}: they were moved or deleted since the crawl; land them again, or run `tarn crawl` to catalogue what is there",
            record.name, record.location
        )));
    }
    let url = ListingTableUrl::parse(&record.location)?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(Arc::new(schema));
    let listing: Arc<dyn TableProvider> = Arc::new(ListingTable::try_new(config)?);
    if !is_csv {
        return Ok(listing);
    }
    use deltalake::datafusion::logical_expr::{col, lit, when, Expr, ExprSchemable};
    use deltalake::datafusion::prelude::SessionContext;
    let markers: Vec<Expr> = NULL_MARKERS.iter().map(|m| lit(*m)).collect();
    let mut exprs: Vec<Expr> = Vec::new();
    for c in &record.columns {
        let column = col(format!("\"{}\"", c.name));
        let value = match typed(c) {
            DataType::Utf8 => column.clone(),
            t => Expr::TryCast(deltalake::datafusion::logical_expr::TryCast::new(
                Box::new(column.clone()),
                t,
            )),
        };
        exprs.push(
            when(
                column.clone().in_list(markers.clone(), false),
                lit(deltalake::datafusion::scalar::ScalarValue::Null)
                    .cast_to(&typed(c), &deltalake::datafusion::common::DFSchema::empty())?,
            )
            .otherwise(value)?
            .alias(&c.name),
        );
    }
    for p in &record.partition_keys {
        exprs.push(col(format!("\"{}\"", p.name)));
    }
    let plan = SessionContext::new()
        .read_table(listing)?
        .select(exprs)?
        .into_unoptimized_plan();
    Ok(Arc::new(
        deltalake::datafusion::catalog::view::ViewTable::new(plan, None),
    ))
}

/// Whether a catalogued location (a file, or a folder of files) holds anything to read: a
/// query over files that are gone fails saying so instead of answering no rows.
async fn has_files(stores: &tarn_tables::Stores, location: &str) -> Result<bool> {
    use futures::StreamExt;
    let url =
        url::Url::parse(location).map_err(|e| DataFusionError::Plan(format!("{location}: {e}")))?;
    if url.scheme() == "file" {
        let Ok(path) = url.to_file_path() else {
            return Ok(false);
        };
        return Ok(tokio::task::spawn_blocking(move || {
            if path.is_file() {
                return true;
            }
            walk_has_file(&path, 0)
        })
        .await
        .unwrap_or(false));
    }
    let Some(store) = stores.store_for(&url) else {
        return Ok(true); // not ours to check: the reader will say what it finds
    };
    let path =
        deltalake::logstore::object_store::path::Path::from(url.path().trim_start_matches('/'));
    // A location without a trailing `/` is a file (a root file, with or without an
    // extension); with one, a folder that must hold something.
    use deltalake::logstore::object_store::ObjectStoreExt;
    if !location.ends_with('/') && store.head(&path).await.is_ok() {
        return Ok(true);
    }
    let first = store.list(Some(&path)).next().await;
    Ok(matches!(first, Some(Ok(_))))
}

/// Whether a folder holds a file, looking a few levels deep (partition folders).
fn walk_has_file(dir: &std::path::Path, depth: usize) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_file() {
            return true;
        }
        if depth < 8 && p.is_dir() && walk_has_file(&p, depth + 1) {
            return true;
        }
    }
    false
}

use tarn_formats::NULL_MARKERS;

/// A Delta table at its latest version (or `version`), from the cache when it can be.
async fn delta_provider(
    stores: &tarn_tables::Stores,
    record: &TableRecord,
    version: Option<i64>,
    cache: &QueryCache,
    runtime: &Arc<RuntimeEnv>,
) -> Result<Arc<dyn TableProvider>> {
    let ext = |e: tarn_tables::TablesError| DataFusionError::External(Box::new(e));
    let delta = |e: deltalake::DeltaTableError| DataFusionError::External(Box::new(e));
    let loc = &record.location;
    let missing =
        || DataFusionError::Plan(format!("table {} has no Delta log at {loc}", record.name));
    let table = match (version, cache.table(loc)) {
        (None, Some(mut t)) => {
            // Whether anything was committed since the table was opened is one look-up of
            // the next commit's file; only then is the log listed to bring it up to date.
            let version = t.version().map(|v| v as i64).unwrap_or(-1);
            if tarn_tables::committed_after(stores, loc, version).await {
                tarn_tables::update(&mut t, loc).await.map_err(ext)?;
                cache.put_table(loc, t.clone());
            }
            t
        }
        (None, None) => {
            // A first look at the table: its log read straight, and its files scanned with
            // DataFusion's Parquet scan, unless this is a repeat whose rows are worth caching
            // (or the log is not the plain case): then delta-rs opens it, and keeps it
            // open for the next queries.
            if let Some(snapshot) = tarn_tables::snapshot(stores, loc).await {
                match cache.rows(loc, snapshot.version) {
                    (Some(rows), _) => return Ok(Arc::new(CachedTable(rows))),
                    (None, false) => {
                        if let Some(t) = crate::snapshot::SnapshotTable::new(snapshot) {
                            t.prefetch_footers(runtime, crate::pool::parallelism());
                            return Ok(Arc::new(t));
                        }
                    }
                    (None, true) => {}
                }
            }
            let t = tarn_tables::open(stores, loc, None)
                .await
                .map_err(ext)?
                .ok_or_else(missing)?;
            cache.put_table(loc, t.clone());
            t
        }
        (Some(v), _) => tarn_tables::open(stores, loc, Some(v))
            .await
            .map_err(ext)?
            .ok_or_else(missing)?,
    };
    let v = table.version().map(|v| v as i64).unwrap_or(-1);
    let rows = match cache.rows(loc, v) {
        (Some(rows), _) => Some(rows),
        (None, true) => {
            let provider = table.table_provider().await?;
            let ctx = deltalake::datafusion::prelude::SessionContext::new();
            table
                .update_datafusion_session(&ctx.state())
                .map_err(delta)?;
            // Read batch by batch, and given up as soon as the rows pass the fill limit: a
            // table bigger than the cache never sits in memory whole.
            // put_rows refuses (and remembers) a version past the limit.
            let mut rows = ctx.read_table(provider.clone())?.execute_stream().await?;
            let (mut batches, mut bytes) = (Vec::new(), 0usize);
            while let Some(b) = futures::StreamExt::next(&mut rows).await {
                let b = b?;
                bytes += b.get_array_memory_size();
                batches.push(b);
                if bytes > cache.fill_limit() {
                    break;
                }
            }
            drop(rows);
            let parts = crate::pool::parallelism();
            cache.put_rows(loc, v, provider.schema(), batches, parts)
        }
        (None, false) => None,
    };
    // Rows in the cache are read from memory: the table's scan is only made without them.
    match rows {
        Some(r) => Ok(Arc::new(CachedTable(r))),
        None => Ok(table.table_provider().await?),
    }
}

fn partition_type(t: &str) -> DataType {
    match t {
        "bigint" | "int" | "smallint" => DataType::Int64,
        _ => DataType::Utf8,
    }
}

/// Quotes `name@vN` so the SQL parser takes it as one identifier: `a.b.t@v3` -> `a.b."t@v3"`.
pub(crate) fn quote_versions(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
            i += 1;
            continue;
        }
        let is_ident = |c: char| c.is_alphanumeric() || c == '_';
        if c == '@'
            && i > 0
            && is_ident(chars[i - 1])
            && chars.get(i + 1) == Some(&'v')
            && chars
                .get(i + 2)
                .map(|c| c.is_ascii_digit())
                .unwrap_or(false)
        {
            let mut j = i + 2;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            // Walk back over the identifier already written.
            let ident_len = out.chars().rev().take_while(|c| is_ident(*c)).count();
            let cut = out.len()
                - out
                    .chars()
                    .rev()
                    .take(ident_len)
                    .map(char::len_utf8)
                    .sum::<usize>();
            let ident = out.split_off(cut);
            let version: String = chars[i + 2..j].iter().collect();
            out.push_str(&format!("\"{ident}@v{version}\""));
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::quote_versions;

    #[test]
    fn versions_are_quoted() {
        assert_eq!(
            quote_versions("select * from flights.trusted.flights@v1 where x = 'a@v1'"),
            "select * from flights.trusted.\"flights@v1\" where x = 'a@v1'"
        );
        assert_eq!(quote_versions("select 1"), "select 1");
    }
}
