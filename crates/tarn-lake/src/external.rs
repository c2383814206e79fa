//! External tables: tables another engine registers (through Glue's API) over files it wrote
//! in one of the lake's zones. The catalog describes them and `tarn sql` reads them; their
//! files are never written or removed by tarn, and only such tables may be changed or dropped
//! this way (what tarn's crawls and loads keep stays theirs). A table is described by a
//! [`TableDraft`] as the crawler's are.

use crate::{Lake, LakeError, TableAddress};
use tarn_metadata::{Partition, TableChange, TableDraft, TableRecord};
use tarn_storage::Zone;

/// The parameter that marks a table registered from outside.
pub const EXTERNAL: &str = "tarn.external";

/// Longest type name taken for a column (Glue's own limit).
const MAX_TYPE: usize = 131_072;

impl Lake {
    /// The zone whose catalog database is `database` (`DOMAIN_LAYER`).
    pub fn zone_of_database(&self, database: &str) -> Result<Zone, LakeError> {
        self.zones
            .all()
            .into_iter()
            .find(|z| z.database() == database)
            .ok_or_else(|| {
                LakeError::NoSuchDatabase(format!(
                    "database {database} is not one of this lake's zones ({})",
                    self.zones
                        .all()
                        .iter()
                        .map(|z| z.database())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The URL of a zone's folder, ending in `/`.
    pub fn zone_url(&self, zone: &Zone) -> String {
        format!("{}/", self.zones.url_of(&zone.root()))
    }

    /// Checks that `location` is a folder or file inside `zone` (no `..`, no other zone, no
    /// other store), and answers it as the catalog keeps it.
    pub fn check_location(&self, zone: &Zone, location: &str) -> Result<String, LakeError> {
        let root = self.zone_url(zone);
        let bad = |why: &str| {
            LakeError::Usage(format!(
                "location `{location}` {why}; tables of database {} keep their files under {root}",
                zone.database()
            ))
        };
        if location.chars().any(|c| c.is_control()) || location.contains('\\') {
            return Err(bad("holds control characters or backslashes"));
        }
        let decoded = percent_encoding::percent_decode_str(location).decode_utf8_lossy();
        let rest = location
            .strip_prefix(&root)
            .or_else(|| (format!("{location}/") == root).then_some(""))
            .ok_or_else(|| bad("is outside the zone"))?;
        if decoded.split('/').any(|seg| seg == ".." || seg == ".")
            || rest.split('/').any(|seg| seg == ".." || seg == ".")
        {
            return Err(bad("climbs out with `..` or `.`"));
        }
        if rest
            .split('/')
            .any(|seg| seg == tarn_storage::VERSIONS_PREFIX)
        {
            return Err(bad("is inside tarn's kept versions"));
        }
        Ok(location.to_string())
    }

    fn external_draft(&self, t: &TableDraft) -> Result<(TableAddress, TableDraft), LakeError> {
        let zone = self.zone_of_database(&t.database)?;
        tarn_config::check_identifier(&t.name)
            .map_err(|why| LakeError::Usage(format!("table name `{}`: {why}", t.name)))?;
        if !matches!(t.format.as_str(), "csv" | "json" | "parquet" | "delta") {
            return Err(LakeError::Usage(format!(
                "table {}: tarn reads csv, json, parquet and delta tables, not `{}`",
                t.name, t.format
            )));
        }
        let location = self.check_location(&zone, &t.location)?;
        let location = if location.ends_with('/') || t.format == "delta" {
            location
        } else {
            format!("{location}/")
        };
        let mut names = std::collections::HashSet::new();
        for c in t.columns.iter().chain(&t.partition_keys) {
            tarn_config::check_identifier(&c.name).map_err(|why| {
                LakeError::Usage(format!("table {}: column `{}`: {why}", t.name, c.name))
            })?;
            if c.data_type.is_empty() || c.data_type.len() > MAX_TYPE {
                return Err(LakeError::Usage(format!(
                    "table {}: column `{}` needs a type of 1 to {MAX_TYPE} characters",
                    t.name, c.name
                )));
            }
            if !names.insert(c.name.to_lowercase()) {
                return Err(LakeError::Usage(format!(
                    "table {}: column `{}` is named twice (columns and partition keys share one namespace)",
                    t.name, c.name
                )));
            }
        }
        let mut parameters = t.parameters.clone();
        parameters.insert(EXTERNAL.into(), "true".into());
        let address = TableAddress {
            domain: zone.domain,
            layer: zone.layer,
            table: t.name.clone(),
        };
        Ok((
            address,
            TableDraft {
                database: t.database.clone(),
                name: t.name.clone(),
                location,
                format: t.format.clone(),
                columns: t.columns.clone(),
                partition_keys: t.partition_keys.clone(),
                parameters,
            },
        ))
    }

    /// Registers a new external table; one of that name already in the catalog is refused.
    pub async fn create_external_table(&self, t: &TableDraft) -> Result<TableRecord, LakeError> {
        let (address, draft) = self.external_draft(t)?;
        if self
            .meta
            .catalog()
            .table(&draft.database, &draft.name)
            .await?
            .is_some()
        {
            return Err(LakeError::TableExists(address.to_string()));
        }
        let (record, change) = self
            .meta
            .catalog()
            .put_table(&draft, "registered through Glue's CreateTable")
            .await?;
        if change != TableChange::Created {
            return Err(LakeError::TableExists(address.to_string()));
        }
        Ok(record)
    }

    /// The catalogued table `name` of `database` when it was registered from outside; tarn's own
    /// tables are refused, naming how they change instead.
    pub async fn external_table(
        &self,
        database: &str,
        name: &str,
    ) -> Result<TableRecord, LakeError> {
        let zone = self.zone_of_database(database)?;
        let address = format!("{}.{}.{name}", zone.domain, zone.layer);
        let record = self
            .meta
            .catalog()
            .table(database, name)
            .await?
            .ok_or_else(|| LakeError::NoSuchTable(address.clone()))?;
        if record.parameters.get(EXTERNAL).map(String::as_str) != Some("true") {
            return Err(LakeError::Usage(format!(
                "table {address} is kept by tarn's crawls and loads, so only they change it; tables registered through Glue may be changed or deleted there"
            )));
        }
        Ok(record)
    }

    /// Replaces an external table's description (a new catalog version when its schema changes).
    pub async fn update_external_table(&self, t: &TableDraft) -> Result<TableRecord, LakeError> {
        self.external_table(&t.database, &t.name).await?;
        let (_, draft) = self.external_draft(t)?;
        Ok(self
            .meta
            .catalog()
            .put_table(&draft, "updated through Glue's UpdateTable")
            .await?
            .0)
    }

    /// Removes an external table from the catalog; its files stay where they are.
    pub async fn drop_external_table(&self, database: &str, name: &str) -> Result<(), LakeError> {
        let record = self.external_table(database, name).await?;
        self.meta.catalog().forget_table(&record.id).await?;
        Ok(())
    }

    /// Adds a partition to an external table: one value per partition key, files inside the
    /// zone. An existing partition with these values is refused.
    pub async fn add_external_partition(
        &self,
        record: &TableRecord,
        values: &[String],
        location: &str,
    ) -> Result<Partition, LakeError> {
        let zone = self.zone_of_database(&record.database)?;
        if values.len() != record.partition_keys.len() {
            return Err(LakeError::Usage(format!(
                "table {} has {} partition keys ({}); the partition gives {} values",
                record.name,
                record.partition_keys.len(),
                record
                    .partition_keys
                    .iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                values.len()
            )));
        }
        if let Some(v) = values.iter().find(|v| {
            v.is_empty() || v.len() > 1024 || v.contains('/') || v.chars().any(char::is_control)
        }) {
            return Err(LakeError::Usage(format!(
                "partition value `{}` must be 1 to 1,024 characters without `/` or control characters",
                v.escape_debug()
            )));
        }
        let location = self.check_location(&zone, location)?;
        let partition = Partition {
            spec: partition_spec(record, values),
            values: values.to_vec(),
            location,
        };
        if !self
            .meta
            .catalog()
            .add_partition(&record.id, &partition)
            .await?
        {
            return Err(LakeError::PartitionExists(format!(
                "{}.{} ({})",
                record.database, record.name, partition.spec
            )));
        }
        Ok(partition)
    }

    /// Removes a partition of an external table from the catalog (its files stay).
    pub async fn drop_external_partition(
        &self,
        record: &TableRecord,
        values: &[String],
    ) -> Result<(), LakeError> {
        let spec = partition_spec(record, values);
        if !self
            .meta
            .catalog()
            .delete_partition(&record.id, &spec)
            .await?
        {
            return Err(LakeError::NoSuchPartition(format!(
                "{}.{} has no partition {spec}",
                record.database, record.name
            )));
        }
        Ok(())
    }
}

/// `key=value/key=value`, as Hive and the crawler name a partition.
pub fn partition_spec(record: &TableRecord, values: &[String]) -> String {
    record
        .partition_keys
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{}={v}", k.name))
        .collect::<Vec<_>>()
        .join("/")
}
