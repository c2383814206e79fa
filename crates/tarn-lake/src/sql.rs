//! `tarn sql`: queries over every catalogued table, and `--into` to materialise a result as a
//! Delta table in a service zone.

use crate::{Lake, LakeError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_query::{Engine, QueryOptions, QueryResult, Visible};

/// What `--into` wrote.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SqlInto {
    pub table: String,
    pub table_version: i64,
    pub row_count: i64,
}

impl Lake {
    /// The SQL engine over the current catalog (kept while the catalog is unchanged).
    pub async fn engine(&self) -> Result<Arc<Engine>, LakeError> {
        let mut current = self.engine.lock().await;
        if let Some((s, e)) = current.as_ref() {
            if *s == self.meta.catalog().catalog_stamp().await? {
                return Ok(e.clone());
            }
        }
        // The stamp from the very list the engine is made of: one query fewer for the first
        // query of a lake, and the stamp cannot be newer than the tables it keys.
        let (tables, stamp) = self.visible_tables_stamped().await?;
        let engine = Arc::new(Engine::with_limits(
            tables
                .into_iter()
                .map(|(domain, layer, record)| Visible {
                    domain,
                    layer,
                    record,
                })
                .collect(),
            self.query_cache.clone(),
            self.query_limits.clone(),
            self.stores.clone(),
        ));
        *current = Some((stamp, engine.clone()));
        Ok(engine)
    }

    /// Runs a read-only query.
    pub async fn sql(&self, query: &str, opts: &QueryOptions) -> Result<QueryResult, LakeError> {
        Ok(self.engine().await?.sql(query, opts).await?)
    }

    /// Runs a query and streams its rows in batches.
    pub async fn sql_stream(
        &self,
        query: &str,
    ) -> Result<(arrow::datatypes::SchemaRef, tarn_query::BatchStream), LakeError> {
        Ok(self.engine().await?.sql_stream(query).await?)
    }

    /// Runs a query and streams its rows in batches, within `opts` (the stream ends with a
    /// timeout error when the query runs past its time).
    pub async fn sql_stream_with(
        &self,
        query: &str,
        opts: &QueryOptions,
    ) -> Result<(arrow::datatypes::SchemaRef, tarn_query::BatchStream), LakeError> {
        Ok(self.engine().await?.sql_stream_with(query, opts).await?)
    }

    /// Runs a query and answers its rows written as `format`, as bytes that stream as the
    /// query produces batches: nothing holds the whole result. Dropping the stream drops the
    /// query; a failure midway ends the stream with an error (a body broken off, which tells
    /// the client it is incomplete).
    pub async fn sql_bytes(
        &self,
        query: &str,
        opts: &QueryOptions,
        format: tarn_query::OutputFormat,
    ) -> Result<futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>, LakeError> {
        use futures::StreamExt;
        let (schema, rows) = self.sql_stream_with(query, opts).await?;
        let buf = Shared::default();
        let writer = tarn_query::ResultWriter::new(format, &schema, buf.clone())?;
        let chunks = futures::stream::unfold(
            (rows, Some(writer), buf),
            |(mut rows, writer, buf)| async move {
                let mut writer = writer?;
                let step = match rows.next().await {
                    Some(batch) => batch.and_then(|b| writer.write(&b)).map(|_| Some(writer)),
                    None => writer.finish(false).map(|_| None),
                };
                let chunk = step.as_ref().map(|_| buf.take()).map_err(|e| {
                    tracing::warn!("a streamed SQL answer broke off: {e}");
                    std::io::Error::other(e.to_string())
                });
                let writer = step.ok().flatten();
                Some((chunk, (rows, writer, buf)))
            },
        );
        Ok(chunks.boxed())
    }

    /// `target` as a curated table of a service zone, or why it cannot be one.
    fn curated(&self, target: &str, flag: &str) -> Result<crate::TableAddress, LakeError> {
        let a = self.address(target)?;
        let curated = self.config.layers.iter().any(|l| l == "service") && a.layer == "service"
            || !self.config.layers.iter().any(|l| l == "service")
                && Some(&a.layer) == self.config.layers.last();
        if !curated {
            return Err(LakeError::Usage(format!(
                "{flag} writes curated tables in a service zone; use {}.service.{}",
                a.domain, a.table
            )));
        }
        Ok(a)
    }

    /// Runs a query and writes its result as the Delta table `target` (a service table),
    /// replacing what it held; each run is a new version. The rows stream from the query into
    /// the table.
    pub async fn sql_into(&self, query: &str, target: &str) -> Result<SqlInto, LakeError> {
        self.sql_into_with(query, target, &QueryOptions::default())
            .await
    }

    /// [`Lake::sql_into`] with a query's options (its timeout and the tables it may read; a
    /// row limit does not apply).
    pub async fn sql_into_with(
        &self,
        query: &str,
        target: &str,
        opts: &QueryOptions,
    ) -> Result<SqlInto, LakeError> {
        use futures::StreamExt;
        self.curated(target, "--into")?;
        let opts = QueryOptions {
            row_limit: None,
            ..opts.clone()
        };
        let (schema, rows) = self.sql_stream_with(query, &opts).await?;
        let mut p = BTreeMap::new();
        p.insert("query".to_string(), query.to_string());
        let failed: Arc<std::sync::Mutex<Option<tarn_query::QueryError>>> = Arc::default();
        let slot = failed.clone();
        let rows = rows
            .map(move |r| {
                r.map_err(|e| {
                    let text = e.to_string();
                    *slot.lock().expect("error slot") = Some(e);
                    text
                })
            })
            .boxed();
        let written = self
            .write_service_stream(
                target,
                "--into",
                &schema,
                rows,
                p,
                "materialised by tarn sql --into",
            )
            .await;
        let query_error = failed.lock().expect("error slot").take();
        match (written, query_error) {
            (Err(_), Some(query_error)) => Err(query_error.into()),
            (written, _) => written,
        }
    }

    /// Writes a stream of batches as the Delta table `target` (a service table), replacing
    /// what it held in one commit, and catalogs it with `parameters`.
    pub async fn write_service_stream(
        &self,
        target: &str,
        flag: &str,
        schema: &arrow::datatypes::SchemaRef,
        stream: tarn_tables::BatchSource,
        parameters: BTreeMap<String, String>,
        note: &str,
    ) -> Result<SqlInto, LakeError> {
        let a = self.curated(target, flag)?;
        let url = self.table_url(&a);
        let out =
            tarn_tables::write_stream(&self.stores, &url, &a.table, schema, stream, true).await?;
        let mut p = parameters;
        p.insert("classification".to_string(), "delta".to_string());
        let record = self
            .register_delta(&a, &url, &out.schema, &[], p, note)
            .await?;
        // The count as read at the version just written: `tarn doctor` finds them agreeing.
        self.meta
            .catalog()
            .set_delta_state(&record.id, out.row_count, out.table_version)
            .await?;
        Ok(SqlInto {
            table: a.to_string(),
            table_version: out.table_version,
            row_count: out.row_count,
        })
    }

    /// Appends batches to the service table `target` exactly once per (`app`, `version`)
    /// (see `tarn_tables::append_once`) and catalogs it; answers whether rows were written.
    /// Endpoints log their inferences through it.
    pub async fn append_service(
        &self,
        target: &str,
        batches: Vec<arrow::record_batch::RecordBatch>,
        schema: &arrow::datatypes::SchemaRef,
        app: &str,
        version: i64,
        note: &str,
    ) -> Result<bool, LakeError> {
        let a = self.curated(target, "the inference log")?;
        let url = self.table_url(&a);
        let written =
            tarn_tables::append_once(&self.stores, &url, &a.table, batches, schema, app, version)
                .await?;
        let Some((table_version, rows, written)) = written else {
            return Ok(false);
        };
        // A table that gained columns gets a new catalog version with them.
        let id = match self.meta.catalog().table(&a.database(), &a.table).await? {
            Some(t)
                if written
                    .fields()
                    .iter()
                    .all(|f| t.columns.iter().any(|c| &c.name == f.name())) =>
            {
                t.id
            }
            found => {
                let why = match found {
                    Some(_) => "the schema gained columns",
                    None => note,
                };
                let mut p = found.map(|t| t.parameters).unwrap_or_default();
                p.insert("classification".to_string(), "delta".to_string());
                self.register_delta(&a, &url, &written, &[], p, why)
                    .await?
                    .id
            }
        };
        // The count as read at the version just written: `tarn doctor --check` finds the
        // catalog agreeing with the log after every append.
        self.meta
            .catalog()
            .set_delta_state(&id, rows, table_version)
            .await?;
        Ok(true)
    }
}

/// A buffer a result writer fills and the byte stream drains after each batch.
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> bytes::Bytes {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner())).into()
    }
}

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
