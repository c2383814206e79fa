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

fn storage(e: object_store::Error) -> LakeError {
    LakeError::Usage(format!("the object store failed: {e}"))
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
                target.push(part.as_ref());
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
