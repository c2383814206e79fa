//! MLflow's model registry API (`/api/2.0/mlflow/registered-models/...`,
//! `/api/2.0/mlflow/model-versions/...`): registered models, versions, stages, aliases, tags
//! and download URIs, so `mlflow.register_model`, `log_model(..., registered_model_name=...)`
//! and `models:/NAME/1`, `models:/NAME@ALIAS`, `models:/NAME/Production` work. Changes of
//! stage and alias are recorded with the caller (the token's name under `--auth`); approval
//! (tarn's addition) has its own API in `models`.

use crate::auth::Caller;
use crate::mlflow::{done, invalid, page, Answer, MlflowError};
use crate::mlflow_wire::{field, Call, Search};
use crate::App;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tarn_lake::registry::{ModelVersion, NewModelVersion, RegisteredModel};
use tarn_lake::tracking::KeyValue;

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/registered-models/create", post(create_model))
        .route("/registered-models/rename", post(rename_model))
        .route(
            "/registered-models/update",
            axum::routing::patch(update_model),
        )
        .route(
            "/registered-models/delete",
            axum::routing::delete(delete_model),
        )
        .route("/registered-models/get", get(get_model))
        .route("/registered-models/search", get(search_models))
        .route(
            "/registered-models/get-latest-versions",
            post(latest_versions).get(latest_versions),
        )
        .route("/registered-models/set-tag", post(set_model_tag))
        .route(
            "/registered-models/delete-tag",
            axum::routing::delete(delete_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(set_alias).delete(delete_alias).get(get_by_alias),
        )
        .route("/model-versions/create", post(create_version))
        .route(
            "/model-versions/update",
            axum::routing::patch(update_version),
        )
        .route("/model-versions/transition-stage", post(transition_stage))
        .route(
            "/model-versions/delete",
            axum::routing::delete(delete_version),
        )
        .route("/model-versions/get", get(get_version))
        .route("/model-versions/search", get(search_versions))
        .route("/model-versions/get-download-uri", get(download_uri))
        .route("/model-versions/set-tag", post(set_version_tag))
        .route(
            "/model-versions/delete-tag",
            axum::routing::delete(delete_version_tag),
        )
}

/// The registered model a call is about, with what it changes.
#[derive(Deserialize)]
struct ModelCall {
    #[serde(deserialize_with = "field::required")]
    name: String,
    #[serde(default, deserialize_with = "field::text")]
    description: Option<String>,
    #[serde(default, deserialize_with = "field::pairs")]
    tags: Vec<KeyValue>,
    #[serde(default, deserialize_with = "field::strings")]
    stages: Vec<String>,
}

#[derive(Deserialize)]
struct Rename {
    #[serde(deserialize_with = "field::required")]
    name: String,
    #[serde(deserialize_with = "field::required")]
    new_name: String,
}

/// A tag of a registered model (`version` absent) or of a model version.
#[derive(Deserialize)]
struct Tag {
    #[serde(deserialize_with = "field::required")]
    name: String,
    #[serde(deserialize_with = "field::required")]
    key: String,
    #[serde(default, deserialize_with = "field::text")]
    value: Option<String>,
}

#[derive(Deserialize)]
struct VersionTag {
    #[serde(deserialize_with = "field::required")]
    version: String,
    #[serde(flatten)]
    tag: Tag,
}

#[derive(Deserialize)]
struct Alias {
    #[serde(deserialize_with = "field::required")]
    name: String,
    #[serde(deserialize_with = "field::required")]
    alias: String,
}

#[derive(Deserialize)]
struct SetAlias {
    #[serde(flatten)]
    alias: Alias,
    #[serde(deserialize_with = "field::required")]
    version: String,
}

/// The model version a call is about, with what it changes.
#[derive(Deserialize)]
struct VersionCall {
    #[serde(deserialize_with = "field::required")]
    name: String,
    #[serde(deserialize_with = "field::required")]
    version: String,
    #[serde(default, deserialize_with = "field::text")]
    description: Option<String>,
}

#[derive(Deserialize)]
struct Transition {
    #[serde(flatten)]
    version: VersionCall,
    #[serde(deserialize_with = "field::required")]
    stage: String,
    #[serde(default, deserialize_with = "field::flag")]
    archive_existing_versions: bool,
}

#[derive(Deserialize)]
struct CreateVersion {
    #[serde(deserialize_with = "field::required")]
    name: String,
    #[serde(deserialize_with = "field::required")]
    source: String,
    #[serde(default, deserialize_with = "field::text")]
    run_id: Option<String>,
    #[serde(default, deserialize_with = "field::text")]
    model_id: Option<String>,
    #[serde(default, deserialize_with = "field::text")]
    run_link: Option<String>,
    #[serde(default, deserialize_with = "field::text")]
    description: Option<String>,
    #[serde(default, deserialize_with = "field::pairs")]
    tags: Vec<KeyValue>,
}

/// How many registered models or model versions a search page holds: `default` when not
/// asked, at most 200,000.
fn max_of(s: &Search, default: i64) -> usize {
    s.paging.max_results.unwrap_or(default).clamp(1, 200_000) as usize
}

fn model_answer(m: RegisteredModel) -> Answer {
    Ok(Json(json!({ "registered_model": m })))
}

fn version_answer(v: ModelVersion) -> Answer {
    Ok(Json(json!({ "model_version": v })))
}

async fn create_model(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Call(c): Call<ModelCall>,
) -> Answer {
    let m = app
        .lake
        .registry()
        .create_registered_model(
            &c.name,
            &c.description.unwrap_or_default(),
            &c.tags,
            &caller.name(None),
        )
        .await?;
    model_answer(m)
}

async fn rename_model(State(app): State<App>, Call(c): Call<Rename>) -> Answer {
    let m = app
        .lake
        .registry()
        .rename_registered_model(&c.name, &c.new_name)
        .await?;
    model_answer(m)
}

async fn update_model(State(app): State<App>, Call(c): Call<ModelCall>) -> Answer {
    let m = app
        .lake
        .registry()
        .update_registered_model(&c.name, &c.description.unwrap_or_default())
        .await?;
    model_answer(m)
}

async fn delete_model(State(app): State<App>, Call(c): Call<ModelCall>) -> Answer {
    app.lake.registry().delete_registered_model(&c.name).await?;
    done()
}

async fn get_model(State(app): State<App>, Call(c): Call<ModelCall>) -> Answer {
    let name = c.name;
    let m = app
        .lake
        .registry()
        .registered_model(&name)
        .await?
        .ok_or_else(|| {
            crate::mlflow::missing(tarn_lake::Missing::RegisteredModel { name: name.clone() })
        })?;
    model_answer(m)
}

async fn search_models(State(app): State<App>, Call(c): Call<Search>) -> Answer {
    let all = app.lake.registry().registered_models().await?;
    let max = max_of(&c, 100);
    let found = tarn_lake::run_search::search_items(
        all,
        c.filter(),
        &c.order_by,
        |a: &RegisteredModel, b| a.name.cmp(&b.name),
    )
    .map_err(invalid)?;
    let (models, next) = page(found, max, c.paging.page_token)?;
    let mut answer = json!({ "registered_models": models });
    if let Some(n) = next {
        answer["next_page_token"] = json!(n);
    }
    Ok(Json(answer))
}

async fn latest_versions(State(app): State<App>, Call(c): Call<ModelCall>) -> Answer {
    let versions = app
        .lake
        .registry()
        .latest_versions(&c.name, &c.stages)
        .await?;
    Ok(Json(json!({ "model_versions": versions })))
}

async fn set_model_tag(State(app): State<App>, Call(t): Call<Tag>) -> Answer {
    let value = t.value.unwrap_or_default();
    app.lake
        .registry()
        .registered_model_tag(&t.name, &t.key, Some(&value))
        .await?;
    done()
}

async fn delete_model_tag(State(app): State<App>, Call(t): Call<Tag>) -> Answer {
    app.lake
        .registry()
        .registered_model_tag(&t.name, &t.key, None)
        .await?;
    done()
}

async fn set_alias(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Call(c): Call<SetAlias>,
) -> Answer {
    app.lake
        .registry()
        .set_alias(
            &c.alias.name,
            &c.alias.alias,
            &c.version,
            &caller.name(None),
        )
        .await?;
    done()
}

async fn delete_alias(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Call(c): Call<Alias>,
) -> Answer {
    app.lake
        .registry()
        .delete_alias(&c.name, &c.alias, &caller.name(None))
        .await?;
    done()
}

async fn get_by_alias(State(app): State<App>, Call(c): Call<Alias>) -> Answer {
    let v = app
        .lake
        .registry()
        .version_by_alias(&c.name, &c.alias)
        .await?;
    version_answer(v)
}

/// Where a version's files are: a logged model's artifacts for `models:/m-...`, another
/// version's for `models:/NAME/VERSION`, a run's artifact folder for `runs:/RUN/PATH`, else
/// the source itself. Answers the location, the run and the logged model.
async fn resolve_source(
    app: &App,
    source: &str,
    run_id: Option<String>,
    model_id: Option<String>,
) -> Result<(String, String, String), MlflowError> {
    if let Some(rest) = source.strip_prefix("models:/") {
        if rest.starts_with("m-") && !rest.contains('/') {
            // As MLflow: a logged model's source names the model in `model_id` too.
            if model_id.as_deref() != Some(rest) {
                return Err(unidentified(source, "model_id"));
            }
            let m = app.lake.logged_models().live_logged_model(rest).await?;
            let run = run_id
                .filter(|r| !r.is_empty())
                .or(m.info.source_run_id.clone())
                .unwrap_or_default();
            return Ok((m.info.artifact_uri, run, rest.to_string()));
        }
        let (name, version) = rest.rsplit_once('/').ok_or_else(|| {
            invalid(format!(
                "Invalid model version source: '{source}'; use models:/<model_id> or models:/<name>/<version>"
            ))
        })?;
        let v = app.lake.registry().require_version(name, version).await?;
        return Ok((
            v.storage_location,
            run_id.unwrap_or(v.run_id),
            model_id.unwrap_or(v.model_id),
        ));
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
        if run_id.as_deref().is_some_and(|r| !r.is_empty() && r != run) {
            return Err(unidentified(source, "run_id"));
        }
        let r = app.lake.tracking().run(run).await?.ok_or_else(|| {
            crate::mlflow::missing(tarn_lake::Missing::Run {
                id: run.to_string(),
            })
        })?;
        let location = if path.is_empty() {
            r.info.artifact_uri
        } else {
            format!("{}/{path}", r.info.artifact_uri)
        };
        return Ok((location, run.to_string(), model_id.unwrap_or_default()));
    }
    if source.split('/').any(|p| p == "..") {
        return Err(invalid(format!(
            "Invalid model version source: '{source}': it must not contain '..'"
        )));
    }
    Ok((
        source.to_string(),
        run_id.unwrap_or_default(),
        model_id.unwrap_or_default(),
    ))
}

fn unidentified(source: &str, field: &str) -> MlflowError {
    invalid(format!(
        "Invalid model version source: '{source}'. The {field} request parameter must identify the resource that contains the source."
    ))
}

async fn create_version(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Call(c): Call<CreateVersion>,
) -> Answer {
    let name = c.name;
    let source = c.source;
    let (storage_location, run_id, model_id) =
        resolve_source(&app, &source, c.run_id, c.model_id).await?;
    let v = app
        .lake
        .registry()
        .create_model_version(
            &NewModelVersion {
                name: name.clone(),
                source,
                storage_location,
                run_id,
                run_link: c.run_link.unwrap_or_default(),
                model_id: model_id.clone(),
                description: c.description.unwrap_or_default(),
                tags: c.tags,
            },
            &caller.name(None),
        )
        .await?;
    if !model_id.is_empty() {
        // MLflow lists a logged model's registrations in its `mlflow.modelVersions` tag.
        if let Some(m) = app.lake.logged_models().logged_model(&model_id).await? {
            let key = "mlflow.modelVersions";
            let mut list: Vec<Value> = m
                .info
                .tags
                .iter()
                .find(|t| t.key == key)
                .and_then(|t| serde_json::from_str(&t.value).ok())
                .unwrap_or_default();
            list.push(json!({ "name": name, "version": v.version }));
            let tag = KeyValue {
                key: key.into(),
                value: Value::Array(list).to_string(),
            };
            app.lake
                .logged_models()
                .set_logged_model_tags(&model_id, &[tag])
                .await?;
        }
    }
    version_answer(v)
}

async fn update_version(State(app): State<App>, Call(c): Call<VersionCall>) -> Answer {
    let v = app
        .lake
        .registry()
        .update_model_version(&c.name, &c.version, &c.description.unwrap_or_default())
        .await?;
    version_answer(v)
}

async fn transition_stage(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Call(c): Call<Transition>,
) -> Answer {
    let archive = c.archive_existing_versions;
    let v = app
        .lake
        .registry()
        .transition_stage(
            &c.version.name,
            &c.version.version,
            &c.stage,
            archive,
            &caller.name(None),
        )
        .await?;
    version_answer(v)
}

async fn delete_version(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Call(c): Call<VersionCall>,
) -> Answer {
    app.lake
        .registry()
        .delete_model_version(&c.name, &c.version, &caller.name(None))
        .await?;
    done()
}

async fn get_version(State(app): State<App>, Call(c): Call<VersionCall>) -> Answer {
    let v = app
        .lake
        .registry()
        .require_version(&c.name, &c.version)
        .await?;
    version_answer(v)
}

async fn search_versions(State(app): State<App>, Call(c): Call<Search>) -> Answer {
    let all = app.lake.registry().model_versions(None).await?;
    let max = max_of(&c, 10_000);
    let found =
        tarn_lake::run_search::search_items(all, c.filter(), &c.order_by, |a: &ModelVersion, b| {
            let n = |v: &ModelVersion| v.version.parse::<i64>().unwrap_or_default();
            a.name.cmp(&b.name).then(n(b).cmp(&n(a)))
        })
        .map_err(invalid)?;
    let (versions, next) = page(found, max, c.paging.page_token)?;
    let mut answer = json!({ "model_versions": versions });
    if let Some(n) = next {
        answer["next_page_token"] = json!(n);
    }
    Ok(Json(answer))
}

async fn download_uri(State(app): State<App>, Call(c): Call<VersionCall>) -> Answer {
    let v = app
        .lake
        .registry()
        .require_version(&c.name, &c.version)
        .await?;
    Ok(Json(json!({ "artifact_uri": v.storage_location })))
}

async fn set_version_tag(State(app): State<App>, Call(c): Call<VersionTag>) -> Answer {
    let value = c.tag.value.unwrap_or_default();
    app.lake
        .registry()
        .model_version_tag(&c.tag.name, &c.version, &c.tag.key, Some(&value))
        .await?;
    done()
}

async fn delete_version_tag(State(app): State<App>, Call(c): Call<VersionTag>) -> Answer {
    app.lake
        .registry()
        .model_version_tag(&c.tag.name, &c.version, &c.tag.key, None)
        .await?;
    done()
}
