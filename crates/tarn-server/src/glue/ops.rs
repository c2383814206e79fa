//! One function per Glue operation tarn serves; [`run`] dispatches by name.

use super::expression;
use super::shapes::{self, text};
use super::{page, GlueError};
use crate::access::Access;
use crate::App;
use serde_json::{json, Value};
use tarn_config::{Action, Resource};
use tarn_lake::TableRecord;

/// Partitions one `BatchCreatePartition` or `BatchGetPartition` takes (Glue's limits).
const BATCH_CREATE: usize = 100;
const BATCH_GET: usize = 1000;

/// Who calls which operation, on which app.
pub(crate) struct Caller<'a> {
    pub app: &'a App,
    pub access: &'a Access,
    pub op: &'a str,
}

impl Caller<'_> {
    /// Refuses (recorded) unless `action` on `resource` is granted.
    async fn require(&self, action: Action, resource: Resource) -> Result<(), GlueError> {
        let path = format!("/ AWSGlue.{}", self.op);
        self.access
            .check(self.app, action, resource, axum::http::Method::POST, &path)
            .await
            .map_err(GlueError::denied)
    }

    /// Whether the caller may read anything of `database` (the zone, or a table in it).
    fn sees(&self, database: &tarn_lake::DatabaseRecord) -> bool {
        self.access.grants.reaches(
            Action::Read,
            &Resource::zone(&database.domain, &database.layer),
        )
    }
}

/// The resource of `table` of `database`'s zone.
fn resource_of(app: &App, database: &str, table: &str) -> Result<Resource, GlueError> {
    let zone = app.lake.zone_of_database(database)?;
    Ok(Resource::table(&zone.domain, &zone.layer, table))
}

pub(crate) async fn run(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    match c.op {
        "GetDatabase" => get_database(c, input).await,
        "GetDatabases" => get_databases(c, input).await,
        "CreateDatabase" => create_database(c, input).await,
        "GetTable" => get_table(c, input).await,
        "GetTables" => get_tables(c, input).await,
        "GetTableVersion" => get_table_version(c, input).await,
        "GetTableVersions" => get_table_versions(c, input).await,
        "SearchTables" => search_tables(c, input).await,
        "CreateTable" => create_table(c, input).await,
        "UpdateTable" => update_table(c, input).await,
        "DeleteTable" => delete_table(c, input).await,
        "GetPartition" => get_partition(c, input).await,
        "GetPartitions" => get_partitions(c, input).await,
        "BatchGetPartition" => batch_get_partition(c, input).await,
        "CreatePartition" => create_partition(c, input).await,
        "BatchCreatePartition" => batch_create_partition(c, input).await,
        "DeletePartition" => delete_partition(c, input).await,
        "GetConnections" => Ok(json!({"ConnectionList": []})),
        "GetUserDefinedFunctions" => Ok(json!({"UserDefinedFunctions": []})),
        other => Err(GlueError::new(
            "UnknownOperationException",
            format!(
                "tarn does not serve Glue's {other}; it serves {}",
                SERVED.join(", ")
            ),
        )),
    }
}

/// The operations served, for the refusal of any other.
pub(crate) const SERVED: &[&str] = &[
    "GetDatabase",
    "GetDatabases",
    "CreateDatabase",
    "GetTable",
    "GetTables",
    "GetTableVersion",
    "GetTableVersions",
    "SearchTables",
    "CreateTable",
    "UpdateTable",
    "DeleteTable",
    "GetPartition",
    "GetPartitions",
    "BatchGetPartition",
    "CreatePartition",
    "BatchCreatePartition",
    "DeletePartition",
    "GetConnections",
    "GetUserDefinedFunctions",
];

/// The databases Spark's and Hive's Glue clients look for (and create when missing) as they
/// start: they exist, always empty, so a client starts without a write (the Aporia seed's
/// policy grants `CreateDatabase` on exactly these). tarn's own databases are its zones.
pub(crate) const SPARK_DATABASES: [&str; 2] = ["default", "global_temp"];

async fn get_database(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let app = c.app;
    let name = text(input, "Name")?;
    if SPARK_DATABASES.contains(&name) {
        return Ok(json!({"Database": shapes::spark_database(name)}));
    }
    let found = app
        .lake
        .catalog()
        .databases()
        .await?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| GlueError::not_found(format!("Database {name} not found.")))?;
    if !c.sees(&found) {
        c.require(Action::Read, Resource::zone(&found.domain, &found.layer))
            .await?;
    }
    Ok(json!({"Database": shapes::database(&found)}))
}

async fn get_databases(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let app = c.app;
    let mut dbs = app.lake.catalog().databases().await?;
    // Only the databases the caller may read something of.
    dbs.retain(|d| c.sees(d));
    dbs.sort_by(|a, b| a.name.cmp(&b.name));
    let (dbs, next) = page(dbs, |d| d.name.clone(), input, 100, 100)?;
    Ok(with_next(
        json!({"DatabaseList": dbs.iter().map(shapes::database).collect::<Vec<_>>()}),
        next,
    ))
}

/// Changes nothing: Spark's databases and the zones exist already (Glue's
/// `AlreadyExistsException`, which Spark's client takes as done); any other name needs a
/// domain declared in tarn.yml, which only an admin of the whole lake is told how to add.
async fn create_database(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let app = c.app;
    let db = input
        .get("DatabaseInput")
        .ok_or_else(|| GlueError::invalid("DatabaseInput is required"))?;
    let name = text(db, "Name").map_err(|e| e.within("DatabaseInput"))?;
    if SPARK_DATABASES.contains(&name) {
        return Err(GlueError::new(
            "AlreadyExistsException",
            format!("Database {name} already exists."),
        ));
    }
    let zone = app.lake.zone_of_database(name);
    let resource = match &zone {
        Ok(z) => Resource::zone(&z.domain, &z.layer),
        Err(_) => Resource::Lake,
    };
    c.require(Action::Write, resource).await?;
    match zone {
        Ok(_) => Err(GlueError::new(
            "AlreadyExistsException",
            format!("Database {name} already exists (it is a zone of this lake)."),
        )),
        Err(_) => Err(GlueError::invalid(format!(
            "tarn's databases are its zones, DOMAIN_LAYER; `{name}` is none of them. Declare the domain in tarn.yml's domains: (its zones then exist in every layer)"
        ))),
    }
}

/// The catalogued table `Name` (or `TableName`) of `DatabaseName`, which the caller may do
/// `action` on.
async fn table_of(
    c: &Caller<'_>,
    input: &Value,
    field: &str,
    action: Action,
) -> Result<TableRecord, GlueError> {
    let app = c.app;
    let database = text(input, "DatabaseName")?;
    let name = text(input, field)?.to_lowercase();
    c.require(action, resource_of(app, database, &name)?)
        .await?;
    find_table(app, input, field).await
}

/// The catalogued table `Name` (or `TableName`) of `DatabaseName`.
async fn find_table(app: &App, input: &Value, field: &str) -> Result<TableRecord, GlueError> {
    let database = text(input, "DatabaseName")?;
    let name = text(input, field)?.to_lowercase();
    let zone = app.lake.zone_of_database(database)?;
    app.lake
        .catalog()
        .table(database, &name)
        .await?
        .ok_or_else(|| {
            GlueError::not_found(format!(
                "Table {name} not found in database {database} (tarn table {}.{}.{name}).",
                zone.domain, zone.layer
            ))
        })
}

async fn get_table(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let t = table_of(c, input, "Name", Action::Read).await?;
    Ok(json!({"Table": shapes::table(&t, None)}))
}

/// A table-name pattern of `GetTables`: a regular expression over the whole name (`*` alone
/// stands for any run, as Hive's and moto's patterns allow).
fn name_pattern(expr: &str) -> Result<regex::Regex, GlueError> {
    let mut re = String::new();
    let mut prev = None;
    for c in expr.chars() {
        if c == '*' && prev != Some('.') {
            re.push('.');
        }
        re.push(c);
        prev = Some(c);
    }
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| GlueError::invalid(format!("Expression `{expr}` is not a pattern: {e}")))
}

async fn tables_of(app: &App, database: &str) -> Result<Vec<TableRecord>, GlueError> {
    app.lake.zone_of_database(database)?;
    let mut tables: Vec<TableRecord> = app
        .lake
        .catalog()
        .tables()
        .await?
        .into_iter()
        .filter(|t| t.database == database)
        .collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tables)
}

async fn get_tables(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let database = text(input, "DatabaseName")?;
    if SPARK_DATABASES.contains(&database) {
        return Ok(json!({"TableList": []}));
    }
    let zone = c.app.lake.zone_of_database(database)?;
    let mut tables = tables_of(c.app, database).await?;
    tables.retain(|t| c.access.reads_table(&zone.domain, &zone.layer, &t.name));
    if let Some(expr) = input.get("Expression").and_then(Value::as_str) {
        let re = name_pattern(expr)?;
        tables.retain(|t| re.is_match(&t.name));
    }
    let (tables, next) = page(tables, |t| t.name.clone(), input, 100, 100)?;
    Ok(with_next(
        json!({"TableList": tables.iter().map(|t| shapes::table(t, None)).collect::<Vec<_>>()}),
        next,
    ))
}

async fn versions(app: &App, t: &TableRecord) -> Result<Vec<tarn_lake::TableVersion>, GlueError> {
    Ok(app.lake.catalog().table_versions(&t.id).await?)
}

async fn get_table_versions(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let t = table_of(c, input, "TableName", Action::Read).await?;
    let all = versions(c.app, &t).await?;
    let (all, next) = page(all, |v| format!("{:020}", v.version), input, 100, 100)?;
    Ok(with_next(
        json!({"TableVersions": all.iter().map(|v| json!({"Table": shapes::table(&t, Some(v)), "VersionId": v.version.to_string()})).collect::<Vec<_>>()}),
        next,
    ))
}

async fn get_table_version(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let app = c.app;
    let t = table_of(c, input, "TableName", Action::Read).await?;
    let wanted = match input.get("VersionId").and_then(Value::as_str) {
        None => t.version,
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| GlueError::invalid(format!("VersionId `{v}` is not a number")))?,
    };
    let v = versions(app, &t)
        .await?
        .into_iter()
        .find(|v| v.version == wanted)
        .ok_or_else(|| {
            GlueError::not_found(format!("Table {} has no version {wanted}.", t.name))
        })?;
    Ok(
        json!({"TableVersion": {"Table": shapes::table(&t, Some(&v)), "VersionId": wanted.to_string()}}),
    )
}

async fn search_tables(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let app = c.app;
    let dbs = app.lake.catalog().databases().await?;
    let mut tables: Vec<TableRecord> = app
        .lake
        .catalog()
        .tables()
        .await?
        .into_iter()
        .filter(|t| {
            dbs.iter()
                .any(|d| d.name == t.database && c.access.reads_table(&d.domain, &d.layer, &t.name))
        })
        .collect();
    if let Some(needle) = input.get("SearchText").and_then(Value::as_str) {
        let needle = needle.to_lowercase();
        tables.retain(|t| {
            t.name.to_lowercase().contains(&needle)
                || t.database.to_lowercase().contains(&needle)
                || t.columns
                    .iter()
                    .any(|c| c.name.to_lowercase().contains(&needle))
                || t.parameters
                    .values()
                    .any(|v| v.to_lowercase().contains(&needle))
        });
    }
    for (i, f) in input
        .get("Filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = text(f, "Key").map_err(|e| e.within(&format!("Filters[{i}]")))?;
        let value = text(f, "Value").map_err(|e| e.within(&format!("Filters[{i}]")))?;
        let comparator = f
            .get("Comparator")
            .and_then(Value::as_str)
            .unwrap_or("EQUALS");
        let field = |t: &TableRecord| -> Option<String> {
            match key {
                "DatabaseName" => Some(t.database.clone()),
                "Name" | "TableName" => Some(t.name.clone()),
                "Location" => Some(t.location.clone()),
                "UpdateTime" => Some(t.updated_at.clone()),
                "CreateTime" => Some(t.created_at.clone()),
                // Any other key is one of the parameters Glue answers for the table.
                other => shapes::parameters(t)
                    .get(other)
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }
        };
        let keep = |actual: &str| -> Result<bool, GlueError> {
            Ok(match comparator {
                "EQUALS" => actual == value,
                "GREATER_THAN" => actual > value,
                "LESS_THAN" => actual < value,
                "GREATER_THAN_EQUALS" => actual >= value,
                "LESS_THAN_EQUALS" => actual <= value,
                other => {
                    return Err(GlueError::invalid(format!(
                        "Filters[{i}].Comparator `{other}` is none of EQUALS, GREATER_THAN, LESS_THAN, GREATER_THAN_EQUALS, LESS_THAN_EQUALS"
                    )))
                }
            })
        };
        let mut kept = Vec::new();
        for t in tables {
            if let Some(actual) = field(&t) {
                if keep(&actual)? {
                    kept.push(t);
                }
            }
        }
        tables = kept;
    }
    // Sorted as asked (Name by default), then by database and name so pages are stable.
    let sort = input
        .get("SortCriteria")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .cloned()
        .unwrap_or(Value::Null);
    let by = sort
        .get("FieldName")
        .and_then(Value::as_str)
        .unwrap_or("Name");
    let descending = sort.get("Sort").and_then(Value::as_str) == Some("DESC");
    let sort_key = |t: &TableRecord| -> String {
        match by {
            "DatabaseName" => t.database.clone(),
            "UpdateTime" => t.updated_at.clone(),
            "CreateTime" => t.created_at.clone(),
            _ => t.name.clone(),
        }
    };
    if !matches!(by, "Name" | "DatabaseName" | "UpdateTime" | "CreateTime") {
        return Err(GlueError::invalid(format!(
            "SortCriteria.FieldName `{by}` is none of Name, DatabaseName, UpdateTime, CreateTime"
        )));
    }
    tables.sort_by(|a, b| {
        let o = sort_key(a).cmp(&sort_key(b));
        let o = if descending { o.reverse() } else { o };
        o.then_with(|| (&a.database, &a.name).cmp(&(&b.database, &b.name)))
    });
    // The page token is the position in this order (as Glue's, only good for the same search).
    let ranked: Vec<(usize, TableRecord)> = tables.into_iter().enumerate().collect();
    let (ranked, next) = page(ranked, |(i, _)| format!("{i:020}"), input, 100, 1000)?;
    Ok(with_next(
        json!({"TableList": ranked.iter().map(|(_, t)| shapes::table(t, None)).collect::<Vec<_>>()}),
        next,
    ))
}

/// A table input the caller may write.
async fn writable_input(c: &Caller<'_>, input: &Value) -> Result<tarn_lake::TableDraft, GlueError> {
    let draft = shapes::table_input(input)?;
    c.require(
        Action::Write,
        resource_of(c.app, &draft.database, &draft.name)?,
    )
    .await?;
    Ok(draft)
}

async fn create_table(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let draft = writable_input(c, input).await?;
    c.app.lake.create_external_table(&draft).await?;
    Ok(json!({}))
}

async fn update_table(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let draft = writable_input(c, input).await?;
    c.app.lake.update_external_table(&draft).await?;
    Ok(json!({}))
}

async fn delete_table(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let database = text(input, "DatabaseName")?;
    let name = text(input, "Name")?.to_lowercase();
    c.require(Action::Write, resource_of(c.app, database, &name)?)
        .await?;
    c.app.lake.drop_external_table(database, &name).await?;
    Ok(json!({}))
}

async fn partitions_of(app: &App, t: &TableRecord) -> Result<Vec<tarn_lake::Partition>, GlueError> {
    Ok(app.lake.catalog().partitions(&t.id).await?)
}

async fn get_partition(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let t = table_of(c, input, "TableName", Action::Read).await?;
    let values = shapes::values(input.get("PartitionValues"), "PartitionValues")?;
    let p = partitions_of(c.app, &t)
        .await?
        .into_iter()
        .find(|p| p.values == values)
        .ok_or_else(|| GlueError::not_found("Cannot find partition."))?;
    Ok(json!({"Partition": shapes::partition(&t, &p)}))
}

/// A stable 64-bit hash of a partition's spec, for `Segment`.
fn segment_of(spec: &str, total: u64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in spec.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h % total
}

async fn get_partitions(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let t = table_of(c, input, "TableName", Action::Read).await?;
    let mut all = partitions_of(c.app, &t).await?;
    if let Some(expr) = input
        .get("Expression")
        .and_then(Value::as_str)
        .filter(|e| !e.trim().is_empty())
    {
        let filter = expression::parse(expr)
            .map_err(|e| GlueError::invalid(format!("Expression `{expr}`: {e}")))?;
        for k in filter.keys() {
            if !t
                .partition_keys
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(k))
            {
                return Err(GlueError::invalid(format!(
                    "Expression `{expr}`: `{k}` is not a partition key of {} (its keys: {})",
                    t.name,
                    t.partition_keys
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let mut kept = Vec::new();
        for p in all {
            let value = |k: &str| {
                t.partition_keys
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(k))
                    .and_then(|i| {
                        Some((
                            p.values.get(i)?.as_str(),
                            t.partition_keys[i].data_type.as_str(),
                        ))
                    })
            };
            if filter
                .holds(&value)
                .map_err(|e| GlueError::invalid(format!("Expression `{expr}`: {e}")))?
            {
                kept.push(p);
            }
        }
        all = kept;
    }
    if let Some(seg) = input.get("Segment").filter(|s| !s.is_null()) {
        let n = seg.get("SegmentNumber").and_then(Value::as_u64);
        let total = seg.get("TotalSegments").and_then(Value::as_u64);
        let (Some(n), Some(total)) = (n, total) else {
            return Err(GlueError::invalid(
                "Segment needs SegmentNumber and TotalSegments",
            ));
        };
        if !(1..=10).contains(&total) || n >= total {
            return Err(GlueError::invalid(format!(
                "Segment {n} of {total}: TotalSegments is 1 to 10 and SegmentNumber below it"
            )));
        }
        all.retain(|p| segment_of(&p.spec, total) == n);
    }
    let (all, next) = page(all, |p| p.spec.clone(), input, 1000, 1000)?;
    Ok(with_next(
        json!({"Partitions": all.iter().map(|p| shapes::partition(&t, p)).collect::<Vec<_>>()}),
        next,
    ))
}

async fn batch_get_partition(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let app = c.app;
    let t = table_of(c, input, "TableName", Action::Read).await?;
    let wanted = input
        .get("PartitionsToGet")
        .and_then(Value::as_array)
        .ok_or_else(|| GlueError::invalid("PartitionsToGet is required"))?;
    at_most(wanted.len(), BATCH_GET, "PartitionsToGet")?;
    let all = partitions_of(app, &t).await?;
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for (i, w) in wanted.iter().enumerate() {
        let values = shapes::values(w.get("Values"), &format!("PartitionsToGet[{i}].Values"))?;
        match all.iter().find(|p| p.values == values) {
            Some(p) => found.push(shapes::partition(&t, p)),
            None => missing.push(json!({"Values": values})),
        }
    }
    Ok(json!({"Partitions": found, "UnprocessedKeys": missing}))
}

async fn create_partition(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let app = c.app;
    let t = writable_table(c, input).await?;
    let (values, location) = shapes::partition_input(
        input
            .get("PartitionInput")
            .ok_or_else(|| GlueError::invalid("PartitionInput is required"))?,
    )?;
    app.lake
        .add_external_partition(&t, &values, &location)
        .await?;
    Ok(json!({}))
}

async fn batch_create_partition(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let app = c.app;
    let t = writable_table(c, input).await?;
    let list = input
        .get("PartitionInputList")
        .and_then(Value::as_array)
        .ok_or_else(|| GlueError::invalid("PartitionInputList is required"))?;
    at_most(list.len(), BATCH_CREATE, "PartitionInputList")?;
    let mut errors = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let outcome = match shapes::partition_input(p) {
            Ok((values, location)) => app
                .lake
                .add_external_partition(&t, &values, &location)
                .await
                .map_err(GlueError::from)
                .map_err(|e| (values, e)),
            Err(e) => Err((Vec::new(), e.within(&format!("PartitionInputList[{i}]")))),
        };
        if let Err((values, e)) = outcome {
            errors.push(json!({"PartitionValues": values, "ErrorDetail": {"ErrorCode": e.kind, "ErrorMessage": e.message}}));
        }
    }
    Ok(if errors.is_empty() {
        json!({})
    } else {
        json!({"Errors": errors})
    })
}

async fn delete_partition(c: &Caller<'_>, input: &Value) -> Result<Value, GlueError> {
    let app = c.app;
    let t = writable_table(c, input).await?;
    let values = shapes::values(input.get("PartitionValues"), "PartitionValues")?;
    app.lake.drop_external_partition(&t, &values).await?;
    Ok(json!({}))
}

/// Refuses a batch of more than `most` partitions, as Glue does.
fn at_most(len: usize, most: usize, field: &str) -> Result<(), GlueError> {
    if len > most {
        return Err(GlueError::new(
            "ValidationException",
            format!("{field} holds {len} partitions; Glue takes at most {most} a call"),
        ));
    }
    Ok(())
}

/// The external table `TableName` of `DatabaseName`, which the caller may write.
async fn writable_table(c: &Caller<'_>, input: &Value) -> Result<TableRecord, GlueError> {
    let t = table_of(c, input, "TableName", Action::Write).await?;
    Ok(c.app.lake.external_table(&t.database, &t.name).await?)
}

fn with_next(mut answer: Value, next: Option<String>) -> Value {
    if let (Some(n), Value::Object(m)) = (next, &mut answer) {
        m.insert("NextToken".into(), Value::String(n));
    }
    answer
}
