//! A monitor's baseline: the training set of the watched version (through the lineage the
//! registry recorded) or the file's query, profiled once per query and fields, and kept under
//! `.tarn/monitors/NAME/` so that later runs read the profile instead of the rows.

use crate::columns::{Column, Side};
use crate::error::MonitorError;
use crate::serving::{probe, quote};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tarn_config::{Baseline, Field, MonitorSpec};
use tarn_lake::Lake;

/// The kept profile of a baseline.
#[derive(Serialize, Deserialize)]
pub(crate) struct KeptBaseline {
    query: String,
    side: Side,
}

pub(crate) struct BaselineProfile {
    pub(crate) side: Side,
    /// Read from the kept profile, not recomputed.
    pub(crate) reused: bool,
}

/// The baseline's profiles: read from the kept file when the same query was profiled before
/// for the same version, otherwise computed and kept.
pub(crate) async fn baseline(
    lake: &Lake,
    spec: &MonitorSpec,
    fields: &[&Field],
    versions: Option<&[String]>,
) -> Result<BaselineProfile, MonitorError> {
    let query = match &spec.baseline {
        Baseline::Query(q) => q.trim().trim_end_matches(';').to_string(),
        Baseline::Training => training_query(lake, spec, versions).await?,
    };
    let key = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(query.as_bytes());
        for f in fields {
            h.update(format!("|{}:{}", f.name, f.field_type.name()).as_bytes());
        }
        hex::encode(&h.finalize()[..12])
    };
    let kept_path = kept_dir(lake, spec).join(format!("baseline-{key}.json"));
    if let Ok(bytes) = std::fs::read(&kept_path) {
        if let Ok(kept) = serde_json::from_slice::<KeptBaseline>(&bytes) {
            if kept.query == query {
                return Ok(BaselineProfile {
                    side: kept.side,
                    reused: true,
                });
            }
        }
    }
    let columns = probe(lake, &query, "baseline").await?;
    // The baseline is read by field name (a training set holds the model's feature names);
    // fields it lacks (the predictions, usually) are compared with the first window instead.
    let present: Vec<&Field> = fields
        .iter()
        .copied()
        .filter(|f| columns.iter().any(|c| c == &f.name))
        .collect();
    let mut side = Side::default();
    if !present.is_empty() {
        let select: Vec<String> = present.iter().map(|f| quote(&f.name)).collect();
        let sql = format!("SELECT {} FROM ({query}) AS b", select.join(", "));
        let (_, mut stream) = lake
            .sql_stream(&sql)
            .await
            .map_err(|e| MonitorError::Query {
                what: "baseline",
                query: query.clone(),
                message: e.to_string(),
            })?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| MonitorError::Query {
                what: "baseline",
                query: query.clone(),
                message: e.to_string(),
            })?;
            let cols: Vec<Column> = present
                .iter()
                .enumerate()
                .map(|(i, f)| Column::of(spec, f, batch.column(i)))
                .collect::<Result<_, _>>()?;
            let rows: Vec<usize> = (0..batch.num_rows()).collect();
            side.add(&present, &cols, &rows);
        }
    }
    if let Some(dir) = kept_path.parent() {
        let _ = std::fs::create_dir_all(dir);
        let kept = KeptBaseline {
            query,
            side: side.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&kept) {
            let tmp = kept_path.with_extension("json.tmp");
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, &kept_path);
            }
        }
    }
    Ok(BaselineProfile {
        side,
        reused: false,
    })
}

/// The baseline a monitor's runs last profiled, as kept: its query, rows and each profiled
/// field's distinct values with their counts.
pub struct KeptProfile {
    pub query: String,
    pub rows: u64,
    pub fields: Vec<(String, crate::Profile)>,
    /// When it was profiled (the kept file's time), RFC 3339.
    pub profiled_at: String,
}

/// Where a monitor's baseline profiles are kept.
fn kept_dir(lake: &Lake, spec: &MonitorSpec) -> std::path::PathBuf {
    lake.config
        .root
        .join(".tarn")
        .join("monitors")
        .join(&spec.name)
}

/// The newest kept baseline of `spec`, when a run has profiled one.
pub fn kept_baseline(lake: &Lake, spec: &MonitorSpec) -> Option<KeptProfile> {
    let newest = std::fs::read_dir(kept_dir(lake, spec))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("baseline-") && name.ends_with(".json")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max_by_key(|(t, _)| *t)?;
    let kept: KeptBaseline = serde_json::from_slice(&std::fs::read(&newest.1).ok()?).ok()?;
    Some(KeptProfile {
        query: kept.query,
        rows: kept.side.rows,
        fields: kept.side.fields.into_iter().collect(),
        profiled_at: chrono::DateTime::<chrono::Utc>::from(newest.0)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    })
}

/// The training query of the watched version, from the lineage the registry recorded when
/// tarn trained it (`tarn.lineage`, the `train` channel).
pub(crate) async fn training_query(
    lake: &Lake,
    spec: &MonitorSpec,
    versions: Option<&[String]>,
) -> Result<String, MonitorError> {
    let model = spec.model.as_ref().ok_or_else(|| MonitorError::NoLineage {
        model: String::new(),
        why: "the monitor names no model".into(),
    })?;
    let version = match versions.and_then(|v| v.last()) {
        Some(v) => v.clone(),
        None => {
            let all = lake.registry().model_versions(Some(&model.name)).await?;
            all.iter()
                .filter_map(|v| v.version.parse::<i64>().ok())
                .max()
                .map(|v| v.to_string())
                .ok_or_else(|| MonitorError::NoLineage {
                    model: model.name.clone(),
                    why: "the model has no version".into(),
                })?
        }
    };
    let v = lake
        .registry()
        .require_version(&model.name, &version)
        .await?;
    let lineage = v
        .tags
        .iter()
        .find(|t| t.key == "tarn.lineage")
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t.value).ok())
        .ok_or_else(|| MonitorError::NoLineage {
            model: format!("{}/{version}", model.name),
            why: "it was not trained by tarn (no `tarn.lineage` tag)".into(),
        })?;
    let channel = lineage
        .get("train")
        .or_else(|| lineage.as_object().and_then(|o| o.values().next()));
    channel
        .and_then(|c| c["query"].as_str())
        .map(|q| q.to_string())
        .ok_or_else(|| MonitorError::NoLineage {
            model: format!("{}/{version}", model.name),
            why: "its lineage has no training query".into(),
        })
}
