//! Reading the catalog: listing and searching tables, and one table's full description.

use crate::{Lake, LakeError, TableAddress};
use serde::Serialize;
use tarn_metadata::{LoadRecord, Partition, TableRecord, TableVersion};

/// One line of `tarn tables`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TableSummary {
    pub table: String,
    pub format: String,
    pub columns: usize,
    pub partition_keys: Vec<String>,
    pub row_count: Option<i64>,
    pub version: i64,
    pub location: String,
    pub updated_at: String,
}

/// Everything `tarn table show` prints.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TableDetail {
    pub table: String,
    #[serde(flatten)]
    pub record: TableRecord,
    pub versions: Vec<TableVersion>,
    pub partitions: Vec<Partition>,
    pub loads: Vec<LoadRecord>,
}

impl Lake {
    /// Catalogued tables with their domain and layer, ordered by address.
    pub(crate) async fn visible_tables(
        &self,
    ) -> Result<Vec<(String, String, TableRecord)>, LakeError> {
        Ok(self.visible_tables_stamped().await?.0)
    }

    /// [`Self::visible_tables`], and the catalog's stamp as of that read (see
    /// [`tarn_metadata::stamp_of`]).
    pub(crate) async fn visible_tables_stamped(
        &self,
    ) -> Result<(Vec<(String, String, TableRecord)>, String), LakeError> {
        let zoned = self.meta.catalog().tables_in_zones().await?;
        // The stamp counts every table, as the store's own does, a table whose database is
        // gone included (it is not visible).
        let stamp = tarn_metadata::stamp_of(zoned.iter().map(|(_, t)| t));
        let out = zoned
            .into_iter()
            .filter_map(|(zone, t)| zone.map(|(domain, layer)| (domain, layer, t)))
            .collect();
        Ok((out, stamp))
    }

    /// Tables under `filter` (`DOMAIN` or `DOMAIN.LAYER`), matching `search` in their name,
    /// columns, location or parameters.
    pub async fn tables(
        &self,
        filter: Option<&str>,
        search: Option<&str>,
    ) -> Result<Vec<TableSummary>, LakeError> {
        let (fd, fl) = match filter {
            None => (None, None),
            Some(f) => {
                let mut p = f.splitn(2, ['.', '/']);
                let d = p.next().map(String::from);
                let l = p.next().map(String::from);
                if let Some(d) = &d {
                    self.config
                        .check_zone(
                            d,
                            l.as_deref()
                                .unwrap_or_else(|| self.config.layers[0].as_str()),
                        )
                        .map_err(LakeError::Usage)?;
                }
                (d, l)
            }
        };
        let needle = search.map(str::to_lowercase);
        Ok(self
            .visible_tables()
            .await?
            .into_iter()
            .filter(|(d, l, _)| {
                fd.as_ref().is_none_or(|x| x == d) && fl.as_ref().is_none_or(|x| x == l)
            })
            .filter(|(d, l, t)| {
                let Some(n) = &needle else { return true };
                let hay = format!(
                    "{d}.{l}.{} {} {} {}",
                    t.name,
                    t.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    t.location,
                    t.parameters.values().cloned().collect::<Vec<_>>().join(" ")
                )
                .to_lowercase();
                hay.contains(n.as_str())
            })
            .map(|(d, l, t)| TableSummary {
                table: format!("{d}.{l}.{}", t.name),
                format: t.format.clone(),
                columns: t.columns.len(),
                partition_keys: t.partition_keys.iter().map(|c| c.name.clone()).collect(),
                row_count: t.row_count,
                version: t.version,
                location: t.location.clone(),
                updated_at: t.updated_at.clone(),
            })
            .collect())
    }

    /// A catalogued table by address.
    pub async fn table_record(&self, a: &TableAddress) -> Result<TableRecord, LakeError> {
        self.meta
            .catalog()
            .table(&a.database(), &a.table)
            .await?
            .ok_or_else(|| LakeError::NoSuchTable(a.to_string()))
    }

    /// One table with its schema history, partitions and loads.
    pub async fn table(&self, address: &str) -> Result<TableDetail, LakeError> {
        let a = self.address(address)?;
        let record = self.table_record(&a).await?;
        Ok(TableDetail {
            table: a.to_string(),
            versions: self.meta.catalog().table_versions(&record.id).await?,
            partitions: self.meta.catalog().partitions(&record.id).await?,
            loads: self.meta.catalog().loads(&record.id).await?,
            record,
        })
    }

    /// The commits of a Delta table, newest first.
    pub async fn history(
        &self,
        address: &str,
    ) -> Result<Vec<tarn_tables::HistoryEntry>, LakeError> {
        let a = self.address(address)?;
        let record = self.table_record(&a).await?;
        if record.format != "delta" {
            return Err(LakeError::Usage(format!(
                "{a} is a {} table; only Delta tables (trusted and service layers) have history",
                record.format
            )));
        }
        Ok(tarn_tables::history(&self.stores, &record.location).await?)
    }
}
