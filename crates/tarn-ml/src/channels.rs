//! Input channels: each channel's query run over the catalog once per training, written into
//! the job folder as `input/data/<channel>/<channel>.parquet` (or `.csv` with a header), with
//! the lineage a model version keeps (the query, and the version of every table it read).

use crate::MlError;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use tarn_config::{ChannelFormat, TrainSpec};
use tarn_lake::{Lake, QueryOptions};

/// One channel's rows, in memory (built-in trainers read them from here).
#[derive(Debug, Clone)]
pub struct ChannelData {
    pub name: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
}

/// Where a channel's rows came from.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ChannelLineage {
    pub query: String,
    /// `domain.layer.table` → the table's version when it was read (the Delta version for
    /// Delta tables, the catalog's schema version otherwise).
    pub tables: BTreeMap<String, i64>,
    pub rows: usize,
}

/// Runs every channel's query and writes it under `data_dir/<channel>/`.
pub async fn export(
    lake: &Lake,
    spec: &TrainSpec,
    data_dir: &Path,
) -> Result<(Vec<ChannelData>, BTreeMap<String, ChannelLineage>), MlError> {
    let known = lake.tables(None, None).await?;
    let mut data = Vec::new();
    let mut lineage = BTreeMap::new();
    for ch in &spec.channels {
        let query = ch.source.query();
        let result = lake
            .sql(&query, &QueryOptions::default())
            .await
            .map_err(|e| {
                MlError::Usage(format!(
                    "channel `{}` of {}: {e}",
                    ch.name,
                    spec.dir.join(tarn_config::TRAIN_FILE).display()
                ))
            })?;
        let rows = result.rows();
        if rows == 0 {
            return Err(MlError::Usage(format!(
                "channel `{}` of {} is empty: `{query}` returned no rows; check the query and that its tables are loaded",
                ch.name,
                spec.dir.join(tarn_config::TRAIN_FILE).display()
            )));
        }
        let dir = data_dir.join(&ch.name);
        std::fs::create_dir_all(&dir).map_err(|e| MlError::io(&dir, e))?;
        let file = dir.join(format!("{}.{}", ch.name, ch.format.as_str()));
        write_file(&file, ch.format, &result.schema, &result.batches)?;
        let lower = query.to_lowercase();
        let mut tables = BTreeMap::new();
        for t in &known {
            if mentions(&lower, &t.table.to_lowercase()) {
                let version = if t.format == "delta" {
                    lake.history(&t.table)
                        .await
                        .ok()
                        .and_then(|h| h.first().map(|e| e.version))
                        .unwrap_or(t.version)
                } else {
                    t.version
                };
                tables.insert(t.table.clone(), version);
            }
        }
        lineage.insert(
            ch.name.clone(),
            ChannelLineage {
                query: query.clone(),
                tables,
                rows,
            },
        );
        data.push(ChannelData {
            name: ch.name.clone(),
            schema: result.schema,
            batches: result.batches,
            rows,
        });
    }
    Ok((data, lineage))
}

/// Whether `query` names `address` as a whole word.
fn mentions(query: &str, address: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    query.match_indices(address).any(|(i, _)| {
        let before = query[..i].chars().next_back();
        let after = query[i + address.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Writes batches as one Parquet file or one CSV file with a header.
pub fn write_file(
    file: &Path,
    format: ChannelFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), MlError> {
    let out = std::fs::File::create(file).map_err(|e| MlError::io(file, e))?;
    let bad = |e: &dyn std::fmt::Display| MlError::Model(format!("{}: {e}", file.display()));
    match format {
        ChannelFormat::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), None)
                .map_err(|e| bad(&e))?;
            for b in batches {
                w.write(b).map_err(|e| bad(&e))?;
            }
            w.close().map_err(|e| bad(&e))?;
        }
        ChannelFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(b).map_err(|e| bad(&e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_query_mentions_whole_addresses_only() {
        let q = "select * from flights.trusted.flights f join flights.trusted.flights_2013 g";
        assert!(super::mentions(q, "flights.trusted.flights"));
        assert!(super::mentions(q, "flights.trusted.flights_2013"));
        assert!(!super::mentions(q, "flights.trusted.flight"));
        assert!(!super::mentions(q, "trusted.flights"));
    }
}
