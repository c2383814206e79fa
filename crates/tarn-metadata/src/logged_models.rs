//! MLflow 3's logged models (a model logged from a run, with its own artifacts, params and
//! tags, before any registration) and what a run records as its inputs (datasets, models) and
//! outputs (models). The types serialise in the shapes of MLflow's REST API.

use crate::columns::IdText;
use crate::kv::KeyValue;
use crate::run_search::{find, Entity, Literal, Searchable};
use crate::{Inactive, Kind, MetadataError, Missing, Store};
use serde::{Deserialize, Serialize};

/// MLflow 3 logged models, and what runs record as inputs and outputs. Reached with [`Store::logged_models`].
#[derive(Clone, Copy, Debug)]
pub struct LoggedModels<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// MLflow 3 logged models, and what runs record as inputs and outputs.
    pub fn logged_models(&self) -> LoggedModels<'_> {
        LoggedModels { store: self }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, sqlx::FromRow)]
pub struct LoggedModelInfo {
    #[sqlx(rename = "id")]
    pub model_id: String,
    #[sqlx(try_from = "IdText")]
    pub experiment_id: String,
    pub name: String,
    #[sqlx(rename = "creation_time")]
    pub creation_timestamp_ms: i64,
    #[sqlx(rename = "last_updated_time")]
    pub last_updated_timestamp_ms: i64,
    #[sqlx(rename = "artifact_location")]
    pub artifact_uri: String,
    /// `LOGGED_MODEL_PENDING`, `LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[sqlx(skip)]
    pub tags: Vec<KeyValue>,
    /// Not part of MLflow's message; the client ignores it.
    pub lifecycle_stage: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoggedModelData {
    pub params: Vec<KeyValue>,
    /// Every metric point logged for the model (`log_metric(..., model_id=...)`).
    pub metrics: Vec<crate::tracking::Metric>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoggedModel {
    pub info: LoggedModelInfo,
    pub data: LoggedModelData,
}

/// What `create_logged_model` needs.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    pub experiment_id: String,
    pub name: Option<String>,
    pub source_run_id: Option<String>,
    pub model_type: Option<String>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn no_model(id: &str) -> MetadataError {
    MetadataError::NotFound(Missing::LoggedModel { id: id.to_string() })
}

impl LoggedModels<'_> {
    /// Creates a logged model (status pending until the client finalizes it) whose artifacts
    /// live under its experiment's location, `.../models/<id>/artifacts`, as MLflow lays them.
    pub async fn create_logged_model(
        &self,
        m: &NewLoggedModel,
    ) -> Result<LoggedModel, MetadataError> {
        let exp = self
            .store
            .tracking()
            .experiment(&m.experiment_id)
            .await?
            .ok_or_else(|| {
                MetadataError::NotFound(Missing::Experiment {
                    id: m.experiment_id.clone(),
                })
            })?;
        if exp.lifecycle_stage != "active" {
            return Err(MetadataError::Inactive(Inactive {
                kind: Kind::Experiment,
                id: m.experiment_id.clone(),
                stage: exp.lifecycle_stage,
            }));
        }
        let id = format!("m-{}", uuid::Uuid::new_v4().simple());
        let name = m
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("model-{}", &id[2..10]));
        let location = format!("{}/models/{id}/artifacts", exp.artifact_location);
        let now = now_ms();
        let mut tx = self.store.write_tx().await?;
        sqlx::query(
            "INSERT INTO ml_logged_models (id, experiment_id, name, source_run_id, model_type, status,
                 artifact_location, lifecycle_stage, creation_time, last_updated_time)
             VALUES ($1, $2, $3, $4, $5, 'LOGGED_MODEL_PENDING', $6, 'active', $7, $7)",
        )
        .bind(&id)
        .bind(exp.experiment_id.parse::<i64>().unwrap_or_default())
        .bind(&name)
        .bind(m.source_run_id.as_deref().filter(|s| !s.is_empty()))
        .bind(m.model_type.as_deref().filter(|s| !s.is_empty()))
        .bind(&location)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (table, rows) in [
            ("ml_logged_model_params", &m.params),
            ("ml_logged_model_tags", &m.tags),
        ] {
            for kv in rows {
                upsert_pair(&mut tx, table, &id, kv).await?;
            }
        }
        tx.commit().await?;
        self.logged_model(&id).await?.ok_or_else(|| no_model(&id))
    }

    /// A logged model, deleted or not.
    pub async fn logged_model(&self, id: &str) -> Result<Option<LoggedModel>, MetadataError> {
        let Some(mut info) = sqlx::query_as::<_, LoggedModelInfo>(
            "SELECT id, experiment_id, name, source_run_id, model_type, status, status_message,
                    artifact_location, lifecycle_stage, creation_time, last_updated_time
             FROM ml_logged_models WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.store.pool)
        .await?
        else {
            return Ok(None);
        };
        let pairs = |table: &str| {
            let sql = format!("SELECT key, value FROM {table} WHERE model_id = $1 ORDER BY key");
            async move {
                Ok::<Vec<KeyValue>, MetadataError>(
                    sqlx::query_as(&sql)
                        .bind(id)
                        .fetch_all(&self.store.pool)
                        .await?,
                )
            }
        };
        info.tags = pairs("ml_logged_model_tags").await?;
        #[derive(sqlx::FromRow)]
        struct Point {
            #[sqlx(flatten)]
            point: crate::tracking::MetricRow,
            run_id: String,
            dataset_name: String,
            dataset_digest: String,
        }
        let some = |s: String| Some(s).filter(|s| !s.is_empty());
        let metrics = sqlx::query_as::<_, Point>(
            "SELECT run_id, key, value, is_nan, timestamp, step, dataset_name, dataset_digest
             FROM ml_logged_model_metrics WHERE model_id = $1 ORDER BY key, step, timestamp",
        )
        .bind(id)
        .fetch_all(&self.store.pool)
        .await?
        .into_iter()
        .map(|p| crate::tracking::Metric {
            model_id: Some(id.to_string()),
            run_id: some(p.run_id),
            dataset_name: some(p.dataset_name),
            dataset_digest: some(p.dataset_digest),
            ..p.point.into()
        })
        .collect();
        Ok(Some(LoggedModel {
            info,
            data: LoggedModelData {
                params: pairs("ml_logged_model_params").await?,
                metrics,
            },
        }))
    }

    /// A logged model that is not deleted, or `NotFound`.
    pub async fn live_logged_model(&self, id: &str) -> Result<LoggedModel, MetadataError> {
        match self.logged_model(id).await? {
            Some(m) if m.info.lifecycle_stage == "active" => Ok(m),
            _ => Err(no_model(id)),
        }
    }

    /// Sets a logged model's status (`LOGGED_MODEL_READY` once its artifacts are uploaded).
    pub async fn finalize_logged_model(
        &self,
        id: &str,
        status: &str,
    ) -> Result<LoggedModel, MetadataError> {
        self.live_logged_model(id).await?;
        sqlx::query(
            "UPDATE ml_logged_models SET status = $1, last_updated_time = $2 WHERE id = $3",
        )
        .bind(status)
        .bind(now_ms())
        .bind(id)
        .execute(&self.store.pool)
        .await?;
        self.live_logged_model(id).await
    }

    /// Sets tags or params of a logged model (`table` names which).
    async fn logged_model_pairs(
        &self,
        id: &str,
        table: &str,
        pairs: &[KeyValue],
    ) -> Result<(), MetadataError> {
        self.live_logged_model(id).await?;
        let mut tx = self.store.write_tx().await?;
        for kv in pairs {
            upsert_pair(&mut tx, table, id, kv).await?;
        }
        sqlx::query("UPDATE ml_logged_models SET last_updated_time = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_logged_model_tags(
        &self,
        id: &str,
        tags: &[KeyValue],
    ) -> Result<(), MetadataError> {
        self.logged_model_pairs(id, "ml_logged_model_tags", tags)
            .await
    }

    pub async fn log_logged_model_params(
        &self,
        id: &str,
        params: &[KeyValue],
    ) -> Result<(), MetadataError> {
        self.logged_model_pairs(id, "ml_logged_model_params", params)
            .await
    }

    pub async fn delete_logged_model_tag(&self, id: &str, key: &str) -> Result<(), MetadataError> {
        self.live_logged_model(id).await?;
        let res = sqlx::query("DELETE FROM ml_logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute(&self.store.pool)
            .await?;
        if res.rows_affected() == 0 {
            return Err(MetadataError::NotFound(Missing::LoggedModelTag {
                id: id.to_string(),
                key: key.to_string(),
            }));
        }
        Ok(())
    }

    /// Marks a logged model deleted (its artifacts stay, as in MLflow).
    pub async fn delete_logged_model(&self, id: &str) -> Result<(), MetadataError> {
        self.live_logged_model(id).await?;
        sqlx::query(
            "UPDATE ml_logged_models SET lifecycle_stage = 'deleted', last_updated_time = $1 WHERE id = $2",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// The live logged models of `experiment_ids`, newest first.
    pub async fn logged_models_of(
        &self,
        experiment_ids: &[String],
    ) -> Result<Vec<LoggedModel>, MetadataError> {
        let mut out = Vec::new();
        for e in experiment_ids {
            let Ok(e) = e.parse::<i64>() else { continue };
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM ml_logged_models WHERE experiment_id = $1 AND lifecycle_stage = 'active'
                 ORDER BY creation_time DESC, id",
            )
            .bind(e)
            .fetch_all(&self.store.pool)
            .await?;
            for id in ids {
                if let Some(m) = self.logged_model(&id).await? {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    /// Records models a run produced (`runs/outputs`), each at a step.
    pub async fn log_outputs(
        &self,
        run_id: &str,
        models: &[(String, i64)],
    ) -> Result<(), MetadataError> {
        self.require_run(run_id).await?;
        let mut tx = self.store.write_tx().await?;
        for (model, step) in models {
            sqlx::query(
                "INSERT INTO ml_run_outputs (run_id, model_id, step) VALUES ($1, $2, $3)
                 ON CONFLICT (run_id, model_id) DO UPDATE SET step = excluded.step",
            )
            .bind(run_id)
            .bind(model)
            .bind(step)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records what a run read (`runs/log-inputs`): datasets as MLflow's `DatasetInput`
    /// documents (one per name and digest) and models by id.
    pub async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[serde_json::Value],
        models: &[String],
    ) -> Result<(), MetadataError> {
        for d in datasets {
            crate::validation::dataset_input(d)?;
        }
        self.require_run(run_id).await?;
        let mut tx = self.store.write_tx().await?;
        let rows = datasets
            .iter()
            .map(|d| {
                let ident = format!(
                    "{}\u{1f}{}",
                    d["dataset"]["name"].as_str().unwrap_or_default(),
                    d["dataset"]["digest"].as_str().unwrap_or_default()
                );
                (
                    "dataset",
                    ident,
                    d.to_string(),
                    crate::tracking::dataset_facts(d),
                )
            })
            .chain(models.iter().map(|m| {
                (
                    "model",
                    m.clone(),
                    serde_json::json!({ "model_id": m }).to_string(),
                    Default::default(),
                )
            }));
        for (kind, ident, body, (name, digest, context)) in rows {
            sqlx::query(
                "INSERT INTO ml_run_inputs (run_id, kind, ident, body, name, digest, context)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (run_id, kind, ident) DO UPDATE SET body = excluded.body,
                     name = excluded.name, digest = excluded.digest, context = excluded.context",
            )
            .bind(run_id)
            .bind(kind)
            .bind(&ident)
            .bind(&body)
            .bind(name)
            .bind(digest)
            .bind(context)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn require_run(&self, run_id: &str) -> Result<(), MetadataError> {
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM ml_runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.store.pool)
            .await?;
        found.map(|_| ()).ok_or_else(|| {
            MetadataError::NotFound(Missing::Run {
                id: run_id.to_string(),
            })
        })
    }
}

impl Store {
    /// Fills the name, digest and context columns of dataset inputs logged before they
    /// existed (migration 0011).
    pub(crate) async fn backfill_dataset_inputs(&self) -> Result<(), MetadataError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT run_id, ident, body FROM ml_run_inputs WHERE kind = 'dataset' AND name = '' AND digest = ''",
        )
        .fetch_all(&self.pool)
        .await?;
        for (run_id, ident, body) in rows {
            let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let (name, digest, context) = crate::tracking::dataset_facts(&body);
            if name.is_empty() && digest.is_empty() {
                continue;
            }
            sqlx::query(
                "UPDATE ml_run_inputs SET name = $1, digest = $2, context = $3
                 WHERE run_id = $4 AND kind = 'dataset' AND ident = $5",
            )
            .bind(name)
            .bind(digest)
            .bind(context)
            .bind(run_id)
            .bind(ident)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }
}

/// Inserts or replaces one key of a `(model_id, key, value)` table.
async fn upsert_pair(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    table: &str,
    id: &str,
    kv: &KeyValue,
) -> Result<(), MetadataError> {
    let sql = format!(
        "INSERT INTO {table} (model_id, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(&kv.key)
        .bind(&kv.value)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Searchable for LoggedModel {
    /// A metric filter matches when any point of the model's metric does (MLflow joins the
    /// model's metric rows).
    fn values_of(&self, e: &Entity) -> Vec<Literal> {
        match e {
            Entity::Metric(k) => self
                .data
                .metrics
                .iter()
                .filter(|m| &m.key == k)
                .map(|m| Literal::Number(m.value))
                .collect(),
            e => self.value_of(e).into_iter().collect(),
        }
    }

    fn value_of(&self, e: &Entity) -> Option<Literal> {
        let i = &self.info;
        match e {
            Entity::Tag(k) => find(&i.tags, k),
            Entity::Param(k) => find(&self.data.params, k),
            Entity::Metric(k) => self
                .data
                .metrics
                .iter()
                .filter(|m| &m.key == k)
                .max_by_key(|m| (m.step, m.timestamp))
                .map(|m| Literal::Number(m.value)),
            Entity::Dataset(_) | Entity::Metadata(_) => None,
            Entity::Attribute(k) => Some(match k.as_str() {
                "name" => Literal::Text(i.name.clone()),
                "model_id" => Literal::Text(i.model_id.clone()),
                "model_type" => Literal::Text(i.model_type.clone()?),
                "status" => Literal::Text(i.status.clone()),
                "source_run_id" => Literal::Text(i.source_run_id.clone()?),
                "experiment_id" => Literal::Text(i.experiment_id.clone()),
                "creation_timestamp" | "creation_time" => {
                    Literal::Number(i.creation_timestamp_ms as f64)
                }
                "last_updated_timestamp" => Literal::Number(i.last_updated_timestamp_ms as f64),
                _ => return None,
            }),
        }
    }
}
