//! The crawler: walks zones, groups objects into tables, infers and merges schemas, turns
//! `key=value` folders into partitions, and registers or evolves catalog tables. Only new or
//! changed objects are read on later runs; a bad file is reported and skipped, never fatal.

use crate::CatalogError;
use object_store::ObjectStoreExt;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tarn_formats::{classify, widen_type, Classified, SAMPLE_BYTES};
use tarn_metadata::{Column, CrawledObject, Partition, Store, TableChange, TableDraft};
use tarn_storage::{ObjectInfo, Zone, Zones};

/// What a crawl did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CrawlReport {
    pub tables: Vec<TableOutcome>,
    pub skipped: Vec<SkippedFile>,
    /// Objects already catalogued and unchanged since the last crawl.
    pub unchanged_files: usize,
}

impl CrawlReport {
    pub fn count(&self, change: TableChange) -> usize {
        self.tables.iter().filter(|t| t.change == change).count()
    }
}

/// One table the crawl looked at.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TableOutcome {
    /// `domain.layer.table`.
    pub table: String,
    pub change: TableChange,
    pub format: String,
    pub files_read: usize,
    pub partitions: usize,
    /// What changed in the schema, when it changed.
    pub detail: Option<String>,
}

/// A file the crawl could not use, with why.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SkippedFile {
    pub zone: String,
    pub key: String,
    pub reason: String,
}

/// Crawls the given zones.
pub async fn crawl(
    zones: &Zones,
    meta: &Store,
    scope: &[Zone],
) -> Result<CrawlReport, CatalogError> {
    let mut report = CrawlReport::default();
    for zone in scope {
        crawl_zone(zones, meta, zone, &mut report).await?;
    }
    Ok(report)
}

/// Objects grouped under one table folder.
struct Group {
    folder: String,
    objects: Vec<ObjectInfo>,
}

fn is_hidden(key: &str) -> bool {
    key.split('/')
        .any(|s| s.starts_with('_') || s.starts_with('.'))
}

fn is_partition_segment(s: &str) -> Option<(&str, &str)> {
    s.split_once('=').filter(|(k, _)| !k.is_empty())
}

/// The table folder of a key: its folders up to the first `key=value` folder. Files at the
/// zone root are tables of their own.
fn table_folder(key: &str) -> String {
    let segs: Vec<&str> = key.split('/').collect();
    let folders = &segs[..segs.len() - 1];
    let table: Vec<&str> = folders
        .iter()
        .take_while(|s| is_partition_segment(s).is_none())
        .copied()
        .collect();
    if table.is_empty() && folders.is_empty() {
        key.to_string()
    } else {
        table.join("/")
    }
}

/// A catalog name for a folder or root file: `a/b` becomes `a_b`, extensions dropped.
pub(crate) fn table_name(folder: &str) -> String {
    let base = if !folder.contains('/') {
        folder.split('.').next().unwrap_or(folder)
    } else {
        folder
    };
    let mut name = tarn_formats::sanitize_column(&base.replace('/', "_"));
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("t_{name}");
    }
    name
}

async fn crawl_zone(
    zones: &Zones,
    meta: &Store,
    zone: &Zone,
    report: &mut CrawlReport,
) -> Result<(), CatalogError> {
    let database = meta
        .catalog()
        .ensure_database(&zone.domain, &zone.layer, &zones.url_of(&zone.root()))
        .await?;
    let objects = zones.list(zone, "").await?;

    // Delta tables first: their folders are one table each, whatever files they hold.
    let delta_roots: BTreeSet<String> = objects
        .iter()
        .filter_map(|o| {
            o.key
                .split_once("/_delta_log/")
                .map(|(root, _)| root.to_string())
        })
        .collect();
    for root in &delta_roots {
        crawl_delta(zones, meta, zone, &database, root, report).await?;
    }

    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for o in objects {
        if delta_roots
            .iter()
            .any(|r| o.key.starts_with(&format!("{r}/")))
            || is_hidden(&o.key)
        {
            continue;
        }
        let folder = table_folder(&o.key);
        groups
            .entry(folder.clone())
            .or_insert_with(|| Group {
                folder,
                objects: vec![],
            })
            .objects
            .push(o);
    }

    // Two folders or root files that would make one table name (`airlines` and
    // `airlines.csv`, `a_b/` and `a/b/`) never silently share it: the one the catalog already
    // holds (else the first by key) is the table, the others are reported.
    let mut by_name: BTreeMap<String, Vec<Group>> = BTreeMap::new();
    for group in groups.into_values() {
        by_name
            .entry(table_name(&group.folder))
            .or_default()
            .push(group);
    }
    for (name, mut claimants) in by_name {
        if claimants.len() > 1 {
            let held = meta
                .catalog()
                .table(&database, &name)
                .await?
                .map(|t| t.location);
            if let Some(location) = held {
                if let Some(i) = claimants.iter().position(|g| {
                    let url = zones.url_of(&zone.path(&g.folder));
                    location == url || location == format!("{url}/")
                }) {
                    claimants.swap(0, i);
                }
            }
            let keeper = claimants[0].folder.clone();
            for other in claimants.drain(1..) {
                let reason = format!(
                    "`{}` and `{keeper}` both make table {}.{}.{name}; `{keeper}` is the table: rename `{}` or move it into a folder of its own",
                    other.folder, zone.domain, zone.layer, other.folder
                );
                for o in &other.objects {
                    skip(meta, zone, o, &reason, report).await?;
                }
            }
        }
        for group in claimants {
            crawl_group(zones, meta, zone, &database, group, report).await?;
        }
    }
    Ok(())
}

fn etag_of(o: &ObjectInfo) -> String {
    format!("{}:{}", o.e_tag.clone().unwrap_or_default(), o.size)
}

async fn crawl_group(
    zones: &Zones,
    meta: &Store,
    zone: &Zone,
    database: &str,
    group: Group,
    report: &mut CrawlReport,
) -> Result<(), CatalogError> {
    let name = table_name(&group.folder);
    let address = format!("{}.{}.{name}", zone.domain, zone.layer);
    let existing = meta.catalog().table(database, &name).await?;

    let mut fresh = Vec::new();
    for o in &group.objects {
        let seen = meta.catalog().crawled_object(&zone.name(), &o.key).await?;
        match seen {
            Some(s) if s.etag == etag_of(o) && existing.is_some() => report.unchanged_files += 1,
            _ => fresh.push(o.clone()),
        }
    }
    if fresh.is_empty() {
        if let Some(t) = existing {
            report.tables.push(TableOutcome {
                table: address,
                change: TableChange::Unchanged,
                format: t.format,
                files_read: 0,
                partitions: meta.catalog().partitions(&t.id).await?.len(),
                detail: None,
            });
        }
        return Ok(());
    }

    // Classify each new or changed object; a bad one is reported and the crawl goes on.
    let mut classified: Vec<(ObjectInfo, Classified)> = Vec::new();
    for o in fresh {
        let path = zone.path(&o.key);
        let bytes = if o.size as usize <= SAMPLE_BYTES {
            zones.store().get(&path).await?.bytes().await?
        } else {
            let head = zones.store().get_range(&path, 0..4).await?;
            if head.as_ref() == b"PAR1" {
                zones.store().get(&path).await?.bytes().await?
            } else {
                zones
                    .store()
                    .get_range(&path, 0..SAMPLE_BYTES as u64)
                    .await?
            }
        };
        match classify(&o.key, &bytes) {
            Ok(c) => classified.push((o, c)),
            Err(e) => {
                let reason = e.reason().to_string();
                skip(meta, zone, &o, &reason, report).await?;
            }
        }
    }
    if classified.is_empty() {
        return Ok(());
    }

    // One format per table: the table's own, or the most common among the new files.
    let format = match &existing {
        Some(t) => t.format.clone(),
        None => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, c) in &classified {
                *counts.entry(c.format.as_str()).or_default() += 1;
            }
            counts
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(f, _)| f.to_string())
                .unwrap_or_default()
        }
    };
    let mut columns: Vec<Column> = existing
        .as_ref()
        .map(|t| t.columns.clone())
        .unwrap_or_default();
    let mut parameters = existing
        .as_ref()
        .map(|t| t.parameters.clone())
        .unwrap_or_default();
    let mut changes: Vec<String> = Vec::new();
    let mut used = Vec::new();
    for (o, c) in classified {
        if c.format != format {
            let reason = format!(
                "its format is {} but table {address} holds {format} files",
                c.format
            );
            skip(meta, zone, &o, &reason, report).await?;
            continue;
        }
        if format == "csv" {
            if let (Some(d), Some(nd)) =
                (parameters.get("delimiter"), c.parameters.get("delimiter"))
            {
                if d != nd {
                    let reason = format!("its delimiter `{nd}` differs from the table's `{d}`");
                    skip(meta, zone, &o, &reason, report).await?;
                    continue;
                }
            }
        }
        for (k, v) in &c.parameters {
            if k != "recordCount" {
                parameters.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let found: Vec<Column> = c
            .columns
            .iter()
            .map(|f| Column {
                name: f.name.clone(),
                data_type: f.data_type.clone(),
                nullable: f.nullable,
            })
            .collect();
        merge_columns(&mut columns, &found, &mut changes);
        used.push(o);
    }
    if used.is_empty() {
        return Ok(());
    }

    // Partition keys come from `key=value` folders below the table folder.
    let mut partition_keys: Vec<Column> = existing
        .as_ref()
        .map(|t| t.partition_keys.clone())
        .unwrap_or_default();
    let mut partitions: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for o in &used {
        let rest = if group.folder == o.key {
            ""
        } else {
            o.key
                .strip_prefix(&format!("{}/", group.folder))
                .unwrap_or(&o.key)
        };
        let segs: Vec<(String, String)> = rest
            .split('/')
            .filter_map(is_partition_segment)
            .map(|(k, v)| (tarn_formats::sanitize_column(k), v.to_string()))
            .collect();
        if !segs.is_empty() {
            let spec = segs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("/");
            partitions.insert(spec, segs);
        }
    }
    for segs in partitions.values() {
        for (k, v) in segs {
            let kind = tarn_formats::Kind::of(v).name().to_string();
            match partition_keys.iter_mut().find(|c| &c.name == k) {
                Some(c) => {
                    let w = widen_type(&c.data_type, &kind);
                    if w != c.data_type {
                        changes.push(format!("partition key {k} widened {} -> {w}", c.data_type));
                        c.data_type = w;
                    }
                }
                None => {
                    changes.push(format!("partition key {k} ({kind})"));
                    partition_keys.push(Column::new(k.clone(), kind));
                }
            }
        }
    }
    // A partition key is not also a data column.
    columns.retain(|c| !partition_keys.iter().any(|p| p.name == c.name));

    // A file at the zone's root is a table of its own, with or without an extension; a
    // folder is a table of every file under it.
    let root_file = !group.folder.contains('/')
        && group.objects.len() == 1
        && group.objects[0].key == group.folder;
    let folder_path = if !root_file {
        format!("{}/", zones.url_of(&zone.path(&group.folder)))
    } else {
        zones.url_of(&zone.path(&group.folder))
    };
    let draft = TableDraft {
        database: database.to_string(),
        name: name.clone(),
        location: folder_path.clone(),
        format: format.clone(),
        columns,
        partition_keys,
        parameters,
    };
    let reason = if existing.is_none() {
        "created by crawler".to_string()
    } else {
        format!("crawler: {}", changes.join("; "))
    };
    let (table, change) = meta.catalog().put_table(&draft, &reason).await?;
    for (spec, segs) in &partitions {
        meta.catalog()
            .put_partition(
                &table.id,
                &Partition {
                    spec: spec.clone(),
                    values: segs.iter().map(|(_, v)| v.clone()).collect(),
                    location: format!("{}{spec}/", folder_path),
                },
            )
            .await?;
    }
    for o in &used {
        catalogued(meta, zone, &o.key, etag_of(o), &table.id).await?;
    }
    report.tables.push(TableOutcome {
        table: address,
        change,
        format,
        files_read: used.len(),
        partitions: meta.catalog().partitions(&table.id).await?.len(),
        detail: (change == TableChange::Updated).then(|| changes.join("; ")),
    });
    Ok(())
}

/// Adds new columns and widens types, noting each change.
fn merge_columns(columns: &mut Vec<Column>, new: &[Column], changes: &mut Vec<String>) {
    for c in new {
        match columns.iter_mut().find(|x| x.name == c.name) {
            Some(x) => {
                let w = widen_type(&x.data_type, &c.data_type);
                if w != x.data_type {
                    changes.push(format!("{} widened {} -> {w}", c.name, x.data_type));
                    x.data_type = w;
                }
            }
            None => {
                changes.push(format!("new column {} ({})", c.name, c.data_type));
                columns.push(c.clone());
            }
        }
    }
}

/// Remembers that an object (or a Delta log) was catalogued into a table.
async fn catalogued(
    meta: &Store,
    zone: &Zone,
    key: &str,
    etag: String,
    table_id: &str,
) -> Result<(), CatalogError> {
    let seen = CrawledObject {
        etag,
        table_id: Some(table_id.to_string()),
        outcome: "catalogued".into(),
    };
    Ok(meta
        .catalog()
        .record_crawled(&zone.name(), key, &seen)
        .await?)
}

async fn skip(
    meta: &Store,
    zone: &Zone,
    o: &ObjectInfo,
    reason: &str,
    report: &mut CrawlReport,
) -> Result<(), CatalogError> {
    tracing::warn!(zone = %zone.name(), key = %o.key, reason, "crawler skipped a file");
    meta.catalog()
        .record_crawled(
            &zone.name(),
            &o.key,
            &CrawledObject {
                etag: etag_of(o),
                table_id: None,
                outcome: format!("skipped: {reason}"),
            },
        )
        .await?;
    report.skipped.push(SkippedFile {
        zone: zone.name(),
        key: o.key.clone(),
        reason: reason.to_string(),
    });
    Ok(())
}

async fn crawl_delta(
    zones: &Zones,
    meta: &Store,
    zone: &Zone,
    database: &str,
    root: &str,
    report: &mut CrawlReport,
) -> Result<(), CatalogError> {
    let name = table_name(root);
    let address = format!("{}.{}.{name}", zone.domain, zone.layer);
    let log = zones.list(zone, &format!("{root}/_delta_log/")).await?;
    let commits: Vec<&ObjectInfo> = log.iter().filter(|o| o.key.ends_with(".json")).collect();
    let Some(latest) = commits.last() else {
        return Ok(());
    };
    let marker = etag_of(latest);
    let log_key = format!("{root}/_delta_log");
    if let Some(seen) = meta
        .catalog()
        .crawled_object(&zone.name(), &log_key)
        .await?
    {
        if seen.etag == marker {
            report.unchanged_files += 1;
            report.tables.push(TableOutcome {
                table: address,
                change: TableChange::Unchanged,
                format: "delta".into(),
                files_read: 0,
                partitions: 0,
                detail: None,
            });
            return Ok(());
        }
    }
    let mut schema: Option<(Vec<Column>, Vec<Column>)> = None;
    let mut live: BTreeMap<String, i64> = BTreeMap::new();
    for c in &commits {
        let bytes = zones.read(zone, &c.key).await?;
        for line in String::from_utf8_lossy(&bytes).lines() {
            let Ok(action) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(md) = action.get("metaData") {
                schema = crate::delta::schema_of(md);
            }
            if let Some(add) = action.get("add") {
                let rows = add
                    .get("stats")
                    .and_then(|s| s.as_str())
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                    .and_then(|s| s.get("numRecords").and_then(|n| n.as_i64()))
                    .unwrap_or(-1);
                if let Some(p) = add.get("path").and_then(|p| p.as_str()) {
                    live.insert(p.to_string(), rows);
                }
            }
            if let Some(p) = action
                .get("remove")
                .and_then(|r| r.get("path"))
                .and_then(|p| p.as_str())
            {
                live.remove(p);
            }
        }
    }
    let Some((columns, partition_keys)) = schema else {
        let o = (*latest).clone();
        return skip(
            meta,
            zone,
            &o,
            "Delta log without a metaData action",
            report,
        )
        .await;
    };
    let existing = meta.catalog().table(database, &name).await?;
    let mut parameters = existing
        .as_ref()
        .map(|t| t.parameters.clone())
        .unwrap_or_default();
    parameters.insert("classification".into(), "delta".into());
    let draft = TableDraft {
        database: database.to_string(),
        name: name.clone(),
        location: zones.url_of(&zone.path(root)),
        format: "delta".into(),
        columns,
        partition_keys,
        parameters,
    };
    let (table, change) = meta
        .catalog()
        .put_table(&draft, "crawler: Delta log schema")
        .await?;
    if !live.values().any(|r| *r < 0) {
        meta.catalog()
            .set_row_count(&table.id, Some(live.values().sum()))
            .await?;
    }
    catalogued(meta, zone, &log_key, marker, &table.id).await?;
    report.tables.push(TableOutcome {
        table: address,
        change,
        format: "delta".into(),
        files_read: commits.len(),
        partitions: 0,
        detail: None,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_make_tables() {
        assert_eq!(table_folder("flights/year=2013/month=1/a.csv"), "flights");
        assert_eq!(table_folder("a.csv"), "a.csv");
        assert_eq!(table_folder("year=2013/a.csv"), "");
        assert_eq!(table_name("flights"), "flights");
        assert_eq!(table_name("a.csv.gz"), "a");
        assert_eq!(table_name("2013/x"), "t_2013_x");
    }
}
