//! The catalog as Glue describes it, and Glue's table input read back: databases, tables with
//! their `StorageDescriptor` (Hive types, the object store's URI, input/output formats and
//! SerDe per format), partitions, and table versions.

use super::GlueError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use tarn_lake::{Column, Partition, TableDraft, TableRecord};

/// The catalog id tarn answers with (one catalog per server; a request's own is ignored).
pub(crate) const CATALOG_ID: &str = "000000000000";

/// Seconds since the epoch, as the JSON 1.1 protocol sends timestamps.
pub(crate) fn epoch(rfc3339: &str) -> Value {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| json!(t.timestamp_micros() as f64 / 1e6))
        .unwrap_or(Value::Null)
}

pub(crate) fn database(d: &tarn_lake::DatabaseRecord) -> Value {
    json!({
        "Name": d.name,
        "Description": format!("tarn zone {}/{}", d.domain, d.layer),
        "LocationUri": d.location,
        "Parameters": {},
        "CreateTime": epoch(&d.created_at),
        "CreateTableDefaultPermissions": [],
        "CatalogId": CATALOG_ID,
    })
}

/// One of Spark's databases (`default`, `global_temp`): always there, always empty.
pub(crate) fn spark_database(name: &str) -> Value {
    json!({
        "Name": name,
        "Description": "Spark's database: tarn keeps no tables in it; its databases are its zones, DOMAIN_LAYER",
        "Parameters": {},
        "CreateTableDefaultPermissions": [],
        "CatalogId": CATALOG_ID,
    })
}

fn columns(cols: &[Column]) -> Value {
    Value::Array(
        cols.iter()
            .map(|c| json!({"Name": c.name, "Type": c.data_type}))
            .collect(),
    )
}

const TEXT_INPUT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const TEXT_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
const LAZY_SIMPLE: &str = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe";
const JSON_SERDE: &str = "org.openx.data.jsonserde.JsonSerDe";
const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const PARQUET_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";

/// A table's files as Glue describes them: `columns` (a version's, or the table's own) at
/// `location`.
fn storage(t: &TableRecord, cols: &[Column], location: &str) -> Value {
    let p = &t.parameters;
    let (input, output, serde, serde_params) = match t.format.as_str() {
        "csv" => (
            TEXT_INPUT,
            TEXT_OUTPUT,
            LAZY_SIMPLE,
            json!({"field.delim": p.get("delimiter").map(String::as_str).unwrap_or(",")}),
        ),
        "json" => (
            TEXT_INPUT,
            TEXT_OUTPUT,
            JSON_SERDE,
            json!({"paths": cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(",")}),
        ),
        "delta" => (
            PARQUET_INPUT,
            PARQUET_OUTPUT,
            PARQUET_SERDE,
            json!({"serialization.format": "1", "path": location}),
        ),
        _ => (
            PARQUET_INPUT,
            PARQUET_OUTPUT,
            PARQUET_SERDE,
            json!({"serialization.format": "1"}),
        ),
    };
    json!({
        "Columns": columns(cols),
        "Location": location,
        "InputFormat": input,
        "OutputFormat": output,
        "Compressed": p.get("compression").is_some_and(|c| c != "none"),
        "NumberOfBuckets": -1,
        "SerdeInfo": {"SerializationLibrary": serde, "Parameters": serde_params},
        "BucketColumns": [],
        "SortColumns": [],
        "Parameters": {},
        "StoredAsSubDirectories": false,
    })
}

/// The table's parameters as Glue's crawlers write them (`classification`, `recordCount`,
/// Delta's `table_type`), with tarn's own kept beside them.
pub(crate) fn parameters(t: &TableRecord) -> Value {
    let mut out: Map<String, Value> = t
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    out.insert("classification".into(), json!(t.format));
    if t.format == "csv" {
        let header = t.parameters.get("header").is_none_or(|h| h == "true");
        out.insert(
            "skip.header.line.count".into(),
            json!(if header { "1" } else { "0" }),
        );
    }
    if t.format == "delta" {
        out.insert("table_type".into(), json!("DELTA"));
        out.insert("spark.sql.sources.provider".into(), json!("delta"));
    }
    if let Some(n) = t.row_count {
        out.insert("recordCount".into(), json!(n.to_string()));
    }
    out.insert("typeOfData".into(), json!("file"));
    Value::Object(out)
}

/// A table as `GetTable` answers it; `version` gives an older schema.
pub(crate) fn table(t: &TableRecord, version: Option<&tarn_lake::TableVersion>) -> Value {
    let (cols, keys, version_id) = match version {
        Some(v) => (&v.columns, &v.partition_keys, v.version),
        None => (&t.columns, &t.partition_keys, t.version),
    };
    json!({
        "Name": t.name,
        "DatabaseName": t.database,
        "CreateTime": epoch(&t.created_at),
        "UpdateTime": epoch(version.map(|v| v.created_at.as_str()).unwrap_or(&t.updated_at)),
        "Retention": 0,
        "StorageDescriptor": storage(t, cols, &t.location),
        "PartitionKeys": columns(keys),
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters(t),
        "CreatedBy": "tarn",
        "IsRegisteredWithLakeFormation": false,
        "CatalogId": CATALOG_ID,
        "VersionId": version_id.to_string(),
    })
}

pub(crate) fn partition(t: &TableRecord, p: &Partition) -> Value {
    json!({
        "Values": p.values,
        "DatabaseName": t.database,
        "TableName": t.name,
        "CreationTime": epoch(&t.created_at),
        "StorageDescriptor": storage(t, &t.columns, &p.location),
        "Parameters": {},
        "CatalogId": CATALOG_ID,
    })
}

/// Reads a string field; `required` fields missing are an `InvalidInputException` naming them.
pub(crate) fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, GlueError> {
    match v.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(GlueError::invalid(format!("{field} is required"))),
        Some(_) => Err(GlueError::invalid(format!("{field} must be a string"))),
    }
}

fn string_map(v: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>, GlueError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(GlueError::invalid(format!("{field}.{k} must be a string"))),
            })
            .collect(),
        Some(_) => Err(GlueError::invalid(format!(
            "{field} must be a map of strings"
        ))),
    }
}

fn column_list(v: Option<&Value>, field: &str) -> Result<Vec<Column>, GlueError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| GlueError::invalid(format!("{field} must be a list of columns")))?;
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            let name = text(c, "Name").map_err(|e| e.within(&format!("{field}[{i}]")))?;
            let kind = text(c, "Type").map_err(|e| e.within(&format!("{field}[{i}]")))?;
            // Glue keeps names lowercase, as Hive does.
            Ok(Column::new(name.to_lowercase(), kind.trim().to_lowercase()))
        })
        .collect()
}

/// The format tarn reads a Glue table as: `classification`, Delta's markers, or what its
/// SerDe and input format say.
fn format_of(parameters: &BTreeMap<String, String>, sd: &Value) -> Result<String, GlueError> {
    let get = |k: &str| parameters.get(k).map(|s| s.to_lowercase());
    if get("table_type").as_deref() == Some("delta")
        || get("spark.sql.sources.provider").as_deref() == Some("delta")
    {
        return Ok("delta".into());
    }
    if let Some(c) = get("classification") {
        return match c.as_str() {
            "csv" | "json" | "parquet" | "delta" => Ok(c),
            other => Err(GlueError::invalid(format!(
                "classification `{other}`: tarn reads csv, json, parquet and delta tables"
            ))),
        };
    }
    let lib = sd
        .pointer("/SerdeInfo/SerializationLibrary")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let input = sd
        .get("InputFormat")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    if lib.contains("parquet") || input.contains("parquet") {
        Ok("parquet".into())
    } else if lib.contains("json") {
        Ok("json".into())
    } else if lib.contains("lazysimpleserde")
        || lib.contains("opencsvserde")
        || input.contains("textinputformat")
    {
        Ok("csv".into())
    } else {
        Err(GlueError::invalid(
            "tarn cannot tell the table's format: set Parameters.classification to csv, json, parquet or delta (or give a Parquet, JSON or CSV SerDe)",
        ))
    }
}

/// The `TableInput` of a `CreateTable`/`UpdateTable` call, as an external table of its
/// `DatabaseName`.
pub(crate) fn table_input(call: &Value) -> Result<TableDraft, GlueError> {
    let database = text(call, "DatabaseName")?;
    let input = call
        .get("TableInput")
        .ok_or_else(|| GlueError::invalid("TableInput is required"))?;
    let within = |e: GlueError| e.within("TableInput");
    let name = text(input, "Name").map_err(within)?.to_lowercase();
    let sd = input
        .get("StorageDescriptor")
        .filter(|v| v.is_object())
        .ok_or_else(|| GlueError::invalid("TableInput.StorageDescriptor is required: tarn needs the table's Location and Columns"))?;
    let location = text(sd, "Location")
        .map_err(|e| e.within("TableInput.StorageDescriptor"))?
        .to_string();
    let mut parameters = string_map(input.get("Parameters"), "TableInput.Parameters")?;
    let format = format_of(&parameters, sd)?;
    if format == "csv" {
        let serde = string_map(
            sd.pointer("/SerdeInfo/Parameters"),
            "TableInput.StorageDescriptor.SerdeInfo.Parameters",
        )?;
        let delimiter = serde
            .get("field.delim")
            .or_else(|| serde.get("separatorChar"))
            .cloned()
            .unwrap_or_else(|| ",".into());
        if delimiter.len() != 1 {
            return Err(GlueError::invalid(format!(
                "field.delim `{}` must be one byte",
                delimiter.escape_debug()
            )));
        }
        let header = parameters
            .get("skip.header.line.count")
            .is_some_and(|n| n.trim() == "1");
        parameters.insert("delimiter".into(), delimiter);
        parameters.insert("header".into(), header.to_string());
    }
    Ok(TableDraft {
        database: database.to_string(),
        name,
        location,
        format,
        columns: column_list(sd.get("Columns"), "TableInput.StorageDescriptor.Columns")?,
        partition_keys: column_list(input.get("PartitionKeys"), "TableInput.PartitionKeys")?,
        parameters,
    })
}

/// A partition's values and location from a `PartitionInput`.
pub(crate) fn partition_input(input: &Value) -> Result<(Vec<String>, String), GlueError> {
    let values = values(input.get("Values"), "PartitionInput.Values")?;
    let location = input
        .pointer("/StorageDescriptor/Location")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GlueError::invalid("PartitionInput.StorageDescriptor.Location is required")
        })?;
    Ok((values, location.to_string()))
}

/// A list of strings (partition values).
pub(crate) fn values(v: Option<&Value>, field: &str) -> Result<Vec<String>, GlueError> {
    let list = v
        .and_then(Value::as_array)
        .ok_or_else(|| GlueError::invalid(format!("{field} must be a list of strings")))?;
    list.iter()
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| GlueError::invalid(format!("{field} must be a list of strings")))
        })
        .collect()
}
