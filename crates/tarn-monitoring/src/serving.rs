//! Where a monitor's serving data comes from: the watched model versions, the serving query
//! (the file's, or the endpoint's inference table), and the columns a query answers with.

use crate::error::MonitorError;
use tarn_config::{Field, MonitorSpec, VersionSelector};
use tarn_lake::{Lake, QueryOptions};

/// For a monitor reading its endpoint's inference table: why there is nothing to watch when
/// that table does not exist yet (the endpoint has answered no request). Nothing is compared
/// or written then, and nothing alerts.
pub(crate) async fn no_predictions_yet(
    lake: &Lake,
    spec: &MonitorSpec,
    inference_table: Option<&str>,
) -> Option<String> {
    let (name, table) = (spec.endpoint.as_deref()?, inference_table?);
    match lake.table(table).await {
        Err(tarn_lake::LakeError::NoSuchTable(_)) => Some(format!(
            "endpoint `{name}` has logged no prediction yet ({table} does not exist): nothing to watch until it answers requests under `tarn serve`"
        )),
        _ => None,
    }
}

/// The model versions a monitor watches: None for every version (or no model).
pub(crate) async fn model_versions(
    lake: &Lake,
    spec: &MonitorSpec,
) -> Result<Option<Vec<String>>, MonitorError> {
    let Some(model) = &spec.model else {
        return Ok(None);
    };
    match &model.version {
        VersionSelector::All => Ok(None),
        VersionSelector::Number(n) => {
            lake.registry()
                .require_version(&model.name, &n.to_string())
                .await?;
            Ok(Some(vec![n.to_string()]))
        }
        VersionSelector::Alias(a) => {
            let v = lake.registry().version_by_alias(&model.name, a).await?;
            Ok(Some(vec![v.version]))
        }
    }
}

/// The serving query: the file's, or the endpoint's inference table (only the watched
/// versions' rows), with that table's name.
pub(crate) fn serving_query(
    lake: &Lake,
    spec: &MonitorSpec,
    versions: Option<&[String]>,
) -> Result<(String, Option<String>), MonitorError> {
    if let Some(q) = &spec.serving.query {
        return Ok((q.trim().trim_end_matches(';').to_string(), None));
    }
    let name = spec.endpoint.as_deref().unwrap_or_default();
    let endpoint = lake
        .config
        .endpoints
        .get(name)
        .ok_or_else(|| MonitorError::Spec {
            path: spec.path.display().to_string(),
            message: format!("no endpoint `{name}` in tarn.yml"),
        })?;
    let table = endpoint.inference_table(name);
    let query = match versions {
        Some(v) => format!(
            "SELECT * FROM {table} WHERE model_version IN ({})",
            v.iter()
                .map(|v| format!("'{}'", v.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!("SELECT * FROM {table}"),
    };
    Ok((query, Some(table)))
}

/// Column names for a message: the first 20, then how many more.
pub(crate) fn listed(columns: &[String]) -> String {
    let mut s = columns
        .iter()
        .take(20)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if columns.len() > 20 {
        s.push_str(&format!(" and {} more", columns.len() - 20));
    }
    s
}

/// The column names a query answers with.
pub(crate) async fn probe(
    lake: &Lake,
    query: &str,
    what: &'static str,
) -> Result<Vec<String>, MonitorError> {
    let r = lake
        .sql(
            &format!("SELECT * FROM ({query}) AS s LIMIT 0"),
            &QueryOptions::default(),
        )
        .await
        .map_err(|e| MonitorError::Query {
            what,
            query: query.to_string(),
            message: e.to_string(),
        })?;
    Ok(r.schema.fields().iter().map(|f| f.name().clone()).collect())
}

pub(crate) fn query_failed(spec: &MonitorSpec, what: &'static str, message: &str) -> MonitorError {
    MonitorError::Query {
        what,
        query: spec
            .serving
            .query
            .clone()
            .unwrap_or_else(|| "the endpoint's inference table".into()),
        message: message.to_string(),
    }
}

pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Refuses a monitor whose id or timestamp column, or a field's column, is not among the
/// serving data's `columns`, naming what is there.
pub(crate) fn check_columns(
    spec: &MonitorSpec,
    fields: &[&Field],
    columns: &[String],
) -> Result<(), MonitorError> {
    let spec_error = |message: String| MonitorError::Spec {
        path: spec.path.display().to_string(),
        message,
    };
    let missing: Vec<String> = [&spec.serving.id_column, &spec.serving.timestamp_column]
        .into_iter()
        .filter(|c| !columns.contains(c))
        .map(|c| format!("`{c}`"))
        .collect();
    if !missing.is_empty() {
        return Err(spec_error(format!(
            "the serving data has no column {} (columns: {}); set `serving: {{id_column: ..., timestamp_column: ...}}`",
            missing.join(" or "),
            listed(columns)
        )));
    }
    match fields
        .iter()
        .find(|f| f.column.as_ref().is_some_and(|c| !columns.contains(c)))
    {
        Some(f) => Err(spec_error(format!(
            "field `{}` names no column of the serving data (columns: {}); add `column:` or `sql:` to map it",
            f.name,
            listed(columns)
        ))),
        None => Ok(()),
    }
}
