//! A Delta table's latest version scanned from its log's file list
//! ([`tarn_tables::snapshot`]) with DataFusion's own Parquet scan: the first query of a table
//! plans without delta-rs's snapshot. The table reads as delta-rs's provider reads it: the
//! same schema (strings as views, string partition columns dictionary-encoded, partition
//! columns where the table's schema puts them), the same files, so the same rows.

use async_trait::async_trait;
use deltalake::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::common::stats::Precision;
use deltalake::datafusion::common::{ScalarValue, Statistics};
use deltalake::datafusion::datasource::file_format::parquet::ParquetFormat;
use deltalake::datafusion::datasource::file_format::FileFormat;
use deltalake::datafusion::datasource::listing::PartitionedFile;
use deltalake::datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use deltalake::datafusion::datasource::table_schema::TableSchema;
use deltalake::datafusion::error::Result;
use deltalake::datafusion::execution::object_store::ObjectStoreUrl;
use deltalake::datafusion::execution::runtime_env::RuntimeEnv;
use deltalake::datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use deltalake::datafusion::physical_plan::empty::EmptyExec;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::logstore::object_store::ObjectMeta;
use std::sync::Arc;

/// A Delta table version read as its list of Parquet files.
#[derive(Debug)]
pub(crate) struct SnapshotTable {
    /// The table's columns in the table's order.
    schema: SchemaRef,
    /// The columns the files hold (every column but the partition columns).
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    /// For each of the table's columns, its place in the scan's columns (the files' columns,
    /// then the partition columns).
    place: Vec<usize>,
    store_url: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
    rows: Option<usize>,
}

impl SnapshotTable {
    /// The table `snapshot` describes; `None` when its schema or a partition value is one
    /// this reader does not take (the caller then opens the table with delta-rs).
    pub(crate) fn new(snapshot: tarn_tables::Snapshot) -> Option<SnapshotTable> {
        let logical: Schema = (&snapshot.schema).try_into_arrow().ok()?;
        let partitions = &snapshot.partition_columns;
        let fields: Vec<FieldRef> = logical
            .fields()
            .iter()
            .map(|f| {
                if partitions.contains(f.name()) {
                    partition_field(f)
                } else {
                    view_field(f)
                }
            })
            .collect();
        let file_fields: Vec<FieldRef> = fields
            .iter()
            .filter(|f| !partitions.contains(f.name()))
            .cloned()
            .collect();
        let partition_fields = partitions
            .iter()
            .map(|p| fields.iter().find(|f| f.name() == p).cloned())
            .collect::<Option<Vec<_>>>()?;
        let place = fields
            .iter()
            .map(|f| match partitions.iter().position(|p| p == f.name()) {
                Some(i) => file_fields.len() + i,
                None => file_fields
                    .iter()
                    .position(|g| g.name() == f.name())
                    .unwrap_or_default(),
            })
            .collect();
        let mut rows = Some(0usize);
        let mut files = Vec::with_capacity(snapshot.files.len());
        for f in snapshot.files {
            let values = partition_fields
                .iter()
                .map(|field| {
                    let text = f.partition_values.get(field.name()).cloned().flatten();
                    partition_value(field.data_type(), text.as_deref())
                })
                .collect::<Option<Vec<_>>>()?;
            rows = rows.zip(f.rows).map(|(a, b)| a + b as usize);
            files.push(
                PartitionedFile::new_from_meta(ObjectMeta {
                    location: f.location,
                    last_modified: Default::default(),
                    size: f.size,
                    e_tag: None,
                    version: None,
                })
                .with_partition_values(values),
            );
        }
        Some(SnapshotTable {
            schema: Arc::new(Schema::new(fields)),
            file_schema: Arc::new(Schema::new(file_fields)),
            partition_fields,
            place,
            store_url: ObjectStoreUrl::parse(&snapshot.store_url).ok()?,
            files,
            rows,
        })
    }
}

/// A data column as delta-rs's scan gives it: strings and binaries as views, within nested
/// columns too.
fn view_field(f: &FieldRef) -> FieldRef {
    let t = match f.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(view_field).collect()),
        DataType::List(inner) => DataType::List(view_field(inner)),
        DataType::LargeList(inner) => DataType::LargeList(view_field(inner)),
        DataType::ListView(inner) => DataType::ListView(view_field(inner)),
        _ => return f.clone(),
    };
    Arc::new(f.as_ref().clone().with_data_type(t))
}

/// A partition column as delta-rs's scan gives it: strings and binaries dictionary-encoded.
fn partition_field(f: &FieldRef) -> FieldRef {
    match f.data_type() {
        t @ (DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary) => {
            Arc::new(f.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::UInt16),
                Box::new(t.clone()),
            )))
        }
        _ => f.clone(),
    }
}

/// A partition value, written as the log writes it, in the column's type.
fn partition_value(t: &DataType, text: Option<&str>) -> Option<ScalarValue> {
    let (inner, dictionary) = match t {
        DataType::Dictionary(_, inner) => (inner.as_ref(), true),
        t => (t, false),
    };
    let value = match (inner, text) {
        (t, None) => ScalarValue::try_from(t).ok()?,
        (DataType::Utf8, Some(s)) => ScalarValue::Utf8(Some(s.to_string())),
        (DataType::LargeUtf8, Some(s)) => ScalarValue::LargeUtf8(Some(s.to_string())),
        (DataType::Boolean, Some(s)) => ScalarValue::Boolean(Some(s.parse().ok()?)),
        (
            t @ (DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Date32),
            Some(s),
        ) => ScalarValue::try_from_string(s.to_string(), t).ok()?,
        _ => return None,
    };
    Some(if dictionary {
        ScalarValue::Dictionary(Box::new(DataType::UInt16), Box::new(value))
    } else {
        value
    })
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: the filters reach the Parquet scan, which skips row groups (and files, by
        // their partition values) that cannot match; they still run on the rows read.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(self.statistics_of(&self.schema))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projected: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        if self.files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(Arc::new(
                self.schema.project(&projected)?,
            ))));
        }
        let format = ParquetFormat::default().with_options(state.default_table_options().parquet);
        let source = format.file_source(
            TableSchema::builder(self.file_schema.clone())
                .with_table_partition_cols(self.partition_fields.clone())
                .build(),
        );
        let groups = FileGroup::new(self.files.clone())
            .split_files(state.config().target_partitions().max(1));
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(groups)
            .with_statistics(self.scan_statistics_in_scan_order())
            .with_projection_indices(Some(projected.iter().map(|c| self.place[*c]).collect()))?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

impl SnapshotTable {
    /// Starts reading, in the background, the footer of the first file each of `parts` scan
    /// partitions will open, into `runtime`'s Parquet metadata cache (the one the scan reads
    /// footers through). Planning takes longer than a footer read and runs on one core while
    /// another would wait, so the scan's partitions find the footers they open with in the
    /// cache, and a file split between partitions by byte ranges has its footer read once,
    /// not once per part. A footer still on its way when a partition opens its file is read
    /// again by the partition, and a failed read is left for the partition to report.
    pub(crate) fn prefetch_footers(&self, runtime: &Arc<RuntimeEnv>, parts: usize) {
        use deltalake::datafusion::config::TableParquetOptions;
        use deltalake::datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
        let (Ok(store), Ok(handle)) = (
            runtime.object_store(&self.store_url),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let cache = runtime.cache_manager.get_file_metadata_cache();
        let hint = TableParquetOptions::default().global.metadata_size_hint;
        let mut firsts: Vec<ObjectMeta> = FileGroup::new(self.files.clone())
            .split_files(parts.max(1))
            .iter()
            .filter_map(|g| g.files().first().map(|f| f.object_meta.clone()))
            .collect();
        firsts.dedup_by(|a, b| a.location == b.location);
        for meta in firsts {
            let (store, cache, on) = (store.clone(), cache.clone(), handle.clone());
            // A blocking-pool thread: a task spawned from the planning task would wait in
            // its worker's own slot until planning yields.
            handle.spawn_blocking(move || {
                let read = DFParquetMetadata::new(store.as_ref(), &meta)
                    .with_file_metadata_cache(Some(cache))
                    .with_metadata_size_hint(hint);
                let _ = on.block_on(read.fetch_metadata());
            });
        }
    }

    /// Statistics over `schema`'s columns: the row count every file's statistics add up to
    /// (exact: no file has deleted rows), nothing on the columns.
    fn statistics_of(&self, schema: &Schema) -> Statistics {
        let mut s = Statistics::new_unknown(schema);
        if let Some(rows) = self.rows {
            s.num_rows = Precision::Exact(rows);
        }
        s
    }

    /// [`SnapshotTable::statistics_of`] in the scan's column order (the files' columns, then
    /// the partition columns).
    fn scan_statistics_in_scan_order(&self) -> Statistics {
        let fields: Vec<FieldRef> = self
            .file_schema
            .fields()
            .iter()
            .chain(&self.partition_fields)
            .cloned()
            .collect();
        self.statistics_of(&Schema::new(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::SnapshotTable;
    use deltalake::arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};
    use deltalake::arrow::record_batch::RecordBatch;
    use deltalake::arrow::util::pretty::pretty_format_batches;
    use deltalake::datafusion::catalog::TableProvider;
    use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
    use deltalake::kernel::transaction::CommitProperties;
    use deltalake::{DeltaTable, DeltaTableBuilder};
    use std::sync::Arc;

    fn batch(from: i64, n: i64, extra: bool) -> RecordBatch {
        let mut fields = vec![
            Field::new("id", DataType::Int64, false),
            Field::new("region", DataType::Utf8, true),
            Field::new("bucket", DataType::Int32, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("note", DataType::Utf8, true),
        ];
        let ids: Vec<i64> = (from..from + n).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from_iter(ids.iter().map(|i| match i % 4 {
                0 => None,
                1 => Some("north east"),
                2 => Some("süd/west"),
                _ => Some("a=b%c"),
            }))),
            Arc::new(Int32Array::from_iter(
                ids.iter().map(|i| (i % 5 != 0).then_some((i % 3) as i32)),
            )),
            Arc::new(Float64Array::from_iter(
                ids.iter().map(|i| (i % 7 != 0).then_some(*i as f64 / 4.0)),
            )),
            Arc::new(StringArray::from_iter(
                ids.iter().map(|i| (i % 6 != 0).then(|| format!("n{i}"))),
            )),
        ];
        if extra {
            fields.push(Field::new("extra", DataType::Int64, true));
            columns.push(Arc::new(Int64Array::from_iter_values(
                ids.iter().map(|i| i * 10),
            )));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    async fn reopen(url: &url::Url) -> DeltaTable {
        DeltaTableBuilder::from_url(url.clone())
            .unwrap()
            .load()
            .await
            .unwrap()
    }

    /// What delta-rs's provider and the log-read table answer to `queries`, side by side.
    async fn answers(table: &DeltaTable, url: &str, queries: &[&str]) -> (String, String) {
        let ours = SnapshotTable::new(
            tarn_tables::snapshot(&tarn_tables::Stores::local(), url)
                .await
                .expect("a plain log reads"),
        )
        .expect("a plain schema reads");
        let theirs = table.table_provider().await.unwrap();
        assert_eq!(ours.schema(), theirs.schema(), "the schema delta-rs gives");
        let run = |provider: Arc<dyn TableProvider>| async move {
            let ctx =
                SessionContext::new_with_config(SessionConfig::new().with_target_partitions(3));
            ctx.register_table("t", provider).unwrap();
            let mut out = String::new();
            for q in queries {
                let b = ctx.sql(q).await.unwrap().collect().await.unwrap();
                out += &format!("{q}\n{}\n", pretty_format_batches(&b).unwrap());
            }
            out
        };
        (run(Arc::new(ours)).await, run(theirs).await)
    }

    /// A partitioned table (a string partition with nulls, spaces, `/`, `=` and `%` in its
    /// values, and an integer one), through appends, a column added by a later commit, and a
    /// delete that rewrites files: the table read from its log answers every query as
    /// delta-rs's own provider does, with its schema. A table with a checkpoint is left to
    /// delta-rs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_table_read_from_its_log_answers_as_delta_rs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::create_dir_all(&path).unwrap();
        let url = url::Url::from_directory_path(&path).unwrap();
        let location = url.as_str().trim_end_matches('/').to_string();
        let queries = [
            "SELECT * FROM t ORDER BY id",
            "SELECT region, bucket, count(*), sum(amount), max(note) FROM t GROUP BY region, bucket ORDER BY region, bucket",
            "SELECT id, note FROM t WHERE region = 'süd/west' AND bucket = 2 ORDER BY id",
            "SELECT count(*) FROM t WHERE region IS NULL",
            "SELECT count(*) FROM t",
            "SELECT id FROM t WHERE id BETWEEN 150 AND 160 ORDER BY id",
        ];
        let table = DeltaTableBuilder::from_url(url.clone())
            .unwrap()
            .build()
            .unwrap()
            .write(vec![batch(0, 100, false)])
            .with_partition_columns(vec!["region".to_string(), "bucket".to_string()])
            .await
            .unwrap();
        let (ours, theirs) = answers(&table, &location, &queries).await;
        assert_eq!(ours, theirs);
        assert!(
            ours.contains("süd/west") && ours.contains("a=b%c"),
            "{ours}"
        );

        let table = reopen(&url)
            .await
            .write(vec![batch(100, 100, true)])
            .with_schema_mode(deltalake::operations::write::SchemaMode::Merge)
            .await
            .unwrap();
        let (ours, theirs) = answers(&table, &location, &queries).await;
        assert_eq!(ours, theirs);
        assert!(ours.contains("| extra"), "{ours}");

        let (table, _) = reopen(&url)
            .await
            .delete()
            .with_predicate("id % 2 = 0")
            .with_commit_properties(CommitProperties::default())
            .await
            .unwrap();
        let (ours, theirs) = answers(&table, &location, &queries).await;
        assert_eq!(ours, theirs);
        assert!(
            ours.contains("| 151 |") && !ours.contains("| 150 |"),
            "{ours}"
        );

        deltalake::checkpoints::create_checkpoint(&table, None)
            .await
            .unwrap();
        assert!(
            tarn_tables::snapshot(&tarn_tables::Stores::local(), &location)
                .await
                .is_none(),
            "a checkpointed log is left to delta-rs"
        );
    }

    /// Local files, counting the reads that end at a file's end (its footer).
    #[derive(Debug)]
    struct Footers {
        inner: Arc<dyn ObjectStore>,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl std::fmt::Display for Footers {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Footers({})", self.inner)
        }
    }

    use deltalake::logstore::object_store::{
        path::Path, CopyOptions, GetOptions, GetRange, GetResult, ListResult, MultipartUpload,
        ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
        Result as StoreResult,
    };
    use futures::stream::BoxStream;

    #[async_trait::async_trait]
    impl ObjectStore for Footers {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> StoreResult<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> StoreResult<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(&self, location: &Path, options: GetOptions) -> StoreResult<GetResult> {
            let size = std::fs::metadata(format!("/{location}"))
                .map(|m| m.len())
                .ok();
            let tail = match &options.range {
                Some(GetRange::Suffix(_)) => true,
                Some(GetRange::Bounded(r)) => Some(r.end) == size,
                _ => false,
            };
            if tail && location.as_ref().ends_with(".parquet") {
                self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, StoreResult<Path>>,
        ) -> BoxStream<'static, StoreResult<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, StoreResult<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> StoreResult<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> StoreResult<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// The footer of a table's file, split between two partitions by byte ranges, is read
    /// once, ahead of the scan, into the cache the scan opens its file through: the scan's
    /// partitions read no footer of their own, and answer as delta-rs does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scan_finds_its_footer_read_ahead() {
        use deltalake::datafusion::execution::runtime_env::RuntimeEnv;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::create_dir_all(&path).unwrap();
        let url = url::Url::from_directory_path(&path).unwrap();
        let location = url.as_str().trim_end_matches('/').to_string();
        let table = DeltaTableBuilder::from_url(url.clone())
            .unwrap()
            .build()
            .unwrap()
            .write(vec![batch(0, 200_000, false)])
            .await
            .unwrap();
        let ours = SnapshotTable::new(
            tarn_tables::snapshot(&tarn_tables::Stores::local(), &location)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ours.files.len(), 1);
        let footers = Arc::new(Footers {
            inner: Arc::new(deltalake::logstore::object_store::local::LocalFileSystem::new()),
            reads: Default::default(),
        });
        let runtime = Arc::new(RuntimeEnv::default());
        runtime.register_object_store(&url::Url::parse("file://").unwrap(), footers.clone());
        ours.prefetch_footers(&runtime, 2);
        let file = ours.files[0].object_meta.location.clone();
        let cache = runtime.cache_manager.get_file_metadata_cache();
        let started = std::time::Instant::now();
        while cache.get(&file).is_none() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "the footer is never read ahead into the scan's cache"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(footers.reads.load(std::sync::atomic::Ordering::SeqCst), 1);

        let mut config = SessionConfig::new().with_target_partitions(2);
        config.options_mut().optimizer.repartition_file_min_size = 0;
        let ctx = SessionContext::new_with_state(
            deltalake::datafusion::execution::session_state::SessionStateBuilder::new()
                .with_config(config)
                .with_runtime_env(runtime)
                .with_default_features()
                .build(),
        );
        ctx.register_table("t", Arc::new(ours)).unwrap();
        let sql = "SELECT sum(amount), count(note), max(region) FROM t";
        let plan = ctx
            .sql(&format!("EXPLAIN {sql}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let plan = pretty_format_batches(&plan).unwrap().to_string();
        assert!(plan.contains("2 groups"), "the file is split: {plan}");
        let got = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let theirs = SessionContext::new();
        theirs
            .register_table("t", table.table_provider().await.unwrap())
            .unwrap();
        let want = theirs.sql(sql).await.unwrap().collect().await.unwrap();
        assert_eq!(
            pretty_format_batches(&got).unwrap().to_string(),
            pretty_format_batches(&want).unwrap().to_string()
        );
        assert_eq!(
            footers.reads.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the partitions read the footer again"
        );
    }
}
