//! `domain.layer.table`: how tables are named in the CLI, the API and SQL.

use crate::{Lake, LakeError};

/// A parsed, checked table address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAddress {
    pub domain: String,
    pub layer: String,
    pub table: String,
}

impl TableAddress {
    /// The catalog database of the table's zone.
    pub fn database(&self) -> String {
        format!("{}_{}", self.domain, self.layer)
    }
}

impl std::fmt::Display for TableAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.domain, self.layer, self.table)
    }
}

impl Lake {
    /// Parses `domain.layer.table` against the lake's domains and layers.
    pub fn address(&self, text: &str) -> Result<TableAddress, LakeError> {
        let parts: Vec<&str> = text.split('.').collect();
        let [domain, layer, table] = parts[..] else {
            return Err(LakeError::Usage(format!(
                "`{text}` is not a table address; write DOMAIN.LAYER.TABLE, e.g. flights.trusted.flights"
            )));
        };
        self.config
            .check_zone(domain, layer)
            .map_err(LakeError::Usage)?;
        tarn_config::check_identifier(table)
            .map_err(|why| LakeError::Usage(format!("table name: {why}")))?;
        Ok(TableAddress {
            domain: domain.into(),
            layer: layer.into(),
            table: table.into(),
        })
    }

    /// Where a Delta table of this address lives.
    pub fn table_url(&self, a: &TableAddress) -> String {
        self.zones.url_of(
            &tarn_storage::Zone {
                domain: a.domain.clone(),
                layer: a.layer.clone(),
            }
            .path(&a.table),
        )
    }
}
