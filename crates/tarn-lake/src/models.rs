//! Model URIs, resolved against the registry and the runs they name: `models:/NAME/VERSION`,
//! `models:/NAME@ALIAS`, `models:/NAME/STAGE`, `models:/NAME` (its newest version),
//! `runs:/RUN_ID/PATH` and `mlflow-artifacts:/...`; and a model's files fetched from the
//! lake's artifacts with its `MLmodel` file read. Batch transforms and model endpoints both
//! load models this way.

use crate::{Lake, LakeError};
use std::path::Path;

/// Where a model's files are, and which registered version they are (when a `models:/` URI
/// named one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// An artifact location (`mlflow-artifacts:/...`).
    pub location: String,
    pub model: Option<String>,
    pub version: Option<String>,
}

impl Lake {
    /// Where the files of the model `uri` names are.
    pub async fn resolve_model(&self, uri: &str) -> Result<ResolvedModel, LakeError> {
        let meta = &self.meta;
        let usage = |m: String| LakeError::Usage(m);
        if let Some(rest) = uri.strip_prefix("models:/") {
            let (name, pick) = match rest.split_once('@') {
                Some((n, alias)) => (n.to_string(), Some(format!("@{alias}"))),
                None => match rest.split_once('/') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (rest.to_string(), None),
                },
            };
            let v = match pick.as_deref() {
                Some(p) if p.starts_with('@') => meta.registry().version_by_alias(&name, &p[1..]).await?,
                Some(p) if p.chars().all(|c| c.is_ascii_digit()) => {
                    meta.registry().model_version(&name, p).await?.ok_or_else(|| {
                        usage(format!("model `{name}` has no version {p}; `tarn models versions {name}` lists them"))
                    })?
                }
                Some(stage) => meta
                    .registry().latest_versions(&name, &[stage.to_string()])
                    .await?
                    .pop()
                    .ok_or_else(|| {
                        usage(format!("model `{name}` has no version in stage {stage}"))
                    })?,
                None => meta
                    .registry().model_versions(Some(&name))
                    .await?
                    .into_iter()
                    .max_by_key(|v| v.version.parse::<i64>().unwrap_or(0))
                    .ok_or_else(|| usage(format!("model `{name}` has no versions")))?,
            };
            let location = if v.storage_location.is_empty() {
                v.source.clone()
            } else {
                v.storage_location.clone()
            };
            return Ok(ResolvedModel {
                location,
                model: Some(v.name),
                version: Some(v.version),
            });
        }
        if let Some(rest) = uri.strip_prefix("runs:/") {
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            let run = meta
                .tracking()
                .run(run_id)
                .await?
                .ok_or_else(|| usage(format!("no run has id `{run_id}`")))?;
            return Ok(ResolvedModel {
                location: format!("{}/{}", run.info.artifact_uri, path.trim_matches('/')),
                model: None,
                version: None,
            });
        }
        if uri.starts_with("mlflow-artifacts:") {
            return Ok(ResolvedModel {
                location: uri.to_string(),
                model: None,
                version: None,
            });
        }
        Err(usage(format!(
            "`{uri}` is not a model URI; use models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/STAGE or runs:/RUN_ID/PATH"
        )))
    }

    /// Downloads a model's files into `dir`; answers its parsed `MLmodel` file.
    pub async fn download_model(
        &self,
        location: &str,
        dir: &Path,
    ) -> Result<serde_json::Value, LakeError> {
        let bad = |problem: String| LakeError::ModelFiles {
            location: location.to_string(),
            problem,
        };
        let n = self.get_artifact_dir(location, dir).await?;
        if n == 0 {
            return Err(bad("holds no files".into()));
        }
        let mlmodel = dir.join("MLmodel");
        let text = tokio::fs::read_to_string(&mlmodel).await.map_err(|_| {
            bad("has no MLmodel file: save the model with an mlflow flavour (mlflow.<flavor>.save_model) or train it with a built-in trainer".into())
        })?;
        let yaml: serde_norway::Value = serde_norway::from_str(&text)
            .map_err(|e| bad(format!("has an MLmodel that is not valid YAML: {e}")))?;
        serde_json::to_value(yaml).map_err(|e| bad(format!("has an unreadable MLmodel: {e}")))
    }
}
