//! The files behind a table, for engines that read them themselves (Spark running a Glue ETL
//! script through tarn's `awsglue`): a Delta table's data files at one version of its log (a
//! consistent snapshot: nothing a later commit adds), or the objects under a crawled table's
//! location, each with its partition values.

use crate::{Lake, LakeError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tarn_metadata::Column;

/// One file of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TableFile {
    /// The file's URI in the lake's store (`file:///...` or `s3://bucket/...`).
    pub uri: String,
    pub size: i64,
    /// Its partition values by key (`null` for a null value; hive `k=v` folders of a crawled
    /// table, the log's values for a Delta table).
    pub partition: BTreeMap<String, Option<String>>,
}

/// A table's files and what a reader needs to read them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TableFiles {
    /// `domain.layer.table`.
    pub table: String,
    /// `csv`, `json`, `parquet` or `delta` (whose files are Parquet).
    pub format: String,
    pub location: String,
    /// The Delta version the files are of (none for a crawled table).
    pub version: Option<i64>,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    /// The catalog's parameters (a CSV table's `delimiter` and `header`).
    pub parameters: BTreeMap<String, String>,
    pub files: Vec<TableFile>,
}

impl Lake {
    /// The files of table `address` (a Delta table's at its latest version).
    pub async fn table_files(&self, address: &str) -> Result<TableFiles, LakeError> {
        let a = self.address(address)?;
        let record = self.table_record(&a).await?;
        let mut out = TableFiles {
            table: a.to_string(),
            format: record.format.clone(),
            location: record.location.clone(),
            version: None,
            columns: record.columns.clone(),
            partition_keys: record.partition_keys.clone(),
            parameters: record.parameters.clone(),
            files: Vec::new(),
        };
        if record.format == "delta" {
            let Some(t) = tarn_tables::open(&self.stores, &record.location, None).await? else {
                return Err(LakeError::NoSuchTable(format!(
                    "{a} (its Delta log at {} is gone; run `tarn doctor`)",
                    record.location
                )));
            };
            out.version = t.version().map(|v| v as i64);
            let base = record.location.trim_end_matches('/');
            out.files = tarn_tables::data_files(&t)?
                .into_iter()
                .map(|f| TableFile {
                    uri: if f.path.contains("://") {
                        f.path
                    } else {
                        format!("{base}/{}", f.path)
                    },
                    size: f.size,
                    partition: f.partition,
                })
                .collect();
            return Ok(out);
        }
        // A crawled table: the objects under its location in its zone.
        let zone = self.zones.zone(&a.domain, &a.layer)?;
        let root = self.zones.url_of(&zone.root());
        let prefix = record
            .location
            .strip_prefix(root.trim_end_matches('/'))
            .map(|p| p.trim_matches('/'))
            .ok_or_else(|| {
                LakeError::Usage(format!(
                    "{a}'s location {} is outside its zone {root}",
                    record.location
                ))
            })?
            .to_string();
        let keys: Vec<&str> = record
            .partition_keys
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let under = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        for o in self.zones.list(&zone, &under).await? {
            let rest = &o.key[under.len()..];
            // Hidden and marker files are no data (`_SUCCESS`, `.crc`, a folder's marker).
            let name = rest.rsplit('/').next().unwrap_or(rest);
            if name.is_empty() || name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            let mut partition = BTreeMap::new();
            for segment in rest.split('/') {
                if let Some((k, v)) = segment.split_once('=') {
                    if keys.contains(&k) {
                        let v = percent_encoding::percent_decode_str(v)
                            .decode_utf8_lossy()
                            .into_owned();
                        let null = v == "__HIVE_DEFAULT_PARTITION__";
                        partition.insert(k.to_string(), (!null).then_some(v));
                    }
                }
            }
            out.files.push(TableFile {
                uri: self.zones.url_of(&zone.path(&o.key)),
                size: o.size as i64,
                partition,
            });
        }
        Ok(out)
    }
}
