//! Reading a table's schema out of a Delta log's `metaData` action.

use tarn_metadata::Column;

/// The catalog type of a Delta primitive type.
pub fn catalog_type(delta: &serde_json::Value) -> String {
    match delta.as_str() {
        Some("long") => "bigint".into(),
        Some("integer") => "int".into(),
        Some("short") => "smallint".into(),
        Some("byte") => "tinyint".into(),
        Some("timestamp_ntz") => "timestamp".into(),
        Some(other) => other.to_string(),
        None => match delta.get("type").and_then(|t| t.as_str()) {
            Some("array") => format!(
                "array<{}>",
                catalog_type(delta.get("elementType").unwrap_or(&serde_json::Value::Null))
            ),
            Some(t) => t.to_string(),
            None => "string".into(),
        },
    }
}

/// Data columns and partition columns of a `metaData` action.
pub(crate) fn schema_of(md: &serde_json::Value) -> Option<(Vec<Column>, Vec<Column>)> {
    let schema: serde_json::Value = serde_json::from_str(md.get("schemaString")?.as_str()?).ok()?;
    let parts: Vec<String> = md
        .get("partitionColumns")
        .and_then(|p| p.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut columns = Vec::new();
    let mut keys = Vec::new();
    for f in schema.get("fields")?.as_array()? {
        let c = Column {
            name: f.get("name")?.as_str()?.to_string(),
            data_type: catalog_type(f.get("type")?),
            nullable: f.get("nullable").and_then(|n| n.as_bool()).unwrap_or(true),
        };
        if parts.contains(&c.name) {
            keys.push(c);
        } else {
            columns.push(c);
        }
    }
    Some((columns, keys))
}
