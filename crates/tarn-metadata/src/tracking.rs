//! ML tracking as MLflow keeps it: experiments, runs, their params, tags and metrics (with
//! every logged value kept for the history, and the latest per key for search). The types
//! serialise in the shapes of MLflow's REST API, so the server answers with them directly.

use crate::run_search::{find, Bind, Entity, Literal, Searchable};
use crate::{Existing, Inactive, Kind, MetadataError, Missing, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::columns::{Flag, IdText, JsonText};
pub use crate::kv::KeyValue;

/// MLflow tracking: experiments, runs, params, tags and metrics. Reached with [`Store::tracking`].
#[derive(Clone, Copy, Debug)]
pub struct Tracking<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// MLflow tracking: experiments, runs, params, tags and metrics.
    pub fn tracking(&self) -> Tracking<'_> {
        Tracking { store: self }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, sqlx::FromRow)]
pub struct Experiment {
    #[sqlx(rename = "id", try_from = "IdText")]
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub last_update_time: i64,
    pub creation_time: i64,
    #[sqlx(skip)]
    pub tags: Vec<KeyValue>,
}

/// The columns an experiment is read from.
const EXPERIMENT_COLUMNS: &str =
    "id, name, artifact_location, lifecycle_stage, creation_time, last_update_time";

/// A key-value pair of one run (or experiment, trace, model): the owner's id beside it.
#[derive(sqlx::FromRow)]
pub(crate) struct OwnedPair {
    pub(crate) owner: String,
    #[sqlx(flatten)]
    pub(crate) pair: KeyValue,
}

/// A stored metric point: NaN where the mark says so.
#[derive(sqlx::FromRow)]
pub(crate) struct MetricRow {
    key: String,
    value: f64,
    #[sqlx(try_from = "Flag")]
    is_nan: bool,
    timestamp: i64,
    step: i64,
}

impl From<MetricRow> for Metric {
    fn from(r: MetricRow) -> Metric {
        Metric {
            key: r.key,
            value: if r.is_nan { f64::NAN } else { r.value },
            timestamp: r.timestamp,
            step: r.step,
            ..Default::default()
        }
    }
}

/// One metric point. NaN travels as the JSON string `"NaN"` (as MLflow's server answers);
/// infinities are kept as the largest finite doubles, as MLflow's SQL store keeps them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Metric {
    pub key: String,
    #[serde(serialize_with = "nan_as_text", deserialize_with = "number_or_text")]
    pub value: f64,
    pub timestamp: i64,
    #[serde(default)]
    pub step: i64,
    /// The logged model the point was measured for (MLflow 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The dataset the point was measured on, by name and digest (MLflow 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    /// The run that logged it, where the answer lists points of several runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

fn nan_as_text<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_f64(if *v > 0.0 { f64::MAX } else { f64::MIN })
    } else {
        s.serialize_f64(*v)
    }
}

fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| serde::de::Error::custom("not a double")),
        serde_json::Value::String(s) => metric_value(&s).map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!("not a number: {other}"))),
    }
}

/// A metric value written as text: a number, or `NaN`, `Infinity`, `-Infinity` as protobuf's
/// JSON writes them (and Rust's `inf`, `nan`).
pub fn metric_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        s => s.parse().map_err(|_| format!("{s:?} is not a double")),
    }
}

/// How a value is stored: NaN as 0 beside a mark, infinities as the largest finite doubles.
pub(crate) fn stored(v: f64) -> (f64, i64) {
    if v.is_nan() {
        (0.0, 1)
    } else if v.is_infinite() {
        (if v > 0.0 { f64::MAX } else { f64::MIN }, 0)
    } else {
        (v, 0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, sqlx::FromRow)]
pub struct RunInfo {
    pub run_id: String,
    pub run_uuid: String,
    pub run_name: String,
    #[sqlx(try_from = "IdText")]
    pub experiment_id: String,
    pub user_id: String,
    pub status: String,
    pub start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunData {
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: serde_json::Value,
    pub outputs: serde_json::Value,
}

/// What `log_batch` writes, in one transaction.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Batch {
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub params: Vec<KeyValue>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

fn no_experiment(id: &str) -> MetadataError {
    MetadataError::NotFound(Missing::Experiment { id: id.to_string() })
}

fn no_run(id: &str) -> MetadataError {
    MetadataError::NotFound(Missing::Run { id: id.to_string() })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Tracking<'_> {
    /// Creates an experiment; a taken name is a conflict.
    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<String, MetadataError> {
        crate::validation::experiment_name(name)?;
        for t in tags {
            experiment_tag_ok(&t.key, &t.value)?;
        }
        if self.experiment_by_name(name).await?.is_some() {
            return Err(MetadataError::Exists(Existing::Experiment {
                name: name.to_string(),
            }));
        }
        let mut tx = self.store.write_tx().await?;
        let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM ml_experiments")
            .fetch_one(&mut *tx)
            .await?;
        let now = now_ms();
        let location = artifact_location
            .map(str::to_string)
            .unwrap_or_else(|| format!("mlflow-artifacts:/{id}"));
        sqlx::query(
            "INSERT INTO ml_experiments (id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
             VALUES ($1, $2, $3, 'active', $4, $4)",
        )
        .bind(id)
        .bind(name)
        .bind(&location)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for t in tags {
            sqlx::query(
                "INSERT INTO ml_experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id.to_string())
    }

    async fn experiment_where(
        &self,
        clause: &str,
        arg: &str,
    ) -> Result<Option<Experiment>, MetadataError> {
        let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM ml_experiments WHERE {clause}");
        let mut q = sqlx::query_as::<_, Experiment>(&sql);
        q = match arg.parse::<i64>() {
            Ok(n) if clause.starts_with("id") => q.bind(n),
            _ => q.bind(arg.to_string()),
        };
        let Some(mut e) = q.fetch_optional(&self.store.pool).await? else {
            return Ok(None);
        };
        e.tags = sqlx::query_as(
            "SELECT key, value FROM ml_experiment_tags WHERE experiment_id = $1 ORDER BY key",
        )
        .bind(e.experiment_id.parse::<i64>().unwrap_or_default())
        .fetch_all(&self.store.pool)
        .await?;
        Ok(Some(e))
    }

    pub async fn experiment(&self, id: &str) -> Result<Option<Experiment>, MetadataError> {
        if id.parse::<i64>().is_err() {
            return Ok(None);
        }
        self.experiment_where("id = $1", id).await
    }

    pub async fn experiment_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Experiment>, MetadataError> {
        self.experiment_where("name = $1", name).await
    }

    /// Every experiment in `stage` (`active`, `deleted`, or all for `None`), by id.
    pub async fn experiments(&self, stage: Option<&str>) -> Result<Vec<Experiment>, MetadataError> {
        let stage = stage.unwrap_or("");
        let mut out: Vec<Experiment> = sqlx::query_as(&format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM ml_experiments
             WHERE ($1 = '' OR lifecycle_stage = $1) ORDER BY id"
        ))
        .bind(stage)
        .fetch_all(&self.store.pool)
        .await?;
        // Every experiment's tags in one query, not one per experiment.
        let tags: Vec<OwnedPair> = sqlx::query_as(
            "SELECT CAST(t.experiment_id AS TEXT) AS owner, t.key, t.value
             FROM ml_experiment_tags t JOIN ml_experiments e ON e.id = t.experiment_id
             WHERE ($1 = '' OR e.lifecycle_stage = $1) ORDER BY t.key",
        )
        .bind(stage)
        .fetch_all(&self.store.pool)
        .await?;
        let mut by_id: std::collections::HashMap<String, Vec<KeyValue>> = Default::default();
        for t in tags {
            by_id.entry(t.owner).or_default().push(t.pair);
        }
        for e in &mut out {
            e.tags = by_id.remove(&e.experiment_id).unwrap_or_default();
        }
        Ok(out)
    }

    /// Moves an experiment to `stage` (`active` or `deleted`); its runs follow, as in MLflow.
    pub async fn set_experiment_stage(&self, id: &str, stage: &str) -> Result<(), MetadataError> {
        let n = id.parse::<i64>().map_err(|_| no_experiment(id))?;
        // MLflow's server lets the default experiment be deleted (and restored) too.
        let mut tx = self.store.write_tx().await?;
        let res = sqlx::query(
            "UPDATE ml_experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE id = $3",
        )
        .bind(stage)
        .bind(now_ms())
        .bind(n)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(no_experiment(id));
        }
        sqlx::query("UPDATE ml_runs SET lifecycle_stage = $1 WHERE experiment_id = $2")
            .bind(stage)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Renames an experiment; a taken name is a conflict.
    pub async fn rename_experiment(&self, id: &str, name: &str) -> Result<(), MetadataError> {
        crate::validation::experiment_name(name)?;
        if self.experiment(id).await?.is_none() {
            return Err(no_experiment(id));
        }
        if self.experiment_by_name(name).await?.is_some() {
            return Err(MetadataError::Exists(Existing::Experiment {
                name: name.to_string(),
            }));
        }
        sqlx::query("UPDATE ml_experiments SET name = $1, last_update_time = $2 WHERE id = $3")
            .bind(name)
            .bind(now_ms())
            .bind(id.parse::<i64>().unwrap_or_default())
            .execute(&self.store.pool)
            .await?;
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) an experiment's tag.
    pub async fn experiment_tag(
        &self,
        id: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), MetadataError> {
        experiment_tag_ok(key, value.unwrap_or_default())?;
        if self.experiment(id).await?.is_none() {
            return Err(no_experiment(id));
        }
        let n = id.parse::<i64>().unwrap_or_default();
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO ml_experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(n)
                .bind(key)
                .bind(v)
                .execute(&self.store.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM ml_experiment_tags WHERE experiment_id = $1 AND key = $2")
                    .bind(n)
                    .bind(key)
                    .execute(&self.store.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Moves a run to `stage` (`active` or `deleted`).
    pub async fn set_run_stage(&self, id: &str, stage: &str) -> Result<(), MetadataError> {
        let res = sqlx::query("UPDATE ml_runs SET lifecycle_stage = $1 WHERE id = $2")
            .bind(stage)
            .bind(id)
            .execute(&self.store.pool)
            .await?;
        if res.rows_affected() == 0 {
            return Err(no_run(id));
        }
        Ok(())
    }

    /// Removes a run's tag; a missing tag is an error, as in MLflow.
    pub async fn delete_run_tag(&self, id: &str, key: &str) -> Result<(), MetadataError> {
        if self.run(id).await?.is_none() {
            return Err(no_run(id));
        }
        let res = sqlx::query("DELETE FROM ml_run_tags WHERE run_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute(&self.store.pool)
            .await?;
        if res.rows_affected() == 0 {
            return Err(MetadataError::NotFound(Missing::RunTag {
                run_id: id.to_string(),
                key: key.to_string(),
            }));
        }
        Ok(())
    }

    /// Starts a run in `experiment_id`.
    pub async fn create_run(
        &self,
        experiment_id: &str,
        user_id: &str,
        run_name: Option<&str>,
        start_time: Option<i64>,
        tags: &[KeyValue],
    ) -> Result<Run, MetadataError> {
        let exp = self
            .experiment(experiment_id)
            .await?
            .ok_or_else(|| no_experiment(experiment_id))?;
        if exp.lifecycle_stage != "active" {
            return Err(MetadataError::Inactive(Inactive {
                kind: Kind::Experiment,
                id: experiment_id.to_string(),
                stage: exp.lifecycle_stage,
            }));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = run_name
            .map(str::to_string)
            .or_else(|| {
                tags.iter()
                    .find(|t| t.key == "mlflow.runName")
                    .map(|t| t.value.clone())
            })
            .unwrap_or_else(|| format!("run-{}", &id[..8]));
        let artifact_uri = format!("{}/{id}/artifacts", exp.artifact_location);
        let mut tx = self.store.write_tx().await?;
        sqlx::query(
            "INSERT INTO ml_runs (id, experiment_id, name, user_id, status, start_time, lifecycle_stage, artifact_uri)
             VALUES ($1, $2, $3, $4, 'RUNNING', $5, 'active', $6)",
        )
        .bind(&id)
        .bind(exp.experiment_id.parse::<i64>().unwrap_or_default())
        .bind(&name)
        .bind(user_id)
        .bind(start_time.unwrap_or_else(now_ms))
        .bind(&artifact_uri)
        .execute(&mut *tx)
        .await?;
        let mut tags = tags.to_vec();
        if !tags.iter().any(|t| t.key == "mlflow.runName") {
            tags.push(KeyValue {
                key: "mlflow.runName".into(),
                value: name,
            });
        }
        for t in &tags {
            set_tag(&mut tx, &id, t).await?;
        }
        tx.commit().await?;
        self.run(&id).await?.ok_or_else(|| no_run(&id))
    }

    /// A run with its latest metrics, params, tags, inputs and outputs.
    pub async fn run(&self, id: &str) -> Result<Option<Run>, MetadataError> {
        Ok(self.runs_by_ids(&[id.to_string()]).await?.pop())
    }

    /// Sets a run's status, end time and name (each when given).
    pub async fn update_run(
        &self,
        id: &str,
        status: Option<&str>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo, MetadataError> {
        let mut tx = self.store.write_tx().await?;
        let res = sqlx::query(
            "UPDATE ml_runs SET status = COALESCE($1, status), end_time = COALESCE($2, end_time),
                    name = COALESCE($3, name) WHERE id = $4",
        )
        .bind(status)
        .bind(end_time)
        .bind(run_name)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(no_run(id));
        }
        if let Some(name) = run_name {
            let tag = KeyValue {
                key: "mlflow.runName".into(),
                value: name.into(),
            };
            set_tag(&mut tx, id, &tag).await?;
        }
        tx.commit().await?;
        Ok(self.run(id).await?.ok_or_else(|| no_run(id))?.info)
    }

    /// Logs metrics, params and tags of a run in one transaction, under MLflow's rules: keys
    /// checked, long values cut to the limit, a param logged again with another value
    /// refused (params are inputs, fixed once a run used them), a metric point logged twice
    /// kept once (a point is its key, timestamp, step and value).
    ///
    /// On SQLite, batches that arrive while the writer is busy are committed together
    /// ([`crate::group`]); each is still all or nothing, and a refused one leaves the others
    /// of its group written.
    pub async fn log_batch(&self, run_id: &str, batch: &Batch) -> Result<(), MetadataError> {
        let prepared = Prepared::new(batch)?;
        if self.store.sqlite {
            return self.store.group.commit(self.store, run_id, prepared).await;
        }
        let mut tx = self.store.write_tx().await?;
        write_batch(&mut tx, run_id, &prepared).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every value logged for a run's metric, by step then time. As in MLflow's answer, the
    /// points carry no model or run (the client relies on that when it links a run's points
    /// to each model it logs); a logged model's own metrics name them.
    pub async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
    ) -> Result<Vec<Metric>, MetadataError> {
        Ok(sqlx::query_as::<_, MetricRow>(
            "SELECT key, value, is_nan, timestamp, step
             FROM ml_metrics WHERE run_id = $1 AND key = $2 ORDER BY step, timestamp, value, is_nan",
        )
        .bind(run_id)
        .bind(key)
        .fetch_all(&self.store.pool)
        .await?
        .into_iter()
        .map(Metric::from)
        .collect())
    }

    /// How many runs an experiment has: active, then deleted.
    pub async fn run_counts(&self, experiment_id: &str) -> Result<(i64, i64), MetadataError> {
        let id = experiment_id.parse::<i64>().unwrap_or(-1);
        let count = |stage: &'static str| async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM ml_runs WHERE experiment_id = $1 AND lifecycle_stage = $2",
            )
            .bind(id)
            .bind(stage)
            .fetch_one(&self.store.pool)
            .await
        };
        Ok((count("active").await?, count("deleted").await?))
    }

    /// The runs of `experiment_ids` in `stage` (`active`, `deleted`, or all for `None`),
    /// newest first.
    pub async fn runs_of(
        &self,
        experiment_ids: &[String],
        stage: Option<&str>,
    ) -> Result<Vec<Run>, MetadataError> {
        Ok(self
            .search_runs(experiment_ids, stage, "", &[], 0, i64::MAX as usize - 1)
            .await?
            .0)
    }
}

impl Tracking<'_> {
    /// One page of the runs of `experiment_ids` in `stage` (`None`: any) matching MLflow's
    /// `filter`, ordered by `order_by` then newest first, found in SQL (indexes on each key
    /// and value keep it fast with many runs). Answers the page and whether more follow.
    pub async fn search_runs(
        &self,
        experiment_ids: &[String],
        stage: Option<&str>,
        filter: &str,
        order_by: &[String],
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Run>, bool), MetadataError> {
        let experiments: Vec<i64> = experiment_ids
            .iter()
            .filter_map(|e| e.parse().ok())
            .collect();
        if experiments.is_empty() {
            return Ok((Vec::new(), false));
        }
        let first = experiments.len() + 2;
        let q = crate::run_search::run_query(filter, order_by, first)
            .map_err(MetadataError::Refused)?;
        let placeholders: Vec<String> = (1..=experiments.len()).map(|i| format!("${i}")).collect();
        let mut conditions = vec![
            format!("r.experiment_id IN ({})", placeholders.join(", ")),
            format!(
                "(${0} = '' OR r.lifecycle_stage = ${0})",
                experiments.len() + 1
            ),
        ];
        conditions.extend(q.conditions.iter().cloned());
        let mut binds: Vec<Bind> = experiments.iter().map(|e| Bind::Integer(*e)).collect();
        binds.push(Bind::Text(stage.unwrap_or("").to_string()));
        binds.extend(q.binds.iter().cloned());
        if let Some(walk) = &q.walk {
            if let Some(ids) = self
                .walk_runs(walk, &q, &conditions, binds.clone(), offset + limit + 1)
                .await?
            {
                let mut ids: Vec<String> = ids.into_iter().skip(offset).collect();
                let more = ids.len() > limit;
                ids.truncate(limit);
                return Ok((self.runs_by_ids(&ids).await?, more));
            }
        }
        let from = self.lead(&q, &experiments).await?;
        let sql = format!(
            "SELECT r.id FROM {from}{} WHERE {} ORDER BY {} LIMIT {} OFFSET {}",
            q.order_joins,
            conditions.join(" AND "),
            q.order,
            limit + 1,
            offset
        );
        let mut ids: Vec<String> = Bind::scalar(&sql, &binds)
            .fetch_all(&self.store.pool)
            .await?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        Ok((self.runs_by_ids(&ids).await?, more))
    }

    /// The tables a search reads, in the order it should read them. Postgres orders its joins
    /// by its own statistics. SQLite, whose tables are analysed only when someone runs
    /// ANALYZE, cannot tell how many values `metrics.rmse < 5` keeps, and may lead with a
    /// clause that keeps a third of the runs: there each clause's values are counted through
    /// its `(key, value)` index, and the one keeping the fewest, when fewer than the
    /// experiments' runs, leads (a CROSS JOIN keeps SQLite's order as written).
    async fn lead(
        &self,
        q: &crate::run_search::RunQuery,
        experiments: &[i64],
    ) -> Result<String, MetadataError> {
        let plain = || -> String {
            let joins: String = q.joins.iter().map(|j| format!(" JOIN {j}")).collect();
            format!("ml_runs r{joins}")
        };
        if !self.store.sqlite || q.joins.is_empty() {
            return Ok(plain());
        }
        let mut best: Option<(i64, usize)> = None;
        for (i, p) in q.probes.iter().enumerate() {
            let n: i64 = Bind::scalar(&p.sql, &p.binds)
                .fetch_one(&self.store.pool)
                .await?;
            if best.is_none_or(|(m, _)| n < m) {
                best = Some((n, i));
            }
        }
        let list: Vec<String> = experiments.iter().map(i64::to_string).collect();
        let runs: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM ml_runs WHERE experiment_id IN ({})",
            list.join(", ")
        ))
        .fetch_one(&self.store.pool)
        .await?;
        let Some((_, lead)) = best.filter(|(n, _)| *n < runs) else {
            return Ok(plain());
        };
        let (table, on) = q.joins[lead]
            .split_once(" ON ")
            .expect("a join has an ON clause");
        let rest: String = q
            .joins
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != lead)
            .map(|(_, j)| format!(" CROSS JOIN {j}"))
            .collect();
        Ok(format!("{table} CROSS JOIN ml_runs r ON {on}{rest}"))
    }

    /// The first `need` runs of a search ordered by one key, found by walking that key's
    /// values in order through its `(key, value)` index, within a window of the first few
    /// thousand values (every run tied with the window's last value included): the work is
    /// bounded by the window, not by how many runs match. `None` when the window holds fewer
    /// than `need` matches (then the runs lacking a value, or beyond the window, decide the
    /// page, and the search sorts every match instead).
    async fn walk_runs(
        &self,
        walk: &crate::run_search::Walk,
        q: &crate::run_search::RunQuery,
        conditions: &[String],
        mut binds: Vec<Bind>,
        need: usize,
    ) -> Result<Option<Vec<String>>, MetadataError> {
        let window = need.saturating_mul(8).max(1000);
        let (table, dir) = (walk.table, if walk.ascending { "ASC" } else { "DESC" });
        let not_nan = |alias: &str| {
            if walk.metric {
                format!(" AND {alias}is_nan = 0")
            } else {
                String::new()
            }
        };
        // The window starts where the filter's clauses on this key hold.
        let (edge_bounds, mut edge_binds) = match walk.bounds("p", 2) {
            Some((sql, b)) => (format!(" AND {sql}"), b),
            None => (String::new(), Vec::new()),
        };
        edge_binds.insert(0, Bind::Text(walk.key.clone()));
        let edge = format!(
            "SELECT p.value FROM {table} p WHERE p.key = $1{}{edge_bounds} ORDER BY p.value {dir} LIMIT 1 OFFSET {}",
            not_nan("p."),
            window - 1
        );
        let boundary = if walk.metric {
            Bind::scalar::<f64>(&edge, &edge_binds)
                .fetch_optional(&self.store.pool)
                .await?
                .map(Bind::Number)
        } else {
            Bind::scalar::<String>(&edge, &edge_binds)
                .fetch_optional(&self.store.pool)
                .await?
                .map(Bind::Text)
        };
        let mut within = format!("w.key = {}{}", walk.placeholder, not_nan("w."));
        if let Some((sql, b)) = walk.bounds("w", binds.len() + 1) {
            within.push_str(&format!(" AND {sql}"));
            binds.extend(b);
        }
        if let Some(b) = boundary {
            let op = if walk.ascending { "<=" } else { ">=" };
            binds.push(b);
            within.push_str(&format!(" AND w.value {op} ${}", binds.len()));
        }
        // SQLite keeps a CROSS JOIN's order, so the walk leads; Postgres plans it by its
        // statistics (and has no CROSS JOIN ... ON).
        let join = if self.store.sqlite {
            " CROSS JOIN "
        } else {
            " JOIN "
        };
        let joins: String = q.joins.iter().map(|j| format!("{join}{j}")).collect();
        let sql = format!(
            "SELECT r.id FROM {table} w{join}ml_runs r ON r.id = w.run_id{joins} WHERE {within} AND {} ORDER BY w.value {dir}, r.start_time DESC, r.id LIMIT {need}",
            conditions.join(" AND "),
        );
        let ids: Vec<String> = Bind::scalar(&sql, &binds)
            .fetch_all(&self.store.pool)
            .await?;
        Ok((ids.len() == need).then_some(ids))
    }

    /// Runs by id, in the order given, each with its params, tags, latest metrics, inputs and
    /// outputs: six queries per thousand runs.
    pub async fn runs_by_ids(&self, ids: &[String]) -> Result<Vec<Run>, MetadataError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            out.extend(self.runs_chunk(chunk).await?);
        }
        Ok(out)
    }

    async fn runs_chunk(&self, ids: &[String]) -> Result<Vec<Run>, MetadataError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let list = list.join(", ");
        let pool = &self.store.pool;
        async fn fetch<R>(
            pool: &sqlx::AnyPool,
            sql: String,
            ids: &[String],
        ) -> Result<Vec<R>, MetadataError>
        where
            R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
        {
            let mut q = sqlx::query_as::<_, R>(&sql);
            for id in ids {
                q = q.bind(id.clone());
            }
            Ok(q.fetch_all(pool).await?)
        }
        let runs: Vec<RunInfo> = fetch(
            pool,
            format!(
                "SELECT id AS run_id, id AS run_uuid, name AS run_name, experiment_id, user_id,
                 status, start_time, end_time, lifecycle_stage, artifact_uri
                 FROM ml_runs WHERE id IN ({list})"
            ),
            ids,
        )
        .await?;
        let mut by_id: std::collections::HashMap<String, Run> = runs
            .into_iter()
            .map(|info| {
                let run = Run {
                    info,
                    data: RunData::default(),
                    inputs: serde_json::json!({ "dataset_inputs": [], "model_inputs": [] }),
                    outputs: serde_json::json!({ "model_outputs": [] }),
                };
                (run.info.run_id.clone(), run)
            })
            .collect();
        let pairs = |table: &str| {
            format!(
                "SELECT run_id AS owner, key, value FROM {table} WHERE run_id IN ({list}) ORDER BY key"
            )
        };
        for p in fetch::<OwnedPair>(pool, pairs("ml_params"), ids).await? {
            if let Some(run) = by_id.get_mut(&p.owner) {
                run.data.params.push(p.pair);
            }
        }
        for p in fetch::<OwnedPair>(pool, pairs("ml_run_tags"), ids).await? {
            if let Some(run) = by_id.get_mut(&p.owner) {
                run.data.tags.push(p.pair);
            }
        }
        #[derive(sqlx::FromRow)]
        struct Owned<T> {
            run_id: String,
            #[sqlx(flatten)]
            row: T,
        }
        let metrics = format!(
            "SELECT run_id, key, value, is_nan, timestamp, step FROM ml_latest_metrics
             WHERE run_id IN ({list}) ORDER BY key"
        );
        for m in fetch::<Owned<MetricRow>>(pool, metrics, ids).await? {
            if let Some(run) = by_id.get_mut(&m.run_id) {
                run.data.metrics.push(m.row.into());
            }
        }
        #[derive(sqlx::FromRow)]
        struct Input {
            kind: String,
            #[sqlx(try_from = "JsonText")]
            body: serde_json::Value,
        }
        let inputs = format!(
            "SELECT run_id, kind, body FROM ml_run_inputs WHERE run_id IN ({list}) ORDER BY kind, ident"
        );
        for i in fetch::<Owned<Input>>(pool, inputs, ids).await? {
            if let Some(run) = by_id.get_mut(&i.run_id) {
                let field = if i.row.kind == "dataset" {
                    "dataset_inputs"
                } else {
                    "model_inputs"
                };
                if let Some(list) = run.inputs[field].as_array_mut() {
                    list.push(i.row.body);
                }
            }
        }
        #[derive(sqlx::FromRow)]
        struct Output {
            model_id: String,
            step: i64,
        }
        let outputs = format!(
            "SELECT run_id, model_id, step FROM ml_run_outputs WHERE run_id IN ({list}) ORDER BY step, model_id"
        );
        for o in fetch::<Owned<Output>>(pool, outputs, ids).await? {
            if let Some(run) = by_id.get_mut(&o.run_id) {
                if let Some(list) = run.outputs["model_outputs"].as_array_mut() {
                    list.push(
                        serde_json::json!({ "model_id": o.row.model_id, "step": o.row.step }),
                    );
                }
            }
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }
}

fn experiment_tag_ok(key: &str, value: &str) -> Result<(), MetadataError> {
    use crate::validation as v;
    v::key(key, "key")?;
    v::length("value", v::MAX_EXPERIMENT_TAG_VAL_LENGTH, value)
}

/// A metric point as stored: the metric, its stored value (NaN as 0) and its NaN mark.
type StoredPoint = (Metric, f64, i64);

/// A log-batch checked and ready to write: params and tags cut to their limits, each metric
/// point once with its stored value, and the latest point of each key.
#[derive(Debug)]
pub(crate) struct Prepared {
    params: Vec<KeyValue>,
    tags: Vec<KeyValue>,
    /// Each point once.
    points: Vec<StoredPoint>,
    /// Indexes into `points`: the greatest point of each key by (step, timestamp, value).
    latest: Vec<usize>,
}

impl Prepared {
    /// Checks a batch under MLflow's rules (before anything is written).
    fn new(batch: &Batch) -> Result<Self, MetadataError> {
        use crate::validation as v;
        v::batch("metrics", v::MAX_METRICS_PER_BATCH, batch.metrics.len())?;
        v::batch("params", v::MAX_PARAMS_TAGS_PER_BATCH, batch.params.len())?;
        v::batch("tags", v::MAX_PARAMS_TAGS_PER_BATCH, batch.tags.len())?;
        v::batch(
            "metrics, params, and tags",
            v::MAX_ENTITIES_PER_BATCH,
            batch.metrics.len() + batch.params.len() + batch.tags.len(),
        )?;
        let one = batch.metrics.len() + batch.params.len() + batch.tags.len() == 1;
        let at = |kind: &str, i: usize, field: &str| {
            if one {
                field.to_string()
            } else {
                format!("{kind}[{i}].{field}")
            }
        };
        for (i, m) in batch.metrics.iter().enumerate() {
            v::key(&m.key, &at("metrics", i, "name"))?;
            if m.timestamp < 0 {
                return Err(MetadataError::Refused(format!(
                "Invalid value {} for parameter '{}' supplied: metric '{}' (value={}). Timestamp must be a nonnegative long (64-bit integer) ",
                m.timestamp,
                at("metrics", i, "timestamp"),
                m.key,
                m.value
            )));
            }
        }
        let mut params = Vec::with_capacity(batch.params.len());
        for (i, p) in batch.params.iter().enumerate() {
            v::key(&p.key, &at("params", i, "key"))?;
            if params.iter().any(|q: &KeyValue| q.key == p.key) {
                let keys: Vec<&str> = batch.params.iter().map(|p| p.key.as_str()).collect();
                return Err(MetadataError::Refused(format!(
                "Duplicate parameter keys have been submitted: {keys:?}. Please ensure the request contains only one param value per param key."
            )));
            }
            params.push(KeyValue {
                key: p.key.clone(),
                value: v::truncated(&p.value, v::MAX_PARAM_VAL_LENGTH),
            });
        }
        let mut tags = Vec::with_capacity(batch.tags.len());
        for (i, t) in batch.tags.iter().enumerate() {
            v::key(&t.key, &at("tags", i, "key"))?;
            tags.push(KeyValue {
                key: t.key.clone(),
                value: v::truncated(&t.value, v::MAX_TAG_VAL_LENGTH),
            });
        }
        // Points as stored (NaN as 0 and a mark), each once. The history keeps every point;
        // the latest per key is the greatest by (step, timestamp, value), MLflow's rule.
        let mut seen = std::collections::HashSet::new();
        let mut points: Vec<StoredPoint> = Vec::with_capacity(batch.metrics.len());
        for m in &batch.metrics {
            let (value, is_nan) = stored(m.value);
            if seen.insert((m.key.as_str(), m.timestamp, m.step, value.to_bits(), is_nan)) {
                points.push((m.clone(), value, is_nan));
            }
        }
        let rank = |(m, v, _): &StoredPoint| (m.step, m.timestamp, *v);
        let mut latest: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, p) in points.iter().enumerate() {
            let newer = latest
                .get(p.0.key.as_str())
                .is_none_or(|&l| rank(p) > rank(&points[l]));
            if newer {
                latest.insert(p.0.key.as_str(), i);
            }
        }
        let latest = latest.into_values().collect();
        Ok(Prepared {
            params,
            tags,
            points,
            latest,
        })
    }
}

/// Writes a prepared batch inside `tx`: the run must exist and be active, a param may not
/// change its value. A batch refused by those rules has written nothing.
pub(crate) async fn write_batch(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
    batch: &Prepared,
) -> Result<(), MetadataError> {
    write_batches(tx, &[(run_id, batch)]).await?.remove(0)
}

/// Writes prepared batches inside `tx`, each under the rules of [`write_batch`], and answers
/// each batch: stored, or why it was refused (a refused batch has written nothing, so the
/// others stand). The runs are looked up in one statement and the points of every accepted
/// batch go in together, with multi-row statements of a hundred points: a group of batches
/// costs about as many statements as one. `Err` is the store's own failure, which leaves the
/// transaction to be rolled back.
pub(crate) async fn write_batches(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    batches: &[(&str, &Prepared)],
) -> Result<Vec<Result<(), MetadataError>>, MetadataError> {
    let mut runs: Vec<&str> = batches.iter().map(|b| b.0).collect();
    runs.sort_unstable();
    runs.dedup();
    let list: Vec<String> = (1..=runs.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id, lifecycle_stage FROM ml_runs WHERE id IN ({})",
        list.join(", ")
    );
    let mut q = sqlx::query_as::<_, (String, String)>(&sql);
    for r in &runs {
        q = q.bind(*r);
    }
    let stages: BTreeMap<String, String> = q.fetch_all(&mut **tx).await?.into_iter().collect();
    let mut answers = Vec::with_capacity(batches.len());
    let mut accepted = Vec::with_capacity(batches.len());
    for &(run_id, batch) in batches {
        match check_batch(tx, run_id, batch, stages.get(run_id).map(String::as_str)).await? {
            Err(refused) => answers.push(Err(refused)),
            Ok(new_params) => {
                for p in new_params {
                    sqlx::query("INSERT INTO ml_params (run_id, key, value) VALUES ($1, $2, $3)")
                        .bind(run_id)
                        .bind(&p.key)
                        .bind(&p.value)
                        .execute(&mut **tx)
                        .await?;
                }
                for t in &batch.tags {
                    set_tag(tx, run_id, t).await?;
                }
                accepted.push((run_id, batch));
                answers.push(Ok(()));
            }
        }
    }
    write_points(tx, &accepted).await?;
    Ok(answers)
}

/// Every check of a batch before its first write, so a group of batches in one transaction
/// ([`crate::group`]) needs no savepoint per batch: the run (whose stage is `stage`, `None`
/// when there is none) is active and no param changes its value. Answers the params not yet
/// logged, or why the batch is refused.
async fn check_batch<'b>(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
    batch: &'b Prepared,
    stage: Option<&str>,
) -> Result<Result<Vec<&'b KeyValue>, MetadataError>, MetadataError> {
    match stage {
        None => return Ok(Err(no_run(run_id))),
        Some("deleted") => {
            return Ok(Err(MetadataError::Inactive(Inactive {
                kind: Kind::Run,
                id: run_id.to_string(),
                stage: "deleted".into(),
            })))
        }
        _ => {}
    }
    let mut new_params = Vec::with_capacity(batch.params.len());
    for p in &batch.params {
        let old: Option<String> =
            sqlx::query_scalar("SELECT value FROM ml_params WHERE run_id = $1 AND key = $2")
                .bind(run_id)
                .bind(&p.key)
                .fetch_optional(&mut **tx)
                .await?;
        match old {
            Some(v) if v == p.value => {}
            Some(v) => {
                return Ok(Err(MetadataError::Refused(format!(
                    "Changing param values is not allowed. Param with key='{}' was already logged with value='{v}' for run ID='{run_id}'. Attempted logging new value '{}'.",
                    p.key, p.value
                ))))
            }
            None => new_params.push(p),
        }
    }
    Ok(Ok(new_params))
}

/// The metric points of accepted batches: the history (a point logged again is kept once),
/// a logged model's own points, and each key's latest point.
async fn write_points(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    batches: &[(&str, &Prepared)],
) -> Result<(), MetadataError> {
    let points: Vec<(&str, &StoredPoint)> = batches
        .iter()
        .flat_map(|&(run_id, b)| b.points.iter().map(move |p| (run_id, p)))
        .collect();
    for chunk in points.chunks(100) {
        let values = placeholders(chunk.len(), 9);
        // A point logged again is kept once; a model or dataset it names the second time
        // (the client links a run's points to the model it logs) fills in the first's.
        let sql = format!(
            "INSERT INTO ml_metrics (run_id, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest)
             VALUES {} ON CONFLICT (run_id, key, timestamp, step, value, is_nan) DO UPDATE SET
                 model_id = excluded.model_id, dataset_name = excluded.dataset_name,
                 dataset_digest = excluded.dataset_digest
             WHERE ml_metrics.model_id = '' AND excluded.model_id <> ''",
            values
        );
        let mut q = sqlx::query(&sql);
        for &(run_id, (m, value, is_nan)) in chunk {
            q = q
                .bind(run_id)
                .bind(&m.key)
                .bind(*value)
                .bind(*is_nan)
                .bind(m.timestamp)
                .bind(m.step)
                .bind(m.model_id.clone().unwrap_or_default())
                .bind(m.dataset_name.clone().unwrap_or_default())
                .bind(m.dataset_digest.clone().unwrap_or_default());
        }
        q.execute(&mut **tx).await?;
    }
    for &(run_id, (m, value, is_nan)) in points.iter().filter(|p| p.1 .0.model_id.is_some()) {
        sqlx::query(
            "INSERT INTO ml_logged_model_metrics (model_id, run_id, key, value, is_nan, timestamp, step, dataset_name, dataset_digest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(m.model_id.clone().unwrap_or_default())
        .bind(run_id)
        .bind(&m.key)
        .bind(*value)
        .bind(*is_nan)
        .bind(m.timestamp)
        .bind(m.step)
        .bind(m.dataset_name.clone().unwrap_or_default())
        .bind(m.dataset_digest.clone().unwrap_or_default())
        .execute(&mut **tx)
        .await?;
    }
    // Each batch holds one latest point a key. Batches of one group (SQLite only, which
    // applies a multi-row upsert row by row) may name the same run's key twice; Postgres,
    // which refuses an upsert touching a row twice, writes one batch at a time.
    let latest: Vec<(&str, &StoredPoint)> = batches
        .iter()
        .flat_map(|&(run_id, b)| b.latest.iter().map(move |&i| (run_id, &b.points[i])))
        .collect();
    for chunk in latest.chunks(100) {
        let values = placeholders(chunk.len(), 6);
        let sql = format!(
            "INSERT INTO ml_latest_metrics (run_id, key, value, is_nan, timestamp, step) VALUES {}
             ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan,
                 timestamp = excluded.timestamp, step = excluded.step
             WHERE excluded.step > ml_latest_metrics.step
                OR (excluded.step = ml_latest_metrics.step AND excluded.timestamp > ml_latest_metrics.timestamp)
                OR (excluded.step = ml_latest_metrics.step AND excluded.timestamp = ml_latest_metrics.timestamp
                    AND excluded.value > ml_latest_metrics.value)",
            values
        );
        let mut q = sqlx::query(&sql);
        for &(run_id, (m, value, is_nan)) in chunk {
            q = q
                .bind(run_id)
                .bind(&m.key)
                .bind(*value)
                .bind(*is_nan)
                .bind(m.timestamp)
                .bind(m.step);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// `($1, ..., $cols), ($cols+1, ...), ...` for a multi-row `VALUES` of `rows` rows.
fn placeholders(rows: usize, cols: usize) -> String {
    let row = |i: usize| {
        let n: Vec<String> = (1..=cols).map(|k| format!("${}", i * cols + k)).collect();
        format!("({})", n.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

async fn set_tag(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
    t: &KeyValue,
) -> Result<(), MetadataError> {
    sqlx::query(
        "INSERT INTO ml_run_tags (run_id, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(run_id)
    .bind(&t.key)
    .bind(&t.value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A run's params, latest metrics and tags, by key.
pub type RunMaps<'a> = (
    BTreeMap<&'a str, &'a str>,
    BTreeMap<&'a str, f64>,
    BTreeMap<&'a str, &'a str>,
);

/// Params, metrics and tags of a run as maps (for filters and comparisons).
pub fn run_maps(run: &Run) -> RunMaps<'_> {
    (
        run.data
            .params
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect(),
        run.data
            .metrics
            .iter()
            .map(|m| (m.key.as_str(), m.value))
            .collect(),
        run.data
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect(),
    )
}

/// A `DatasetInput`'s name, digest and context (its `mlflow.data.context` tag).
pub(crate) fn dataset_facts(d: &serde_json::Value) -> (String, String, String) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let context = d["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["key"] == "mlflow.data.context"))
        .map(|t| text(&t["value"]))
        .unwrap_or_default();
    (
        text(&d["dataset"]["name"]),
        text(&d["dataset"]["digest"]),
        context,
    )
}

impl Searchable for Run {
    fn values_of(&self, e: &Entity) -> Vec<Literal> {
        let Entity::Dataset(field) = e else {
            return self.value_of(e).into_iter().collect();
        };
        let inputs = self.inputs["dataset_inputs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        inputs
            .iter()
            .map(|d| {
                let (name, digest, context) = dataset_facts(d);
                Literal::Text(match field.as_str() {
                    "name" => name,
                    "digest" => digest,
                    _ => context,
                })
            })
            .collect()
    }

    fn value_of(&self, e: &Entity) -> Option<Literal> {
        let (params, metrics, tags) = run_maps(self);
        let i = &self.info;
        match e {
            Entity::Dataset(_) | Entity::Metadata(_) => None,
            Entity::Metric(k) => metrics.get(k.as_str()).map(|v| Literal::Number(*v)),
            Entity::Param(k) => params.get(k.as_str()).map(|v| Literal::Text(v.to_string())),
            Entity::Tag(k) => tags.get(k.as_str()).map(|v| Literal::Text(v.to_string())),
            Entity::Attribute(k) => Some(match k.as_str() {
                "status" => Literal::Text(i.status.clone()),
                "run_name" | "name" => Literal::Text(i.run_name.clone()),
                "run_id" | "run_uuid" => Literal::Text(i.run_id.clone()),
                "user_id" => Literal::Text(i.user_id.clone()),
                "artifact_uri" => Literal::Text(i.artifact_uri.clone()),
                "lifecycle_stage" => Literal::Text(i.lifecycle_stage.clone()),
                "start_time" => Literal::Number(i.start_time as f64),
                "end_time" => Literal::Number(i.end_time? as f64),
                _ => return None,
            }),
        }
    }
}

impl Searchable for Experiment {
    fn value_of(&self, e: &Entity) -> Option<Literal> {
        match e {
            Entity::Tag(k) => find(&self.tags, k),
            Entity::Attribute(k) => Some(match k.as_str() {
                "name" => Literal::Text(self.name.clone()),
                "experiment_id" => Literal::Text(self.experiment_id.clone()),
                "creation_time" => Literal::Number(self.creation_time as f64),
                "last_update_time" => Literal::Number(self.last_update_time as f64),
                _ => return None,
            }),
            _ => None,
        }
    }
}

/// The experiments matching `filter`, ordered by `order_by` (then by id).
pub fn search_experiments(
    experiments: Vec<Experiment>,
    filter: &str,
    order_by: &[String],
) -> Result<Vec<Experiment>, String> {
    crate::run_search::search_items(experiments, filter, order_by, |a, b| {
        let id = |e: &Experiment| e.experiment_id.parse::<i64>().unwrap_or_default();
        id(a).cmp(&id(b))
    })
}

#[cfg(test)]
mod tests {
    use crate::run_search::search_items;
    use crate::testing::{fresh_store, BACKENDS};

    /// Writes `n` runs into experiment 1 (and a few into experiment 2) straight into the
    /// store: metric `m` with ties (20 values), some NaN, some missing; param `model` of three
    /// values and `depth` as text; tag `team`; every 13th run deleted.
    async fn seed(store: &crate::Store, n: usize) {
        let pool = &store.pool;
        for id in [1i64, 2] {
            sqlx::query(
                "INSERT INTO ml_experiments (id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
                 VALUES ($1, $2, 'x', 'active', 0, 0)",
            )
            .bind(id)
            .bind(format!("e{id}"))
            .execute(pool)
            .await
            .unwrap();
        }
        let mut tx = pool.begin().await.unwrap();
        for i in 0..n {
            let id = format!(
                "{:032x}",
                (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xabc
            );
            let experiment = if i % 17 == 0 { 2i64 } else { 1 };
            let stage = if i % 13 == 0 { "deleted" } else { "active" };
            // Runs share start times in pairs, so the id breaks ties too.
            sqlx::query(
                "INSERT INTO ml_runs (id, experiment_id, name, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri)
                 VALUES ($1, $2, $3, 'u', 'FINISHED', $4, NULL, $5, 'a')",
            )
            .bind(&id)
            .bind(experiment)
            .bind(format!("run-{i}"))
            .bind(1_000_000 + (i / 2) as i64)
            .bind(stage)
            .execute(&mut *tx)
            .await
            .unwrap();
            for (k, v) in [
                ("model", ["tree", "linear", "forest"][i % 3].to_string()),
                ("depth", (i % 11).to_string()),
            ] {
                sqlx::query("INSERT INTO ml_params (run_id, key, value) VALUES ($1, $2, $3)")
                    .bind(&id)
                    .bind(k)
                    .bind(v)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            sqlx::query("INSERT INTO ml_run_tags (run_id, key, value) VALUES ($1, 'team', $2)")
                .bind(&id)
                .bind(["vision", "tabular", "nlp", "ops"][i % 4])
                .execute(&mut *tx)
                .await
                .unwrap();
            if i % 19 != 0 {
                let nan = i % 23 == 0;
                let value = if nan {
                    0.0
                } else {
                    ((i * 7919) % 20) as f64 / 4.0
                };
                sqlx::query(
                    "INSERT INTO ml_latest_metrics (run_id, key, value, timestamp, step, is_nan)
                     VALUES ($1, 'm', $2, 0, 0, $3)",
                )
                .bind(&id)
                .bind(value)
                .bind(i64::from(nan))
                .execute(&mut *tx)
                .await
                .unwrap();
            }
        }
        tx.commit().await.unwrap();
    }

    /// Every page of a search ordered by one key (walked through the key's index when the
    /// window holds the page, sorted otherwise) is the page MLflow's rules give in memory:
    /// NaN after numbers, missing last, ties newest first then by id; deleted runs and other
    /// experiments left out.
    #[tokio::test]
    async fn a_search_ordered_by_one_key_pages_as_the_rules_in_memory_do() {
        for backend in BACKENDS {
            let dir = tempfile::tempdir().unwrap();
            let store = fresh_store(backend, dir.path()).await.unwrap();
            seed(&store, 2600).await;
            let t = store.tracking();
            let everything = t.runs_of(&["1".to_string()], Some("active")).await.unwrap();
            assert!(everything.len() > 2000);
            for (filter, order) in [
                ("", "metrics.m ASC"),
                ("", "metrics.m DESC"),
                ("metrics.m < 2 and params.model = 'tree'", "metrics.m ASC"),
                ("metrics.m < 2 and params.model = 'tree'", "metrics.m DESC"),
                ("tags.team = 'vision'", "metrics.m DESC"),
                ("params.depth = '3'", "metrics.m ASC"),
                ("params.model != 'tree'", "params.depth DESC"),
                ("", "tags.team ASC"),
                ("metrics.m >= 4.5", "metrics.m ASC"),
                ("metrics.m <= 1.5", "metrics.m DESC"),
                ("metrics.m > 3 and tags.team = 'ops'", "metrics.m DESC"),
            ] {
                let order = vec![order.to_string()];
                let want = search_items(everything.clone(), filter, &order, |a, b| {
                    b.info
                        .start_time
                        .cmp(&a.info.start_time)
                        .then_with(|| a.info.run_id.cmp(&b.info.run_id))
                })
                .unwrap();
                let want: Vec<&str> = want.iter().map(|r| r.info.run_id.as_str()).collect();
                for (offset, limit) in [(0, 50), (0, 1000), (950, 100), (2000, 200), (0, 5000)] {
                    let (got, more) = t
                        .search_runs(
                            &["1".to_string()],
                            Some("active"),
                            filter,
                            &order,
                            offset,
                            limit,
                        )
                        .await
                        .unwrap();
                    let got: Vec<&str> = got.iter().map(|r| r.info.run_id.as_str()).collect();
                    let end = want.len().min(offset + limit);
                    let page = if offset < want.len() {
                        &want[offset..end]
                    } else {
                        &[][..]
                    };
                    assert_eq!(
                        got, page,
                        "{backend:?}: {filter:?} {order:?} at {offset}+{limit}"
                    );
                    assert_eq!(
                        more,
                        want.len() > offset + limit,
                        "{backend:?}: {filter:?} {order:?}"
                    );
                }
            }
        }
    }
}
