//! The model registry: registered models, their versions (with MLflow's stages and aliases)
//! and tarn's approval workflow on top, as SageMaker's model registry has it. Every new version
//! gets an approval status (`PendingManualApproval` unless the model's
//! `tarn.approval.default` tag says `Approved`); a model's `tarn.approval.required_for` tag
//! lists the aliases and stages only an approved version may take. Every change of a version's
//! approval, stage or alias is recorded as an event (`model.version.*`, zone `models`, key
//! `NAME/VERSION`) in the same transaction, with who, when and why.

use crate::columns::IdText;
use crate::kv::KeyValue;
use crate::run_search::{find, Entity, Literal, Searchable};
use crate::{Existing, MetadataError, Missing, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The model registry: registered models, versions, stages, aliases, approvals. Reached with [`Store::registry`].
#[derive(Clone, Copy, Debug)]
pub struct Registry<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// The model registry: registered models, versions, stages, aliases, approvals.
    pub fn registry(&self) -> Registry<'_> {
        Registry { store: self }
    }
}

/// The tag holding a model's approval status for new versions.
pub const DEFAULT_APPROVAL_TAG: &str = "tarn.approval.default";
/// The tag listing the aliases and stages only an approved version may take.
pub const REQUIRED_FOR_TAG: &str = "tarn.approval.required_for";
/// Approval statuses, as SageMaker names them.
pub const PENDING: &str = "PendingManualApproval";
pub const APPROVED: &str = "Approved";
pub const REJECTED: &str = "Rejected";
/// MLflow's stages.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];
/// The source of registry events, as EventBridge rules match it.
pub const EVENT_SOURCE: &str = "tarn.registry";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow)]
pub struct Alias {
    pub alias: String,
    #[sqlx(try_from = "IdText")]
    pub version: String,
}

/// Who decided a version's approval status, when (ms since the epoch; 0 if nobody yet) and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow)]
pub struct Approval {
    #[sqlx(rename = "approval_status")]
    pub status: String,
    #[sqlx(rename = "approval_by")]
    pub by: String,
    #[sqlx(rename = "approval_time")]
    pub time: i64,
    #[sqlx(rename = "approval_reason")]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow)]
pub struct ModelVersion {
    pub name: String,
    #[sqlx(try_from = "IdText")]
    pub version: String,
    #[sqlx(rename = "creation_time")]
    pub creation_timestamp: i64,
    #[sqlx(rename = "last_updated_time")]
    pub last_updated_timestamp: i64,
    pub user_id: String,
    pub current_stage: String,
    pub description: String,
    pub source: String,
    pub run_id: String,
    pub status: String,
    #[sqlx(skip)]
    pub tags: Vec<KeyValue>,
    pub run_link: String,
    #[sqlx(skip)]
    pub aliases: Vec<String>,
    pub model_id: String,
    /// tarn's addition (the client ignores fields it does not know).
    #[sqlx(flatten)]
    pub approval: Approval,
    /// Where the version's files are (for `get-download-uri`).
    #[serde(skip)]
    pub storage_location: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow)]
pub struct RegisteredModel {
    pub name: String,
    #[sqlx(rename = "creation_time")]
    pub creation_timestamp: i64,
    #[sqlx(rename = "last_updated_time")]
    pub last_updated_timestamp: i64,
    pub user_id: String,
    pub description: String,
    /// The newest version in each stage.
    #[sqlx(skip)]
    pub latest_versions: Vec<ModelVersion>,
    #[sqlx(skip)]
    pub tags: Vec<KeyValue>,
    #[sqlx(skip)]
    pub aliases: Vec<Alias>,
}

/// What `create_model_version` needs.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    /// Where the files are when `source` is a `models:/` URI; `source` otherwise.
    pub storage_location: String,
    pub run_id: String,
    pub run_link: String,
    pub model_id: String,
    pub description: String,
    pub tags: Vec<KeyValue>,
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn no_model(name: &str) -> MetadataError {
    MetadataError::NotFound(Missing::RegisteredModel {
        name: name.to_string(),
    })
}

fn no_version(name: &str, version: &str) -> MetadataError {
    MetadataError::NotFound(Missing::ModelVersion {
        name: name.to_string(),
        version: version.to_string(),
    })
}

fn version_number(name: &str, version: &str) -> Result<i64, MetadataError> {
    version.trim().parse::<i64>().map_err(|_| {
        MetadataError::Refused(format!(
            "Version of model {name} must be a whole number, not {version:?}"
        ))
    })
}

/// A stage in MLflow's spelling, whatever the case it was given in.
pub fn canonical_stage(stage: &str) -> Result<&'static str, MetadataError> {
    STAGES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(stage.trim()))
        .copied()
        .ok_or_else(|| {
            MetadataError::Refused(format!(
                "Invalid Model Version stage: {stage}. Value must be one of {}.",
                STAGES.join(", ")
            ))
        })
}

/// Records a registry event inside `tx`: kind `model.version.*`, zone `models`, key
/// `NAME/VERSION`, with the detail an EventBridge rule or a topic reads.
async fn record(
    tx: &mut Tx,
    kind: &str,
    name: &str,
    version: i64,
    by: &str,
    mut detail: serde_json::Value,
) -> Result<(), MetadataError> {
    let id = uuid::Uuid::now_v7().to_string();
    detail["source"] = EVENT_SOURCE.into();
    detail["detail_type"] = kind.into();
    detail["name"] = name.into();
    detail["version"] = version.to_string().into();
    detail["by"] = by.into();
    detail["time"] = crate::now().into();
    sqlx::query(
        "INSERT INTO events (id, kind, zone, object_key, etag, size, detail, created_at)
         VALUES ($1, $2, 'models', $3, $4, 0, $5, $6)",
    )
    .bind(&id)
    .bind(kind)
    .bind(format!("{name}/{version}"))
    .bind(&id)
    .bind(detail.to_string())
    .bind(crate::now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// MLflow's rules for alias names: letters, digits, `_` and `-`, at most 255 characters, and
/// neither `latest` nor a version's name (`v3`), which are reserved.
fn alias_name_ok(alias: &str) -> Result<(), MetadataError> {
    let invalid = |m: String| Err(MetadataError::Refused(m));
    if alias.is_empty()
        || !alias
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return invalid(format!(
            "Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores (_), and dashes (-)."
        ));
    }
    crate::validation::length("alias", 255, alias)?;
    if alias.eq_ignore_ascii_case("latest") {
        return invalid("'latest' alias name (case insensitive) is reserved.".into());
    }
    let rest = &alias[1..];
    if alias.starts_with(['v', 'V']) && !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit())
    {
        return invalid(format!("Version alias name '{alias}' is reserved."));
    }
    Ok(())
}

/// MLflow's rules for registry tags: a valid key of at most 250 characters, a value of at
/// most 100,000.
fn registry_tag_ok(key: &str, value: Option<&str>) -> Result<(), MetadataError> {
    use crate::validation as v;
    v::key(key, "key")?;
    v::length(
        "value",
        v::MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH,
        value.unwrap_or_default(),
    )
}

fn tag_value<'a>(tags: &'a [KeyValue], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

/// Whether `target` (an alias or a stage) may only point at an approved version of a model
/// with these tags.
fn requires_approval(tags: &[KeyValue], target: &str) -> bool {
    tag_value(tags, REQUIRED_FOR_TAG).is_some_and(|list| {
        list.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(target))
    })
}

fn check_policy_tag(key: &str, value: &str) -> Result<(), MetadataError> {
    if key == DEFAULT_APPROVAL_TAG && value != PENDING && value != APPROVED {
        return Err(MetadataError::Refused(format!(
            "tag {DEFAULT_APPROVAL_TAG} must be {PENDING} or {APPROVED}, not {value:?}"
        )));
    }
    Ok(())
}

impl Registry<'_> {
    /// Registers a model name; a taken name is a conflict.
    pub async fn create_registered_model(
        &self,
        name: &str,
        description: &str,
        tags: &[KeyValue],
        user: &str,
    ) -> Result<RegisteredModel, MetadataError> {
        crate::validation::model_name(name, "name")?;
        for t in tags {
            check_policy_tag(&t.key, &t.value)?;
        }
        let mut tx = self.store.write_tx().await?;
        let now = now_ms();
        let res = sqlx::query(
            "INSERT INTO ml_registered_models (name, description, user_id, creation_time, last_updated_time)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(description)
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(MetadataError::Exists(Existing::RegisteredModel {
                name: name.to_string(),
            }));
        }
        for t in tags {
            set_model_tag(&mut tx, name, &t.key, &t.value).await?;
        }
        tx.commit().await?;
        self.registered_model(name)
            .await?
            .ok_or_else(|| no_model(name))
    }

    /// A registered model with its tags, aliases and newest version per stage.
    pub async fn registered_model(
        &self,
        name: &str,
    ) -> Result<Option<RegisteredModel>, MetadataError> {
        let Some(mut model) = sqlx::query_as::<_, RegisteredModel>(
            "SELECT name, description, user_id, creation_time, last_updated_time
             FROM ml_registered_models WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.store.pool)
        .await?
        else {
            return Ok(None);
        };
        model.tags = sqlx::query_as(
            "SELECT key, value FROM ml_registered_model_tags WHERE name = $1 ORDER BY key",
        )
        .bind(name)
        .fetch_all(&self.store.pool)
        .await?;
        model.aliases = sqlx::query_as(
            "SELECT alias, version FROM ml_model_aliases WHERE name = $1 ORDER BY alias",
        )
        .bind(name)
        .fetch_all(&self.store.pool)
        .await?;
        let versions = self.model_versions(Some(name)).await?;
        let mut latest: Vec<ModelVersion> = Vec::new();
        for stage in STAGES {
            if let Some(v) = versions
                .iter()
                .filter(|v| v.current_stage == stage)
                .max_by_key(|v| v.version.parse::<i64>().unwrap_or_default())
            {
                latest.push(v.clone());
            }
        }
        model.latest_versions = latest;
        Ok(Some(model))
    }

    async fn require_model(&self, name: &str) -> Result<RegisteredModel, MetadataError> {
        self.registered_model(name)
            .await?
            .ok_or_else(|| no_model(name))
    }

    /// Every registered model, by name.
    pub async fn registered_models(&self) -> Result<Vec<RegisteredModel>, MetadataError> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM ml_registered_models ORDER BY name")
                .fetch_all(&self.store.pool)
                .await?;
        let mut out = Vec::new();
        for n in names {
            if let Some(m) = self.registered_model(&n).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Renames a model and everything that names it.
    pub async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel, MetadataError> {
        self.require_model(name).await?;
        crate::validation::model_name(new_name, "new_name")?;
        if new_name.trim().is_empty() {
            return Err(MetadataError::Refused(
                "Registered model name cannot be empty.".into(),
            ));
        }
        if self.registered_model(new_name).await?.is_some() {
            return Err(MetadataError::Exists(Existing::RegisteredModel {
                name: new_name.to_string(),
            }));
        }
        let mut tx = self.store.write_tx().await?;
        for table in [
            "ml_registered_models",
            "ml_registered_model_tags",
            "ml_model_versions",
            "ml_model_version_tags",
            "ml_model_aliases",
        ] {
            sqlx::query(&format!("UPDATE {table} SET name = $1 WHERE name = $2"))
                .bind(new_name)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE ml_registered_models SET last_updated_time = $1 WHERE name = $2")
            .bind(now_ms())
            .bind(new_name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.require_model(new_name).await
    }

    pub async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel, MetadataError> {
        self.require_model(name).await?;
        sqlx::query(
            "UPDATE ml_registered_models SET description = $1, last_updated_time = $2 WHERE name = $3",
        )
        .bind(description)
        .bind(now_ms())
        .bind(name)
        .execute(&self.store.pool)
        .await?;
        self.require_model(name).await
    }

    /// Deletes a model with its versions, tags and aliases (the files stay where they are).
    pub async fn delete_registered_model(&self, name: &str) -> Result<(), MetadataError> {
        self.require_model(name).await?;
        let mut tx = self.store.write_tx().await?;
        for table in [
            "ml_registered_models",
            "ml_registered_model_tags",
            "ml_model_versions",
            "ml_model_version_tags",
            "ml_model_aliases",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE name = $1"))
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) a model's tag. The approval policy tags are checked.
    pub async fn registered_model_tag(
        &self,
        name: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), MetadataError> {
        registry_tag_ok(key, value)?;
        self.require_model(name).await?;
        let mut tx = self.store.write_tx().await?;
        match value {
            Some(v) => {
                check_policy_tag(key, v)?;
                set_model_tag(&mut tx, name, key, v).await?;
            }
            None => {
                sqlx::query("DELETE FROM ml_registered_model_tags WHERE name = $1 AND key = $2")
                    .bind(name)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds a version to a model (creating the model when it is new is the caller's choice),
    /// with the model's default approval status, and records `model.version.created`.
    pub async fn create_model_version(
        &self,
        v: &NewModelVersion,
        user: &str,
    ) -> Result<ModelVersion, MetadataError> {
        let model = self.require_model(&v.name).await?;
        let approval = tag_value(&model.tags, DEFAULT_APPROVAL_TAG).unwrap_or(PENDING);
        let mut tx = self.store.write_tx().await?;
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM ml_model_versions WHERE name = $1",
        )
        .bind(&v.name)
        .fetch_one(&mut *tx)
        .await?;
        let now = now_ms();
        let (by, reason) = if approval == APPROVED {
            (
                "tarn",
                format!("{DEFAULT_APPROVAL_TAG} of model {} is {APPROVED}", v.name),
            )
        } else {
            ("", String::new())
        };
        sqlx::query(
            "INSERT INTO ml_model_versions (name, version, description, user_id, source, storage_location,
                 run_id, run_link, model_id, status, current_stage, creation_time, last_updated_time,
                 approval_status, approval_by, approval_time, approval_reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'READY', 'None', $10, $10, $11, $12, $13, $14)",
        )
        .bind(&v.name)
        .bind(version)
        .bind(&v.description)
        .bind(user)
        .bind(&v.source)
        .bind(&v.storage_location)
        .bind(&v.run_id)
        .bind(&v.run_link)
        .bind(&v.model_id)
        .bind(now)
        .bind(approval)
        .bind(by)
        .bind(if by.is_empty() { 0 } else { now })
        .bind(&reason)
        .execute(&mut *tx)
        .await?;
        for t in &v.tags {
            set_version_tag(&mut tx, &v.name, version, &t.key, &t.value).await?;
        }
        touch_model(&mut tx, &v.name, now).await?;
        record(
            &mut tx,
            "model.version.created",
            &v.name,
            version,
            user,
            serde_json::json!({
                "approval_status": approval, "model_source": v.source, "run_id": v.run_id,
                "model_id": v.model_id,
            }),
        )
        .await?;
        tx.commit().await?;
        self.model_version(&v.name, &version.to_string())
            .await?
            .ok_or_else(|| no_version(&v.name, &version.to_string()))
    }

    /// One version of a model.
    pub async fn model_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<ModelVersion>, MetadataError> {
        let Ok(n) = version.trim().parse::<i64>() else {
            return Ok(None);
        };
        Ok(self
            .versions_where("name = $1 AND version = $2", name, Some(n))
            .await?
            .pop())
    }

    /// A version that exists, or `NotFound`.
    pub async fn require_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<ModelVersion, MetadataError> {
        self.model_version(name, version)
            .await?
            .ok_or_else(|| no_version(name, version))
    }

    /// The versions of one model (or of all), by name then version.
    pub async fn model_versions(
        &self,
        name: Option<&str>,
    ) -> Result<Vec<ModelVersion>, MetadataError> {
        match name {
            Some(n) => self.versions_where("name = $1", n, None).await,
            None => self.versions_where("$1 = ''", "", None).await,
        }
    }

    async fn versions_where(
        &self,
        clause: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<Vec<ModelVersion>, MetadataError> {
        let sql = format!(
            "SELECT name, version, description, user_id, source, storage_location, run_id, run_link,
                    model_id, status, current_stage, creation_time, last_updated_time,
                    approval_status, approval_by, approval_time, approval_reason
             FROM ml_model_versions WHERE {clause} ORDER BY name, version"
        );
        let mut q = sqlx::query_as::<_, ModelVersion>(&sql).bind(name);
        if let Some(v) = version {
            q = q.bind(v);
        }
        let mut out = q.fetch_all(&self.store.pool).await?;
        // The versions' tags and aliases in one query each (the clause names columns every
        // one of these tables has), not two per version.
        #[derive(sqlx::FromRow)]
        struct OfVersion<T> {
            name: String,
            #[sqlx(try_from = "IdText")]
            version: String,
            #[sqlx(flatten)]
            row: T,
        }
        #[derive(sqlx::FromRow)]
        struct AliasName {
            alias: String,
        }
        let tag_sql = format!(
            "SELECT name, version, key, value FROM ml_model_version_tags WHERE {clause} ORDER BY key"
        );
        let mut tq = sqlx::query_as::<_, OfVersion<KeyValue>>(&tag_sql).bind(name);
        let alias_sql = format!(
            "SELECT name, version, alias FROM ml_model_aliases WHERE {clause} ORDER BY alias"
        );
        let mut aq = sqlx::query_as::<_, OfVersion<AliasName>>(&alias_sql).bind(name);
        if let Some(v) = version {
            tq = tq.bind(v);
            aq = aq.bind(v);
        }
        let mut tags: HashMap<(String, String), Vec<KeyValue>> = HashMap::new();
        for t in tq.fetch_all(&self.store.pool).await? {
            tags.entry((t.name, t.version)).or_default().push(t.row);
        }
        let mut aliases: HashMap<(String, String), Vec<String>> = HashMap::new();
        for a in aq.fetch_all(&self.store.pool).await? {
            aliases
                .entry((a.name, a.version))
                .or_default()
                .push(a.row.alias);
        }
        for v in &mut out {
            let key = (v.name.clone(), v.version.clone());
            v.tags = tags.remove(&key).unwrap_or_default();
            v.aliases = aliases.remove(&key).unwrap_or_default();
        }
        Ok(out)
    }

    pub async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: &str,
    ) -> Result<ModelVersion, MetadataError> {
        let v = self.require_version(name, version).await?;
        sqlx::query(
            "UPDATE ml_model_versions SET description = $1, last_updated_time = $2
             WHERE name = $3 AND version = $4",
        )
        .bind(description)
        .bind(now_ms())
        .bind(name)
        .bind(version_number(name, &v.version)?)
        .execute(&self.store.pool)
        .await?;
        self.require_version(name, version).await
    }

    /// Deletes a version, its tags and the aliases pointing at it; records
    /// `model.version.deleted`.
    pub async fn delete_model_version(
        &self,
        name: &str,
        version: &str,
        by: &str,
    ) -> Result<(), MetadataError> {
        self.require_version(name, version).await?;
        let n = version_number(name, version)?;
        let mut tx = self.store.write_tx().await?;
        for table in [
            "ml_model_versions",
            "ml_model_version_tags",
            "ml_model_aliases",
        ] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE name = $1 AND version = $2"
            ))
            .bind(name)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        }
        record(
            &mut tx,
            "model.version.deleted",
            name,
            n,
            by,
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), MetadataError> {
        registry_tag_ok(key, value)?;
        self.require_version(name, version).await?;
        let n = version_number(name, version)?;
        let mut tx = self.store.write_tx().await?;
        match value {
            Some(v) => set_version_tag(&mut tx, name, n, key, v).await?,
            None => {
                sqlx::query(
                    "DELETE FROM ml_model_version_tags WHERE name = $1 AND version = $2 AND key = $3",
                )
                .bind(name)
                .bind(n)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves a version to `stage` (optionally archiving the others in it); refused when the
    /// stage requires approval and the version is not approved. Records
    /// `model.version.stage_changed` (and one per archived version).
    pub async fn transition_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
        by: &str,
    ) -> Result<ModelVersion, MetadataError> {
        let stage = canonical_stage(stage)?;
        let model = self.require_model(name).await?;
        let v = self.require_version(name, version).await?;
        guard(&model, &v, stage, "stage")?;
        let n = version_number(name, version)?;
        let now = now_ms();
        let mut tx = self.store.write_tx().await?;
        let mut moves = vec![(n, v.current_stage.clone(), stage)];
        if archive_existing && (stage == "Staging" || stage == "Production") {
            let others: Vec<i64> = sqlx::query_scalar(
                "SELECT version FROM ml_model_versions WHERE name = $1 AND current_stage = $2 AND version <> $3",
            )
            .bind(name)
            .bind(stage)
            .bind(n)
            .fetch_all(&mut *tx)
            .await?;
            for o in others {
                moves.push((o, stage.to_string(), "Archived"));
            }
        }
        for (version, from, to) in moves {
            sqlx::query(
                "UPDATE ml_model_versions SET current_stage = $1, last_updated_time = $2
                 WHERE name = $3 AND version = $4",
            )
            .bind(to)
            .bind(now)
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            record(
                &mut tx,
                "model.version.stage_changed",
                name,
                version,
                by,
                serde_json::json!({ "from_stage": from, "to_stage": to }),
            )
            .await?;
        }
        touch_model(&mut tx, name, now).await?;
        tx.commit().await?;
        self.require_version(name, version).await
    }

    /// Points `alias` at a version; refused when the alias requires approval and the version
    /// is not approved. Records `model.version.alias_set`.
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        by: &str,
    ) -> Result<(), MetadataError> {
        alias_name_ok(alias)?;
        let model = self.require_model(name).await?;
        let v = self.require_version(name, version).await?;
        guard(&model, &v, alias, "alias")?;
        let n = version_number(name, version)?;
        let previous = model
            .aliases
            .iter()
            .find(|a| a.alias == alias)
            .map(|a| a.version.clone());
        let mut tx = self.store.write_tx().await?;
        sqlx::query(
            "INSERT INTO ml_model_aliases (name, alias, version) VALUES ($1, $2, $3)
             ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        )
        .bind(name)
        .bind(alias)
        .bind(n)
        .execute(&mut *tx)
        .await?;
        record(
            &mut tx,
            "model.version.alias_set",
            name,
            n,
            by,
            serde_json::json!({ "alias": alias, "previous_version": previous }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes an alias; records `model.version.alias_deleted` for the version it named.
    pub async fn delete_alias(
        &self,
        name: &str,
        alias: &str,
        by: &str,
    ) -> Result<(), MetadataError> {
        let v = self.version_by_alias(name, alias).await?;
        let n = version_number(name, &v.version)?;
        let mut tx = self.store.write_tx().await?;
        sqlx::query("DELETE FROM ml_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&mut *tx)
            .await?;
        record(
            &mut tx,
            "model.version.alias_deleted",
            name,
            n,
            by,
            serde_json::json!({ "alias": alias }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The version an alias points at.
    pub async fn version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion, MetadataError> {
        self.require_model(name).await?;
        if alias.eq_ignore_ascii_case("latest") {
            // MLflow's reserved alias: the highest version.
            let newest: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM ml_model_versions WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.store.pool)
                    .await?;
            let newest = newest.ok_or_else(|| {
                MetadataError::NotFound(Missing::LatestVersion {
                    name: name.to_string(),
                })
            })?;
            return self.require_version(name, &newest.to_string()).await;
        }
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM ml_model_aliases WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&self.store.pool)
        .await?;
        let v = v.ok_or_else(|| {
            MetadataError::NotFound(Missing::Alias {
                name: name.to_string(),
                alias: alias.to_string(),
            })
        })?;
        self.require_version(name, &v.to_string()).await
    }

    /// The newest version in each of `stages` (every stage when empty).
    pub async fn latest_versions(
        &self,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>, MetadataError> {
        let model = self.require_model(name).await?;
        let wanted: Vec<&str> = stages
            .iter()
            .map(|s| canonical_stage(s))
            .collect::<Result<_, _>>()?;
        Ok(model
            .latest_versions
            .into_iter()
            .filter(|v| wanted.is_empty() || wanted.contains(&v.current_stage.as_str()))
            .collect())
    }

    /// Approves or rejects a version, recording who, when and why, and
    /// `model.version.approved` or `model.version.rejected`. Rejecting a version takes away the
    /// aliases that require approval from it (they must only name approved versions).
    pub async fn decide(
        &self,
        name: &str,
        version: &str,
        approve: bool,
        by: &str,
        reason: &str,
    ) -> Result<ModelVersion, MetadataError> {
        let model = self.require_model(name).await?;
        let v = self.require_version(name, version).await?;
        let n = version_number(name, version)?;
        let (status, kind) = if approve {
            (APPROVED, "model.version.approved")
        } else {
            (REJECTED, "model.version.rejected")
        };
        let now = now_ms();
        let mut tx = self.store.write_tx().await?;
        sqlx::query(
            "UPDATE ml_model_versions SET approval_status = $1, approval_by = $2, approval_time = $3,
                 approval_reason = $4, last_updated_time = $3 WHERE name = $5 AND version = $6",
        )
        .bind(status)
        .bind(by)
        .bind(now)
        .bind(reason)
        .bind(name)
        .bind(n)
        .execute(&mut *tx)
        .await?;
        let mut removed = Vec::new();
        if !approve {
            for a in v
                .aliases
                .iter()
                .filter(|a| requires_approval(&model.tags, a))
            {
                sqlx::query("DELETE FROM ml_model_aliases WHERE name = $1 AND alias = $2")
                    .bind(name)
                    .bind(a)
                    .execute(&mut *tx)
                    .await?;
                removed.push(a.clone());
            }
        }
        record(
            &mut tx,
            kind,
            name,
            n,
            by,
            serde_json::json!({
                "approval_status": status, "previous_status": v.approval.status,
                "reason": reason, "aliases_removed": removed,
            }),
        )
        .await?;
        tx.commit().await?;
        self.require_version(name, version).await
    }
}

/// Refuses to let an unapproved version take an alias or stage that requires approval.
fn guard(
    model: &RegisteredModel,
    v: &ModelVersion,
    target: &str,
    what: &str,
) -> Result<(), MetadataError> {
    if requires_approval(&model.tags, target) && v.approval.status != APPROVED {
        return Err(MetadataError::Refused(format!(
            "Version {} of model {} is {}: {what} '{target}' requires an approved version (tag {REQUIRED_FOR_TAG}). Approve it first: tarn models approve {} {} --reason '...'",
            v.version, v.name, v.approval.status, v.name, v.version
        )));
    }
    Ok(())
}

async fn set_model_tag(
    tx: &mut Tx,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), MetadataError> {
    sqlx::query(
        "INSERT INTO ml_registered_model_tags (name, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(key)
    .bind(value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn set_version_tag(
    tx: &mut Tx,
    name: &str,
    version: i64,
    key: &str,
    value: &str,
) -> Result<(), MetadataError> {
    sqlx::query(
        "INSERT INTO ml_model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(version)
    .bind(key)
    .bind(value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn touch_model(tx: &mut Tx, name: &str, now: i64) -> Result<(), MetadataError> {
    sqlx::query("UPDATE ml_registered_models SET last_updated_time = $1 WHERE name = $2")
        .bind(now)
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Searchable for RegisteredModel {
    fn missing_tag_differs(&self) -> bool {
        true
    }

    fn value_of(&self, e: &Entity) -> Option<Literal> {
        match e {
            Entity::Tag(k) => find(&self.tags, k),
            Entity::Attribute(k) => Some(match k.as_str() {
                "name" => Literal::Text(self.name.clone()),
                "creation_timestamp" => Literal::Number(self.creation_timestamp as f64),
                "last_updated_timestamp" => Literal::Number(self.last_updated_timestamp as f64),
                "description" => Literal::Text(self.description.clone()),
                _ => return None,
            }),
            _ => None,
        }
    }
}

impl Searchable for ModelVersion {
    fn missing_tag_differs(&self) -> bool {
        true
    }

    fn value_of(&self, e: &Entity) -> Option<Literal> {
        match e {
            Entity::Tag(k) => find(&self.tags, k),
            Entity::Attribute(k) => Some(match k.as_str() {
                "name" => Literal::Text(self.name.clone()),
                "version" | "version_number" => Literal::Number(self.version.parse::<f64>().ok()?),
                "run_id" => Literal::Text(self.run_id.clone()),
                "source" | "source_path" => Literal::Text(self.source.clone()),
                "model_id" => Literal::Text(self.model_id.clone()),
                "current_stage" => Literal::Text(self.current_stage.clone()),
                "user_id" => Literal::Text(self.user_id.clone()),
                "approval_status" => Literal::Text(self.approval.status.clone()),
                "creation_timestamp" => Literal::Number(self.creation_timestamp as f64),
                "last_updated_timestamp" => Literal::Number(self.last_updated_timestamp as f64),
                _ => return None,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fresh_store, BACKENDS};

    fn version(name: &str, source: &str) -> NewModelVersion {
        NewModelVersion {
            name: name.into(),
            source: source.into(),
            storage_location: source.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn approval_policy_guards_aliases_and_stages_and_every_change_is_an_event() {
        for backend in BACKENDS {
            let dir = tempfile::tempdir().unwrap();
            let s = fresh_store(backend, dir.path()).await.unwrap();
            let required = KeyValue {
                key: REQUIRED_FOR_TAG.into(),
                value: "champion, Production".into(),
            };
            s.registry()
                .create_registered_model("delays", "", &[required], "ana")
                .await
                .unwrap();
            let v1 = s
                .registry()
                .create_model_version(&version("delays", "s3://m/1"), "ana")
                .await
                .unwrap();
            assert_eq!(
                (v1.version.as_str(), v1.approval.status.as_str()),
                ("1", PENDING)
            );
            // Pending versions may not take guarded aliases or stages; others are free.
            let err = s
                .registry()
                .set_alias("delays", "champion", "1", "ana")
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("tarn models approve delays 1"),
                "{err}"
            );
            let err = s
                .registry()
                .transition_stage("delays", "1", "production", false, "ana")
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("requires an approved version"),
                "{err}"
            );
            s.registry()
                .set_alias("delays", "candidate", "1", "ana")
                .await
                .unwrap();
            s.registry()
                .transition_stage("delays", "1", "staging", false, "ana")
                .await
                .unwrap();
            let v = s
                .registry()
                .decide("delays", "1", true, "bo", "good")
                .await
                .unwrap();
            assert_eq!(
                (
                    v.approval.status.as_str(),
                    v.approval.by.as_str(),
                    v.approval.reason.as_str()
                ),
                (APPROVED, "bo", "good")
            );
            assert!(v.approval.time > 0);
            s.registry()
                .set_alias("delays", "champion", "1", "ana")
                .await
                .unwrap();
            s.registry()
                .transition_stage("delays", "1", "Production", false, "ana")
                .await
                .unwrap();
            // A second version archived the first out of Production when asked to.
            s.registry()
                .create_model_version(&version("delays", "s3://m/2"), "ana")
                .await
                .unwrap();
            s.registry()
                .decide("delays", "2", true, "bo", "better")
                .await
                .unwrap();
            s.registry()
                .transition_stage("delays", "2", "Production", true, "ana")
                .await
                .unwrap();
            let v1 = s.registry().require_version("delays", "1").await.unwrap();
            assert_eq!(v1.current_stage, "Archived");
            let latest = s
                .registry()
                .latest_versions("delays", &["Production".into()])
                .await
                .unwrap();
            assert_eq!(latest[0].version, "2");
            // Rejecting takes the guarded alias away, not the others.
            s.registry()
                .decide("delays", "1", false, "bo", "leaks the label")
                .await
                .unwrap();
            let v1 = s.registry().require_version("delays", "1").await.unwrap();
            assert_eq!(v1.aliases, ["candidate"]);
            assert_eq!(v1.approval.status, REJECTED);
            assert!(s
                .registry()
                .version_by_alias("delays", "champion")
                .await
                .is_err());
            // A model whose default is Approved starts its versions approved.
            let auto = KeyValue {
                key: DEFAULT_APPROVAL_TAG.into(),
                value: APPROVED.into(),
            };
            s.registry()
                .create_registered_model("fast", "", &[auto], "ana")
                .await
                .unwrap();
            let f = s
                .registry()
                .create_model_version(&version("fast", "s3://f/1"), "ana")
                .await
                .unwrap();
            assert_eq!(f.approval.status, APPROVED);
            let bad = KeyValue {
                key: DEFAULT_APPROVAL_TAG.into(),
                value: "yes".into(),
            };
            assert!(s
                .registry()
                .create_registered_model("x", "", &[bad], "ana")
                .await
                .is_err());
            // Renaming carries versions and aliases along.
            s.registry()
                .rename_registered_model("delays", "arrival-delays")
                .await
                .unwrap();
            assert_eq!(
                s.registry()
                    .model_versions(Some("arrival-delays"))
                    .await
                    .unwrap()
                    .len(),
                2
            );
            let kinds: Vec<String> = sqlx::query_scalar(
                "SELECT kind FROM events WHERE zone = 'models' AND object_key = 'delays/1' ORDER BY id",
            )
            .fetch_all(&s.pool)
            .await
            .unwrap();
            assert_eq!(
                kinds,
                [
                    "model.version.created",
                    "model.version.alias_set",
                    "model.version.stage_changed",
                    "model.version.approved",
                    "model.version.alias_set",
                    "model.version.stage_changed",
                    "model.version.stage_changed",
                    "model.version.rejected",
                ]
            );
        }
    }
}
