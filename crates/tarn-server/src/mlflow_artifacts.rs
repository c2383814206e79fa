//! MLflow's proxied artifact API (`/api/2.0/mlflow-artifacts/artifacts`): the `mlflow` client
//! uploads, lists and downloads a run's files through `tarn serve`, which keeps them in the
//! lake's object store under `_mlflow-artifacts/` (local files, or S3 in the shared
//! deployment). Bodies stream both ways: no size limit but the store's.

use crate::mlflow::MlflowError;
use crate::App;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, WriteMultipart};
use serde_json::json;
use std::collections::HashMap;

const ROOT: &str = tarn_lake::ARTIFACT_ROOT;

fn bad(m: impl Into<String>) -> MlflowError {
    MlflowError(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", m.into())
}

fn failed(e: impl std::fmt::Display) -> MlflowError {
    tracing::error!("mlflow artifacts: {e}");
    MlflowError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "the object store failed; the server log has the cause".into(),
    )
}

/// The object path of artifact `path`, refused when it could escape the artifact root.
fn location(path: &str) -> Result<ObjectPath, MlflowError> {
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Ok(ObjectPath::from(ROOT));
    }
    tarn_lake::validate_key(path).map_err(|e| bad(format!("invalid artifact path: {e}")))?;
    Ok(ObjectPath::from(format!("{ROOT}/{path}")))
}

/// Stores the request body as artifact `path`.
pub(crate) async fn upload(
    State(app): State<App>,
    Path(path): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let at = location(&path)?;
    let upload = app
        .lake
        .zones
        .store()
        .put_multipart(&at)
        .await
        .map_err(failed)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 * 1024 * 1024);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                writer.wait_for_capacity(4).await.map_err(failed)?;
                writer.write(&bytes);
            }
            Err(e) => {
                writer.abort().await.ok();
                return Err(bad(format!("the upload broke off: {e}")));
            }
        }
    }
    writer.finish().await.map_err(failed)?;
    crate::mlflow_traces::record_spans(&app, &path).await;
    Ok(Json(json!({})))
}

/// What the lake's artifact calls refused, in MLflow's words.
fn refused(e: tarn_lake::LakeError) -> MlflowError {
    match e {
        tarn_lake::LakeError::Usage(m) => bad(m),
        e => failed(e),
    }
}

/// Streams artifact `path` back.
pub(crate) async fn download(
    State(app): State<App>,
    Path(path): Path<String>,
) -> Result<Response, MlflowError> {
    let body = app
        .lake
        .open_artifact("mlflow-artifacts:/", &path)
        .await
        .map_err(refused)?
        .ok_or_else(|| {
            MlflowError(
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                format!("no artifact at {path}"),
            )
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, body.size.to_string()),
        ],
        Body::from_stream(body.stream),
    )
        .into_response())
}

/// Lists the files and folders directly under `?path=` (names relative to it, as written).
pub(crate) async fn list(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let path = q.get("path").map(String::as_str).unwrap_or("");
    let entries = app
        .lake
        .list_artifacts("mlflow-artifacts:/", path)
        .await
        .map_err(refused)?;
    let files: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let name = e.path.rsplit('/').next().unwrap_or(&e.path);
            match e.size {
                Some(size) if !e.is_dir => {
                    json!({"path": name, "is_dir": false, "file_size": size})
                }
                _ => json!({"path": name, "is_dir": true}),
            }
        })
        .collect();
    Ok(Json(json!({ "files": files })))
}
