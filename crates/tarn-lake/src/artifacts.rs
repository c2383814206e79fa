//! Run artifacts in the lake's object store: `mlflow-artifacts:/PATH` lives at
//! `_mlflow-artifacts/PATH` (local files, or S3 in the shared deployment). The MLflow artifact
//! proxy serves the same objects; training jobs upload model folders and logs here, and batch
//! transform downloads registered models from here.

use crate::{Lake, LakeError};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use std::path::Path;

/// The object-store prefix of every run's artifacts.
pub const ARTIFACT_ROOT: &str = "_mlflow-artifacts";

/// A part of an object path as it was written (the store's paths percent-encode characters
/// such as `<` and `%`).
fn decoded(part: &object_store::path::PathPart<'_>) -> String {
    percent_encoding::percent_decode_str(part.as_ref())
        .decode_utf8_lossy()
        .into_owned()
}

fn storage(e: object_store::Error) -> LakeError {
    LakeError::ObjectStore(e.to_string())
}

/// One file or folder directly under an artifact folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArtifactEntry {
    /// Its path relative to the location that was listed (`model/MLmodel`).
    pub path: String,
    pub is_dir: bool,
    /// Bytes (files only).
    pub size: Option<u64>,
}

/// An artifact's bytes as they stream from the store, and how many there are.
pub struct ArtifactBody {
    pub size: u64,
    pub stream: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
}

impl Lake {
    /// The object path of `uri` (`mlflow-artifacts:/...`) joined with `rel`.
    pub fn artifact_object(&self, uri: &str, rel: &str) -> Result<ObjectPath, LakeError> {
        let base = uri
            .strip_prefix("mlflow-artifacts:")
            .ok_or_else(|| {
                LakeError::Usage(format!(
                    "`{uri}` is not an artifact location of this lake (mlflow-artifacts:/...)"
                ))
            })?
            .trim_matches('/');
        let path = [base, rel.trim_matches('/')]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        if !path.is_empty() {
            crate::validate_key(&path)
                .map_err(|e| LakeError::Usage(format!("invalid artifact path `{path}`: {e}")))?;
        }
        Ok(ObjectPath::from(format!("{ARTIFACT_ROOT}/{path}")))
    }

    /// Stores `bytes` as artifact `rel` under `uri`.
    pub async fn put_artifact(
        &self,
        uri: &str,
        rel: &str,
        bytes: Vec<u8>,
    ) -> Result<(), LakeError> {
        let at = self.artifact_object(uri, rel)?;
        self.zones
            .store()
            .put(&at, PutPayload::from(bytes))
            .await
            .map_err(storage)?;
        Ok(())
    }

    /// Uploads every file under the local folder `dir` as artifacts `rel/...` under `uri`;
    /// answers how many files.
    pub async fn put_artifact_dir(
        &self,
        uri: &str,
        rel: &str,
        dir: &Path,
    ) -> Result<usize, LakeError> {
        let mut n = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            // File I/O through tokio's blocking pool, never on the request's worker thread.
            let io = |e| LakeError::Io {
                path: d.display().to_string(),
                source: e,
            };
            let mut rd = tokio::fs::read_dir(&d).await.map_err(io)?;
            while let Some(entry) = rd.next_entry().await.map_err(io)? {
                let p = entry.path();
                if entry.file_type().await.map_err(io)?.is_dir() {
                    stack.push(p);
                    continue;
                }
                let sub = p
                    .strip_prefix(dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .to_string();
                let bytes = tokio::fs::read(&p).await.map_err(|e| LakeError::Io {
                    path: p.display().to_string(),
                    source: e,
                })?;
                self.put_artifact(uri, &format!("{}/{sub}", rel.trim_matches('/')), bytes)
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The files and folders directly under `rel` of the artifact location `uri`, folders
    /// first, each by name.
    pub async fn list_artifacts(
        &self,
        uri: &str,
        rel: &str,
    ) -> Result<Vec<ArtifactEntry>, LakeError> {
        let root = self.artifact_object(uri, "")?;
        let at = self.artifact_object(uri, rel)?;
        let listed = self
            .zones
            .store()
            .list_with_delimiter(Some(&at))
            .await
            .map_err(storage)?;
        let relative = |p: &ObjectPath| {
            p.prefix_match(&root)
                .map(|parts| parts.map(|s| decoded(&s)).collect::<Vec<_>>().join("/"))
                .unwrap_or_default()
        };
        let mut out: Vec<ArtifactEntry> = listed
            .common_prefixes
            .iter()
            .map(|p| ArtifactEntry {
                path: relative(p),
                is_dir: true,
                size: None,
            })
            .collect();
        out.extend(listed.objects.iter().map(|o| ArtifactEntry {
            path: relative(&o.location),
            is_dir: false,
            size: Some(o.size),
        }));
        out.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.path.cmp(&b.path)));
        Ok(out)
    }

    /// The bytes of artifact `rel` under `uri`, streaming; `None` when there is no such file.
    pub async fn open_artifact(
        &self,
        uri: &str,
        rel: &str,
    ) -> Result<Option<ArtifactBody>, LakeError> {
        let at = self.artifact_object(uri, rel)?;
        match self.zones.store().get(&at).await {
            Ok(got) => Ok(Some(ArtifactBody {
                size: got.meta.size,
                stream: Box::pin(got.into_stream().map_err(std::io::Error::other)),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage(e)),
        }
    }

    /// The parsed `MLmodel` file of the model at `location`, without fetching its other
    /// files; `None` when it has none.
    pub async fn model_file(&self, location: &str) -> Result<Option<serde_json::Value>, LakeError> {
        let at = self.artifact_object(location, "MLmodel")?;
        let bytes = match self.zones.store().get(&at).await {
            Ok(got) => got.bytes().await.map_err(storage)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        let bad = |problem: String| LakeError::ModelFiles {
            location: location.to_string(),
            problem,
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| bad("has an MLmodel that is not UTF-8".into()))?;
        let yaml: serde_norway::Value = serde_norway::from_str(text)
            .map_err(|e| bad(format!("has an MLmodel that is not valid YAML: {e}")))?;
        serde_json::to_value(yaml)
            .map(Some)
            .map_err(|e| bad(format!("has an unreadable MLmodel: {e}")))
    }

    /// Downloads every artifact under `uri` into the local folder `dest`; answers how many.
    pub async fn get_artifact_dir(&self, uri: &str, dest: &Path) -> Result<usize, LakeError> {
        let prefix = self.artifact_object(uri, "")?;
        let store = self.zones.store();
        let objects: Vec<_> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(storage)?;
        for o in &objects {
            let rel: Vec<_> = o
                .location
                .prefix_match(&prefix)
                .into_iter()
                .flatten()
                .collect();
            let mut target = dest.to_path_buf();
            for part in rel {
                target.push(decoded(&part));
            }
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| LakeError::Io {
                        path: parent.display().to_string(),
                        source: e,
                    })?;
            }
            let bytes = store
                .get(&o.location)
                .await
                .map_err(storage)?
                .bytes()
                .await
                .map_err(storage)?;
            tokio::fs::write(&target, &bytes)
                .await
                .map_err(|e| LakeError::Io {
                    path: target.display().to_string(),
                    source: e,
                })?;
        }
        Ok(objects.len())
    }
}
