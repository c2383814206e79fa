//! tarn's own half of the model registry (`/api/v1/models`): registered models with every
//! version and its approval, and the approval decisions (`approve`, `reject`) that MLflow's
//! API has no words for. Who decided is the token's name under `--auth`.

use crate::auth::Caller;
use crate::error::{ErrorBody, JsonBody, PathParams};
use crate::{ApiError, App};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tarn_lake::registry::{ModelVersion, RegisteredModel};
use tarn_lake::MetadataError;
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

fn api_error(e: MetadataError) -> ApiError {
    match e {
        MetadataError::NotFound(m) => {
            ApiError::new(StatusCode::NOT_FOUND, "model_not_found", m.to_string())
        }
        MetadataError::Refused(m) => ApiError::bad_request(m),
        MetadataError::Inactive(m) => ApiError::bad_request(m.to_string()),
        MetadataError::Exists(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m.to_string()),
        other => ApiError::from(tarn_lake::LakeError::Metadata(other)),
    }
}

/// Registered models, by name.
#[derive(Serialize, ToSchema)]
pub(crate) struct ModelList {
    models: Vec<RegisteredModel>,
}

/// Every registered model with its aliases, tags and newest version per stage.
#[utoipa::path(get, path = "/api/v1/models", tag = "models",
    responses((status = 200, body = ModelList)))]
pub(crate) async fn list(State(app): State<App>) -> ApiResult<Json<ModelList>> {
    let models = app
        .lake
        .registry()
        .registered_models()
        .await
        .map_err(api_error)?;
    Ok(Json(ModelList { models }))
}

/// A registered model's name.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ModelName {
    /// As registered (`mlflow.register_model(..., name)`).
    name: String,
}

/// A model and all its versions.
#[derive(Serialize, ToSchema)]
pub(crate) struct ModelDetail {
    model: RegisteredModel,
    versions: Vec<ModelVersion>,
}

/// One registered model with every version (stage, aliases, approval with who, when, why).
#[utoipa::path(get, path = "/api/v1/models/{name}", tag = "models", params(ModelName),
    responses((status = 200, body = ModelDetail), (status = 404, body = ErrorBody)))]
pub(crate) async fn show(
    State(app): State<App>,
    PathParams(p): PathParams<ModelName>,
) -> ApiResult<Json<ModelDetail>> {
    let model = app
        .lake
        .registry()
        .registered_model(&p.name)
        .await
        .map_err(api_error)?
        .ok_or_else(|| {
            api_error(MetadataError::NotFound(
                tarn_lake::Missing::RegisteredModel {
                    name: p.name.clone(),
                },
            ))
        })?;
    let versions = app
        .lake
        .registry()
        .model_versions(Some(&p.name))
        .await
        .map_err(api_error)?;
    Ok(Json(ModelDetail { model, versions }))
}

/// A version of a registered model.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct VersionPath {
    name: String,
    /// The version number.
    version: String,
}

/// Why a version is approved or rejected.
#[derive(Deserialize, ToSchema)]
pub(crate) struct Decision {
    /// Recorded with the decision and sent with its event.
    reason: String,
    /// Who decides, when the server runs without `--auth` (with auth, the token's name).
    #[serde(default)]
    by: Option<String>,
}

async fn decide(
    app: App,
    caller: Caller,
    p: VersionPath,
    d: Decision,
    approve: bool,
) -> ApiResult<Json<ModelVersion>> {
    if d.reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "reason is required: say why the version is approved or rejected",
        ));
    }
    let v = app
        .lake
        .registry()
        .decide(&p.name, &p.version, approve, &caller.name(d.by), &d.reason)
        .await
        .map_err(api_error)?;
    app.landed.notify_one();
    Ok(Json(v))
}

/// Approves a version: records who, when and why, and the event `model.version.approved`
/// (topics listing it are notified; pipelines with a matching `event_rule` start).
#[utoipa::path(post, path = "/api/v1/models/{name}/versions/{version}/approve", tag = "models",
    params(VersionPath), request_body = Decision,
    responses((status = 200, body = ModelVersion), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn approve(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    PathParams(p): PathParams<VersionPath>,
    JsonBody(d): JsonBody<Decision>,
) -> ApiResult<Json<ModelVersion>> {
    decide(app, caller, p, d, true).await
}

/// Rejects a version (aliases that require approval leave it); records
/// `model.version.rejected`.
#[utoipa::path(post, path = "/api/v1/models/{name}/versions/{version}/reject", tag = "models",
    params(VersionPath), request_body = Decision,
    responses((status = 200, body = ModelVersion), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn reject(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    PathParams(p): PathParams<VersionPath>,
    JsonBody(d): JsonBody<Decision>,
) -> ApiResult<Json<ModelVersion>> {
    decide(app, caller, p, d, false).await
}
