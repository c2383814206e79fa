//! The catalog: databases (one per zone), tables with schemas and partitions, every schema
//! version a table has had, crawl state per object, and the record of loads.

use crate::columns::{JsonOf, JsonText};
use crate::{MetadataError, Store};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::BTreeMap;

/// The catalog: databases, tables and their versions, partitions, crawls and loads. Reached with [`Store::catalog`].
#[derive(Clone, Copy, Debug)]
pub struct Catalog<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// The catalog: databases, tables and their versions, partitions, crawls and loads.
    pub fn catalog(&self) -> Catalog<'_> {
        Catalog { store: self }
    }
}

/// A Glue-style database: one per zone, named `DOMAIN_LAYER`.
#[derive(
    Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct DatabaseRecord {
    pub name: String,
    pub domain: String,
    pub layer: String,
    pub location: String,
    pub created_at: String,
}

/// A column: its name, a catalog type (`bigint`, `double`, `string`, `boolean`, `date`,
/// `timestamp`, ...) and whether it may hold nulls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

impl Column {
    pub fn new(name: impl Into<String>, data_type: impl Into<String>) -> Self {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            nullable: true,
        }
    }
}

/// A finished crawl and its report.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct CrawlRecord {
    pub id: String,
    /// `*`, a domain, or `domain/layer`.
    pub scope: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// What the crawl found: tables created or updated, files skipped with the reason.
    #[sqlx(try_from = "JsonText")]
    pub report: serde_json::Value,
}

/// A catalogued table.
#[derive(
    Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct TableRecord {
    pub id: String,
    #[sqlx(rename = "database_name")]
    pub database: String,
    pub name: String,
    pub location: String,
    /// `csv`, `json`, `parquet` or `delta`.
    pub format: String,
    #[sqlx(try_from = "JsonOf<Vec<Column>>")]
    pub columns: Vec<Column>,
    #[sqlx(try_from = "JsonOf<Vec<Column>>")]
    pub partition_keys: Vec<Column>,
    #[sqlx(try_from = "JsonOf<BTreeMap<String, String>>")]
    pub parameters: BTreeMap<String, String>,
    /// The catalog version of the schema (1 for a new table, +1 per schema change).
    pub version: i64,
    pub row_count: Option<i64>,
    /// For a Delta table: the version of its log the row count was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_version: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

impl TableRecord {
    /// `domain.layer.table`, from the database `domain_layer` and the domain it belongs to.
    pub fn address(&self, domain: &str) -> String {
        let layer = self
            .database
            .strip_prefix(domain)
            .and_then(|s| s.strip_prefix('_'))
            .unwrap_or(&self.database);
        format!("{domain}.{layer}.{}", self.name)
    }
}

/// One schema a table has had.
#[derive(
    Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct TableVersion {
    pub version: i64,
    #[sqlx(try_from = "JsonOf<Vec<Column>>")]
    pub columns: Vec<Column>,
    #[sqlx(try_from = "JsonOf<Vec<Column>>")]
    pub partition_keys: Vec<Column>,
    pub reason: String,
    pub created_at: String,
}

/// A partition of a table: `year=2013/month=1` with its values and location.
#[derive(
    Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct Partition {
    pub spec: String,
    #[sqlx(rename = "vals", try_from = "JsonOf<Vec<String>>")]
    pub values: Vec<String>,
    pub location: String,
}

/// What the crawler last saw of an object.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CrawledObject {
    pub etag: String,
    pub table_id: Option<String>,
    pub outcome: String,
}

/// One load into a table.
#[derive(
    Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct LoadRecord {
    pub id: String,
    pub table_id: String,
    pub mode: String,
    pub source: String,
    pub rows_written: i64,
    pub rows_rejected: i64,
    pub table_version: i64,
    pub created_at: String,
}

/// What `put_table` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TableChange {
    Created,
    Updated,
    Unchanged,
}

/// The description of a table to register or evolve.
#[derive(Debug, Clone)]
pub struct TableDraft {
    pub database: String,
    pub name: String,
    pub location: String,
    pub format: String,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    pub parameters: BTreeMap<String, String>,
}

const TABLE_COLUMNS: &str = "id, database_name, name, location, format, columns, partition_keys, parameters, version, row_count, delta_version, created_at, updated_at";

/// The catalog's stamp ([`Catalog::catalog_stamp`]) from every table it holds, as read by
/// [`Catalog::tables`] (or [`Catalog::tables_in_zones`]): a cache filled from that list keys
/// it without a second query.
pub fn stamp_of<'a>(tables: impl IntoIterator<Item = &'a TableRecord>) -> String {
    let (mut n, mut newest) = (0usize, "");
    for t in tables {
        n += 1;
        newest = newest.max(t.updated_at.as_str());
    }
    format!("{n}:{newest}")
}

impl Catalog<'_> {
    /// Registers the database of a zone (idempotent).
    pub async fn ensure_database(
        &self,
        domain: &str,
        layer: &str,
        location: &str,
    ) -> Result<String, MetadataError> {
        let name = format!("{domain}_{layer}");
        // Read first: opening a lake writes nothing when its zones are known (so a read-only
        // store still serves reading commands).
        let known: Option<String> =
            sqlx::query_scalar("SELECT location FROM catalog_databases WHERE name = $1")
                .bind(&name)
                .fetch_optional(&self.store.pool)
                .await?;
        if known.as_deref() == Some(location) || (self.store.read_only && known.is_some()) {
            return Ok(name);
        }
        sqlx::query(
            "INSERT INTO catalog_databases (name, domain, layer, location, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET location = excluded.location
             WHERE catalog_databases.location <> excluded.location",
        )
        .bind(&name)
        .bind(domain)
        .bind(layer)
        .bind(location)
        .bind(crate::now())
        .execute(&self.store.pool)
        .await?;
        Ok(name)
    }

    /// Every database, by name.
    pub async fn databases(&self) -> Result<Vec<DatabaseRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT name, domain, layer, location, created_at FROM catalog_databases ORDER BY name",
        )
        .fetch_all(&self.store.pool)
        .await?)
    }

    /// A table by database and name.
    pub async fn table(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Option<TableRecord>, MetadataError> {
        let row = sqlx::query_as::<_, TableRecord>(&format!(
            "SELECT {TABLE_COLUMNS} FROM catalog_tables WHERE database_name = $1 AND name = $2"
        ))
        .bind(database)
        .bind(name)
        .fetch_optional(&self.store.pool)
        .await?;
        Ok(row)
    }

    /// Every table, ordered by database and name.
    pub async fn tables(&self) -> Result<Vec<TableRecord>, MetadataError> {
        let rows = sqlx::query_as::<_, TableRecord>(&format!(
            "SELECT {TABLE_COLUMNS} FROM catalog_tables ORDER BY database_name, name"
        ))
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows)
    }

    /// Every table, ordered by database and name, with its database's domain and layer
    /// (`None` when its database is gone): what [`Catalog::databases`] and [`Catalog::tables`]
    /// answer together, in one query (a query engine over the catalog is made from it).
    pub async fn tables_in_zones(
        &self,
    ) -> Result<Vec<(Option<(String, String)>, TableRecord)>, MetadataError> {
        #[derive(sqlx::FromRow)]
        struct Zoned {
            zone_domain: Option<String>,
            zone_layer: Option<String>,
            #[sqlx(flatten)]
            table: TableRecord,
        }
        let columns: Vec<String> = TABLE_COLUMNS
            .split(", ")
            .map(|c| format!("t.{c} AS {c}"))
            .collect();
        let rows = sqlx::query_as::<_, Zoned>(&format!(
            "SELECT d.domain AS zone_domain, d.layer AS zone_layer, {} \
             FROM catalog_tables t LEFT JOIN catalog_databases d ON d.name = t.database_name \
             ORDER BY t.database_name, t.name",
            columns.join(", ")
        ))
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.zone_domain.zip(r.zone_layer), r.table))
            .collect())
    }

    /// Registers a table, or evolves it: a new catalog version when its columns or partition
    /// keys change, the same version when only location, format or parameters change.
    pub async fn put_table(
        &self,
        draft: &TableDraft,
        reason: &str,
    ) -> Result<(TableRecord, TableChange), MetadataError> {
        let mut tx = self.store.write_tx().await?;
        if !self.store.sqlite {
            // SQLite's writer transaction is exclusive already; on Postgres two processes
            // registering (or evolving) one table at once take turns, so neither meets the
            // other's half-made row or schema version.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtext($1))) AS locked")
                .bind(format!("catalog:{}.{}", draft.database, draft.name))
                .execute(&mut *tx)
                .await?;
        }
        let now = crate::now();
        let existing = sqlx::query_as::<_, TableRecord>(&format!(
            "SELECT {TABLE_COLUMNS} FROM catalog_tables WHERE database_name = $1 AND name = $2"
        ))
        .bind(&draft.database)
        .bind(&draft.name)
        .fetch_optional(&mut *tx)
        .await?;
        let columns = serde_json::to_string(&draft.columns)?;
        let keys = serde_json::to_string(&draft.partition_keys)?;
        let params = serde_json::to_string(&draft.parameters)?;
        let (id, version, change) = match &existing {
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                sqlx::query(&format!(
                    "INSERT INTO catalog_tables ({TABLE_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, NULL, NULL, $9, $9)"
                ))
                .bind(&id)
                .bind(&draft.database)
                .bind(&draft.name)
                .bind(&draft.location)
                .bind(&draft.format)
                .bind(&columns)
                .bind(&keys)
                .bind(&params)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                (id, 1, TableChange::Created)
            }
            Some(t) => {
                let schema_changed =
                    t.columns != draft.columns || t.partition_keys != draft.partition_keys;
                let other_changed = t.location != draft.location
                    || t.format != draft.format
                    || t.parameters != draft.parameters;
                let version = if schema_changed {
                    t.version + 1
                } else {
                    t.version
                };
                if schema_changed || other_changed {
                    sqlx::query(
                        "UPDATE catalog_tables SET location = $1, format = $2, columns = $3,
                         partition_keys = $4, parameters = $5, version = $6, updated_at = $7
                         WHERE id = $8",
                    )
                    .bind(&draft.location)
                    .bind(&draft.format)
                    .bind(&columns)
                    .bind(&keys)
                    .bind(&params)
                    .bind(version)
                    .bind(&now)
                    .bind(&t.id)
                    .execute(&mut *tx)
                    .await?;
                }
                let change = if schema_changed {
                    TableChange::Updated
                } else {
                    TableChange::Unchanged
                };
                (t.id.clone(), version, change)
            }
        };
        if change != TableChange::Unchanged {
            sqlx::query(
                "INSERT INTO catalog_table_versions (table_id, version, columns, partition_keys, reason, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(version)
            .bind(&columns)
            .bind(&keys)
            .bind(reason)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query_as::<_, TableRecord>(&format!(
            "SELECT {TABLE_COLUMNS} FROM catalog_tables WHERE id = $1"
        ))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        let record = row;
        tx.commit().await?;
        Ok((record, change))
    }

    /// Changes whenever a table is registered or changed: for caches of the catalog. The
    /// same as [`stamp_of`] over every table.
    pub async fn catalog_stamp(&self) -> Result<String, MetadataError> {
        let row = sqlx::query(
            "SELECT count(*) AS n, COALESCE(max(updated_at), '') AS m FROM catalog_tables",
        )
        .fetch_one(&self.store.pool)
        .await?;
        Ok(format!(
            "{}:{}",
            row.try_get::<i64, _>("n")?,
            row.try_get::<String, _>("m")?
        ))
    }

    /// Sets the known row count of a table (`None` when unknown).
    pub async fn set_row_count(
        &self,
        table_id: &str,
        rows: Option<i64>,
    ) -> Result<(), MetadataError> {
        sqlx::query("UPDATE catalog_tables SET row_count = $1 WHERE id = $2")
            .bind(rows)
            .bind(table_id)
            .execute(&self.store.pool)
            .await?;
        Ok(())
    }

    /// Sets a Delta table's row count as read at `delta_version` of its log, unless the catalog
    /// already holds what a newer version says (two writers finishing out of order).
    pub async fn set_delta_state(
        &self,
        table_id: &str,
        rows: i64,
        delta_version: i64,
    ) -> Result<(), MetadataError> {
        sqlx::query(
            "UPDATE catalog_tables SET row_count = $1, delta_version = $2
             WHERE id = $3 AND (delta_version IS NULL OR delta_version <= $2)",
        )
        .bind(rows)
        .bind(delta_version)
        .bind(table_id)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Removes a table from the catalog with its schemas, partitions and loads (its data, when
    /// any is left, is not touched). Used when the data itself is gone.
    pub async fn forget_table(&self, table_id: &str) -> Result<(), MetadataError> {
        let mut tx = self.store.pool.begin().await?;
        for sql in [
            "DELETE FROM loads WHERE table_id = $1",
            "DELETE FROM catalog_partitions WHERE table_id = $1",
            "DELETE FROM catalog_table_versions WHERE table_id = $1",
            "UPDATE crawled_objects SET table_id = NULL WHERE table_id = $1",
            "DELETE FROM catalog_tables WHERE id = $1",
        ] {
            sqlx::query(sql).bind(table_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every schema a table has had, oldest first.
    pub async fn table_versions(&self, table_id: &str) -> Result<Vec<TableVersion>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT version, columns, partition_keys, reason, created_at
             FROM catalog_table_versions WHERE table_id = $1 ORDER BY version",
        )
        .bind(table_id)
        .fetch_all(&self.store.pool)
        .await?)
    }

    /// Registers a partition (idempotent).
    pub async fn put_partition(
        &self,
        table_id: &str,
        partition: &Partition,
    ) -> Result<(), MetadataError> {
        self.add_partition(table_id, partition).await.map(|_| ())
    }

    /// Registers a partition unless one of that spec exists: whether it was added.
    pub async fn add_partition(
        &self,
        table_id: &str,
        partition: &Partition,
    ) -> Result<bool, MetadataError> {
        let done = sqlx::query(
            "INSERT INTO catalog_partitions (table_id, spec, vals, location, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (table_id, spec) DO NOTHING",
        )
        .bind(table_id)
        .bind(&partition.spec)
        .bind(serde_json::to_string(&partition.values)?)
        .bind(&partition.location)
        .bind(crate::now())
        .execute(&self.store.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a partition from the catalog: whether there was one.
    pub async fn delete_partition(
        &self,
        table_id: &str,
        spec: &str,
    ) -> Result<bool, MetadataError> {
        let done = sqlx::query("DELETE FROM catalog_partitions WHERE table_id = $1 AND spec = $2")
            .bind(table_id)
            .bind(spec)
            .execute(&self.store.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A table's partitions, by spec.
    pub async fn partitions(&self, table_id: &str) -> Result<Vec<Partition>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT spec, vals, location FROM catalog_partitions WHERE table_id = $1 ORDER BY spec",
        )
        .bind(table_id)
        .fetch_all(&self.store.pool)
        .await?)
    }

    /// What the crawler last saw of an object.
    pub async fn crawled_object(
        &self,
        zone: &str,
        key: &str,
    ) -> Result<Option<CrawledObject>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT etag, table_id, outcome FROM crawled_objects WHERE zone = $1 AND object_key = $2",
        )
        .bind(zone)
        .bind(key)
        .fetch_optional(&self.store.pool)
        .await?)
    }

    /// Remembers what the crawler made of an object.
    pub async fn record_crawled(
        &self,
        zone: &str,
        key: &str,
        seen: &CrawledObject,
    ) -> Result<(), MetadataError> {
        sqlx::query(
            "INSERT INTO crawled_objects (zone, object_key, etag, table_id, outcome, crawled_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (zone, object_key) DO UPDATE SET etag = excluded.etag,
               table_id = excluded.table_id, outcome = excluded.outcome, crawled_at = excluded.crawled_at",
        )
        .bind(zone)
        .bind(key)
        .bind(&seen.etag)
        .bind(&seen.table_id)
        .bind(&seen.outcome)
        .bind(crate::now())
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Records a finished crawl with its report.
    pub async fn record_crawl(
        &self,
        scope: &str,
        started_at: &str,
        report: &serde_json::Value,
    ) -> Result<String, MetadataError> {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO crawls (id, scope, started_at, finished_at, report) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(scope)
        .bind(started_at)
        .bind(crate::now())
        .bind(report.to_string())
        .execute(&self.store.pool)
        .await?;
        Ok(id)
    }

    /// Recorded crawls, newest first.
    pub async fn crawls(&self) -> Result<Vec<CrawlRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT id, scope, started_at, finished_at, report FROM crawls ORDER BY id DESC",
        )
        .fetch_all(&self.store.pool)
        .await?)
    }

    /// Records a load into a table (once: a load already recorded is left as it is).
    pub async fn record_load(&self, load: &LoadRecord) -> Result<(), MetadataError> {
        sqlx::query(
            "INSERT INTO loads (id, table_id, mode, source, rows_written, rows_rejected, table_version, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&load.id)
        .bind(&load.table_id)
        .bind(&load.mode)
        .bind(&load.source)
        .bind(load.rows_written)
        .bind(load.rows_rejected)
        .bind(load.table_version)
        .bind(&load.created_at)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// The loads into a table, in the order of the table versions they made.
    pub async fn loads(&self, table_id: &str) -> Result<Vec<LoadRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT id, table_id, mode, source, rows_written, rows_rejected, table_version, created_at
             FROM loads WHERE table_id = $1 ORDER BY table_version, created_at",
        )
        .bind(table_id)
        .fetch_all(&self.store.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn schema_changes_make_versions() {
        for backend in crate::testing::BACKENDS {
            schema_changes_make_versions_on(backend).await;
        }
    }

    async fn schema_changes_make_versions_on(backend: crate::testing::Backend) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::testing::fresh_store(backend, dir.path())
            .await
            .unwrap();
        let db = store
            .catalog()
            .ensure_database("flights", "raw", "file:///x")
            .await
            .unwrap();
        assert_eq!(db, "flights_raw");
        let mut draft = TableDraft {
            database: db,
            name: "flights".into(),
            location: "file:///x/flights".into(),
            format: "csv".into(),
            columns: vec![Column::new("year", "bigint")],
            partition_keys: vec![],
            parameters: BTreeMap::new(),
        };
        let (t, c) = store.catalog().put_table(&draft, "crawl").await.unwrap();
        assert_eq!((t.version, c), (1, TableChange::Created));
        let (_, c) = store.catalog().put_table(&draft, "crawl").await.unwrap();
        assert_eq!(c, TableChange::Unchanged);
        draft.columns.push(Column::new("carrier", "string"));
        let (t, c) = store
            .catalog()
            .put_table(&draft, "new column carrier")
            .await
            .unwrap();
        assert_eq!((t.version, c), (2, TableChange::Updated));
        let versions = store.catalog().table_versions(&t.id).await.unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0].columns.len(), 1);
        assert_eq!(versions[1].reason, "new column carrier");
        let stamp = store.catalog().catalog_stamp().await.unwrap();
        store.catalog().set_row_count(&t.id, Some(5)).await.unwrap();
        assert_eq!(
            store
                .catalog()
                .table("flights_raw", "flights")
                .await
                .unwrap()
                .unwrap()
                .row_count,
            Some(5)
        );
        assert!(stamp.starts_with("1:"), "{stamp}");
        // The stamp a cache computes from the table list is the store's own, with tables
        // changed at different times.
        draft.name = "planes".into();
        store.catalog().put_table(&draft, "crawl").await.unwrap();
        let tables = store.catalog().tables().await.unwrap();
        let stamp = store.catalog().catalog_stamp().await.unwrap();
        assert!(stamp.starts_with("2:"), "{stamp}");
        assert_eq!(super::stamp_of(&tables), stamp, "{backend:?}");
        assert_eq!(super::stamp_of(&[]), "0:");
        // The tables with their zones, in one query: the same tables, each with its
        // database's domain and layer.
        let zoned = store.catalog().tables_in_zones().await.unwrap();
        assert_eq!(
            zoned.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>(),
            tables
        );
        assert!(zoned
            .iter()
            .all(|(z, _)| z == &Some(("flights".to_string(), "raw".to_string()))));
        store
            .catalog()
            .put_partition(
                &t.id,
                &Partition {
                    spec: "year=2013".into(),
                    values: vec!["2013".into()],
                    location: "x".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(store.catalog().partitions(&t.id).await.unwrap().len(), 1);
        assert_eq!(store.catalog().databases().await.unwrap().len(), 1);
    }
}
