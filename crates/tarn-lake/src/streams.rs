//! Tables written by a stream of batches under an application transaction (Singer taps'
//! flushes): a commit in any layer, catalogued as it lands; the transaction a table last saw;
//! rolling a table back to an earlier version; deleting rows a stream no longer holds.

use crate::{Lake, LakeError};
use std::collections::BTreeMap;
use tarn_tables::{Committed, StreamWrite};

impl Lake {
    /// Commits `batches` into table `target` (`DOMAIN.LAYER.TABLE`, any layer) as part of
    /// application transaction `app` at `version` (see `tarn_tables::commit_txn`), and
    /// catalogs the table: registered on its first commit (with `note`), a new catalog version
    /// when its schema gained columns, its row count and Delta version kept in step.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_stream(
        &self,
        target: &str,
        batches: Vec<arrow::record_batch::RecordBatch>,
        schema: &arrow::datatypes::SchemaRef,
        write: &StreamWrite,
        app: &str,
        version: i64,
        parameters: BTreeMap<String, String>,
        note: &str,
    ) -> Result<Committed, LakeError> {
        let a = self.address(target)?;
        let url = self.table_url(&a);
        let mut meta = serde_json::Map::new();
        meta.insert("tarn.source".into(), serde_json::json!(app));
        meta.insert("tarn.txn_version".into(), serde_json::json!(version));
        let out = tarn_tables::commit_txn(
            &self.stores,
            &url,
            &a.table,
            batches,
            schema,
            write,
            app,
            version,
            &meta,
        )
        .await?;
        let id = match self.meta.catalog().table(&a.database(), &a.table).await? {
            Some(t)
                if out
                    .schema
                    .fields()
                    .iter()
                    .all(|f| t.columns.iter().any(|c| &c.name == f.name())) =>
            {
                t.id
            }
            found => {
                let why = match found {
                    Some(_) => "the stream's schema gained columns",
                    None => note,
                };
                let mut p = found.map(|t| t.parameters).unwrap_or_default();
                p.extend(parameters);
                p.insert("classification".to_string(), "delta".to_string());
                self.register_delta(&a, &url, &out.schema, &[], p, why)
                    .await?
                    .id
            }
        };
        self.meta
            .catalog()
            .set_delta_state(&id, out.rows, out.version)
            .await?;
        Ok(out)
    }

    /// The version of application transaction `app` table `target` holds, and the table's own
    /// version (both none when the table does not exist yet).
    pub async fn stream_txn(
        &self,
        target: &str,
        app: &str,
    ) -> Result<(Option<i64>, Option<i64>), LakeError> {
        let a = self.address(target)?;
        Ok(tarn_tables::txn_version(&self.stores, &self.table_url(&a), app).await?)
    }

    /// Puts table `target` back as it was at `version` (emptied when `None`: it did not exist
    /// then) in a new commit that says `why`, and keeps the catalog's count in step.
    pub async fn roll_back_table(
        &self,
        target: &str,
        version: Option<i64>,
        why: &str,
    ) -> Result<(), LakeError> {
        let a = self.address(target)?;
        let url = self.table_url(&a);
        let mut meta = serde_json::Map::new();
        meta.insert("tarn.rollback".into(), serde_json::json!(why));
        tarn_tables::roll_back(&self.stores, &url, version, &meta).await?;
        self.refresh_count(&a, &url).await
    }

    /// Deletes the rows of `target` that `predicate` holds for, in a commit of application
    /// transaction `app` at `version`.
    pub async fn delete_stream_rows(
        &self,
        target: &str,
        predicate: &str,
        app: &str,
        version: i64,
    ) -> Result<(), LakeError> {
        let a = self.address(target)?;
        let url = self.table_url(&a);
        tarn_tables::delete_where(&self.stores, &url, predicate, app, version).await?;
        self.refresh_count(&a, &url).await
    }

    /// The rows table `target` holds now (0 when it does not exist).
    pub async fn table_rows(&self, target: &str) -> Result<i64, LakeError> {
        let a = self.address(target)?;
        match tarn_tables::open(&self.stores, &self.table_url(&a), None).await? {
            Some(t) if t.version().is_some() => Ok(tarn_tables::count_rows(&t).await?),
            _ => Ok(0),
        }
    }

    /// The column names of table `target` as its Delta log has them (none when it does not
    /// exist).
    pub async fn table_columns(&self, target: &str) -> Result<Vec<String>, LakeError> {
        let a = self.address(target)?;
        match tarn_tables::open(&self.stores, &self.table_url(&a), None).await? {
            Some(t) if t.version().is_some() => Ok(t
                .snapshot()
                .map_err(tarn_tables::TablesError::from)?
                .snapshot()
                .arrow_schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    async fn refresh_count(&self, a: &crate::TableAddress, url: &str) -> Result<(), LakeError> {
        if let (Some(t), Some(table)) = (
            self.meta.catalog().table(&a.database(), &a.table).await?,
            tarn_tables::open(&self.stores, url, None).await?,
        ) {
            let rows = tarn_tables::count_rows(&table).await?;
            let v = table.version().unwrap_or(0) as i64;
            self.meta.catalog().set_delta_state(&t.id, rows, v).await?;
        }
        Ok(())
    }
}
