//! MLflow 3 traces: a trace's info (id, experiment, request time, duration, state, previews),
//! its tags and request metadata, and the assessments (feedback, expectations) logged on it.
//! The spans themselves are an artifact (`traces.json`) under the trace's artifact location,
//! which the client uploads and reads back; the server copies them into the lake's spans
//! table. Types serialise in the shape of MLflow's `TraceInfoV3` JSON.

use crate::columns::JsonText;
use crate::kv::KeyValue;
use crate::{MetadataError, Missing, Store};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// MLflow traces: infos, tags, metadata, assessments, links to runs. Reached with [`Store::traces`].
#[derive(Clone, Copy, Debug)]
pub struct Traces<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// MLflow traces: infos, tags, metadata, assessments, links to runs.
    pub fn traces(&self) -> Traces<'_> {
        Traces { store: self }
    }
}

/// A trace's info as MLflow's v3 API carries it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TraceInfo {
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    pub trace_location: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_preview: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_preview: Option<String>,
    /// RFC 3339, as protobuf's JSON writes a `Timestamp`.
    pub request_time: String,
    /// Seconds with an `s`, as protobuf's JSON writes a `Duration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_duration: Option<String>,
    pub state: String,
    pub trace_metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub assessments: Vec<Value>,
    #[serde(skip)]
    pub experiment_id: String,
    #[serde(skip)]
    pub request_time_ms: i64,
    #[serde(skip)]
    pub execution_ms: Option<i64>,
    /// The runs the trace was linked to (`link_traces_to_run`).
    #[serde(skip)]
    pub linked_runs: Vec<String>,
}

/// The tag naming where a trace's artifacts (its spans) live.
pub const ARTIFACT_LOCATION_TAG: &str = "mlflow.artifactLocation";

/// Milliseconds since the epoch from a protobuf `Timestamp` in JSON (RFC 3339) or a number.
pub fn timestamp_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
            .or_else(|| s.parse().ok()),
        _ => None,
    }
}

/// Milliseconds from a protobuf `Duration` in JSON (`"1.5s"`) or a number of milliseconds.
pub fn duration_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s
            .strip_suffix('s')
            .and_then(|x| x.parse::<f64>().ok())
            .map(|secs| (secs * 1000.0).round() as i64),
        _ => None,
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn no_trace(id: &str) -> MetadataError {
    MetadataError::NotFound(Missing::Trace { id: id.to_string() })
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Traces<'_> {
    /// Records a finished trace from the client's `TraceInfoV3` (MLflow's `StartTraceV3`,
    /// which the client calls once the trace ends), adding the artifact location its spans
    /// go to. A trace recorded again is replaced.
    pub async fn start_trace(&self, info: &Value) -> Result<TraceInfo, MetadataError> {
        use crate::validation as v;
        let trace_id = info["trace_id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                MetadataError::Refused(
                    "Missing value for required parameter 'trace.trace_info.trace_id'.".into(),
                )
            })?
            .to_string();
        let experiment_id = info["trace_location"]["mlflow_experiment"]["experiment_id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "0".into());
        let exp = self
            .store
            .tracking()
            .experiment(&experiment_id)
            .await?
            .ok_or_else(|| {
                MetadataError::NotFound(Missing::Experiment {
                    id: experiment_id.clone(),
                })
            })?;
        let request_time = timestamp_ms(&info["request_time"])
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let duration = duration_ms(&info["execution_duration"]);
        // As MLflow's store: a finished trace's own tags are kept as the client sent them
        // (refusing one would lose the trace); only its name is bounded.
        let mut tags = string_map(&info["tags"]);
        if let Some(name) = tags.get("mlflow.traceName") {
            v::length("Trace name", 8000, name)?;
        }
        tags.insert(
            ARTIFACT_LOCATION_TAG.into(),
            format!("{}/traces/{trace_id}/artifacts", exp.artifact_location),
        );
        let metadata = string_map(&info["trace_metadata"]);
        let text = |f: &str| info[f].as_str().map(str::to_string);
        let mut tx = self.store.write_tx().await?;
        for table in ["ml_trace_tags", "ml_trace_metadata", "ml_traces"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE trace_id = $1"))
                .bind(&trace_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO ml_traces (trace_id, experiment_id, client_request_id, request_time,
                 execution_duration, state, request_preview, response_preview)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&trace_id)
        .bind(exp.experiment_id.parse::<i64>().unwrap_or_default())
        .bind(text("client_request_id"))
        .bind(request_time)
        .bind(duration)
        .bind(text("state").unwrap_or_else(|| "OK".into()))
        .bind(text("request_preview"))
        .bind(text("response_preview"))
        .execute(&mut *tx)
        .await?;
        for (table, map) in [("ml_trace_tags", &tags), ("ml_trace_metadata", &metadata)] {
            for (k, value) in map {
                sqlx::query(&format!(
                    "INSERT INTO {table} (trace_id, key, value) VALUES ($1, $2, $3)"
                ))
                .bind(&trace_id)
                .bind(k)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.trace(&trace_id)
            .await?
            .ok_or_else(|| no_trace(&trace_id))
    }

    /// A trace's info with its tags, metadata and assessments.
    pub async fn trace(&self, id: &str) -> Result<Option<TraceInfo>, MetadataError> {
        Ok(self
            .traces_where("t.trace_id = $1", Some(id), None)
            .await?
            .pop())
    }

    /// Every trace of an experiment, newest first.
    pub async fn traces_of(&self, experiment_id: &str) -> Result<Vec<TraceInfo>, MetadataError> {
        let n = experiment_id.parse::<i64>().unwrap_or(-1);
        self.traces_where("t.experiment_id = $1", None, Some(n))
            .await
    }

    async fn traces_where(
        &self,
        clause: &str,
        id: Option<&str>,
        experiment: Option<i64>,
    ) -> Result<Vec<TraceInfo>, MetadataError> {
        let sql = format!(
            "SELECT trace_id, experiment_id, client_request_id, request_time, execution_duration,
                    state, request_preview, response_preview
             FROM ml_traces t WHERE {clause} ORDER BY request_time DESC, trace_id"
        );
        // Four queries whatever the number of traces: the traces, then their tags, metadata
        // and assessments, each selected by the same clause.
        async fn fetch<R>(
            pool: &sqlx::AnyPool,
            sql: String,
            id: Option<&str>,
            experiment: Option<i64>,
        ) -> Result<Vec<R>, MetadataError>
        where
            R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
        {
            let q = sqlx::query_as::<_, R>(&sql);
            let q = match (id, experiment) {
                (Some(id), _) => q.bind(id.to_string()),
                (None, n) => q.bind(n.unwrap_or(-1)),
            };
            Ok(q.fetch_all(pool).await?)
        }
        #[derive(sqlx::FromRow)]
        struct Row {
            trace_id: String,
            experiment_id: i64,
            client_request_id: Option<String>,
            request_time: i64,
            execution_duration: Option<i64>,
            state: String,
            request_preview: Option<String>,
            response_preview: Option<String>,
        }
        #[derive(sqlx::FromRow)]
        struct Of<T> {
            trace_id: String,
            #[sqlx(flatten)]
            row: T,
        }
        #[derive(sqlx::FromRow)]
        struct Body {
            #[sqlx(try_from = "JsonText")]
            body: Value,
        }
        #[derive(sqlx::FromRow)]
        struct Link {
            destination_id: String,
        }
        let pool = &self.store.pool;
        let rows: Vec<Row> = fetch(pool, sql, id, experiment).await?;
        let within = format!("trace_id IN (SELECT trace_id FROM ml_traces t WHERE {clause})");
        let mut maps: [std::collections::HashMap<String, BTreeMap<String, String>>; 2] =
            Default::default();
        for (i, table) in ["ml_trace_tags", "ml_trace_metadata"].iter().enumerate() {
            let sql = format!("SELECT trace_id, key, value FROM {table} WHERE {within}");
            for p in fetch::<Of<KeyValue>>(pool, sql, id, experiment).await? {
                maps[i]
                    .entry(p.trace_id)
                    .or_default()
                    .insert(p.row.key, p.row.value);
            }
        }
        let mut assessments: std::collections::HashMap<String, Vec<Value>> = Default::default();
        let sql = format!(
            "SELECT trace_id, body FROM ml_assessments WHERE {within} ORDER BY created, assessment_id"
        );
        for a in fetch::<Of<Body>>(pool, sql, id, experiment).await? {
            assessments.entry(a.trace_id).or_default().push(a.row.body);
        }
        let mut links: std::collections::HashMap<String, Vec<String>> = Default::default();
        let sql = format!(
            "SELECT source_id AS trace_id, destination_id FROM ml_entity_links
             WHERE source_type = 'TRACE' AND destination_type = 'RUN' AND source_id IN
                 (SELECT trace_id FROM ml_traces t WHERE {clause})"
        );
        for l in fetch::<Of<Link>>(pool, sql, id, experiment).await? {
            links
                .entry(l.trace_id)
                .or_default()
                .push(l.row.destination_id);
        }
        let [mut tags, mut metadata] = maps;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let trace_id = r.trace_id;
            let duration = r.execution_duration;
            out.push(TraceInfo {
                trace_location: json!({
                    "type": "MLFLOW_EXPERIMENT",
                    "mlflow_experiment": { "experiment_id": r.experiment_id.to_string() },
                }),
                client_request_id: r.client_request_id,
                request_preview: r.request_preview,
                response_preview: r.response_preview,
                request_time: rfc3339(r.request_time),
                execution_duration: duration.map(|d| format!("{}s", d as f64 / 1000.0)),
                state: r.state,
                trace_metadata: metadata.remove(&trace_id).unwrap_or_default(),
                tags: tags.remove(&trace_id).unwrap_or_default(),
                assessments: assessments.remove(&trace_id).unwrap_or_default(),
                experiment_id: r.experiment_id.to_string(),
                request_time_ms: r.request_time,
                execution_ms: duration,
                linked_runs: links.remove(&trace_id).unwrap_or_default(),
                trace_id,
            });
        }
        Ok(out)
    }

    /// Deletes traces of an experiment: the ones named, or those older than
    /// `max_timestamp_ms` (at most `max_traces` of them, oldest first). Answers how many.
    pub async fn delete_traces(
        &self,
        experiment_id: &str,
        max_timestamp_ms: Option<i64>,
        max_traces: Option<i64>,
        ids: &[String],
    ) -> Result<usize, MetadataError> {
        let mut doomed: Vec<String> = if ids.is_empty() {
            let mut old: Vec<TraceInfo> = self
                .traces_of(experiment_id)
                .await?
                .into_iter()
                .filter(|t| max_timestamp_ms.is_none_or(|m| t.request_time_ms <= m))
                .collect();
            old.sort_by_key(|t| t.request_time_ms);
            old.into_iter().map(|t| t.trace_id).collect()
        } else {
            let mut found = Vec::new();
            for id in ids {
                if self
                    .trace(id)
                    .await?
                    .is_some_and(|t| t.experiment_id == experiment_id)
                {
                    found.push(id.clone());
                }
            }
            found
        };
        if let Some(n) = max_traces.filter(|n| *n > 0) {
            doomed.truncate(n as usize);
        }
        let mut tx = self.store.write_tx().await?;
        for id in &doomed {
            for table in [
                "ml_trace_tags",
                "ml_trace_metadata",
                "ml_assessments",
                "ml_traces",
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE trace_id = $1"))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "DELETE FROM ml_entity_links WHERE source_type = 'TRACE' AND source_id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(doomed.len())
    }

    /// Links traces to a run (at most 100 at once, as MLflow allows); a link made again is
    /// kept once. Traces that do not exist are passed over, and the run is not looked up, as
    /// MLflow's store does.
    pub async fn link_traces_to_run(
        &self,
        trace_ids: &[String],
        run_id: &str,
    ) -> Result<(), MetadataError> {
        if trace_ids.len() > 100 {
            return Err(MetadataError::Refused(format!(
                "Cannot link more than 100 traces to a run in a single request. Provided {} traces.",
                trace_ids.len()
            )));
        }
        let mut known = Vec::with_capacity(trace_ids.len());
        for id in trace_ids {
            if self.trace(id).await?.is_some() {
                known.push(id.clone());
            }
        }
        self.link(&known, "RUN", &[run_id.to_string()]).await
    }

    /// Links a trace to the prompt versions (`NAME/VERSION`) it used.
    pub async fn link_prompts_to_trace(
        &self,
        trace_id: &str,
        prompt_versions: &[String],
    ) -> Result<(), MetadataError> {
        self.link(&[trace_id.to_string()], "PROMPT_VERSION", prompt_versions)
            .await
    }

    async fn link(
        &self,
        trace_ids: &[String],
        destination_type: &str,
        destinations: &[String],
    ) -> Result<(), MetadataError> {
        for id in trace_ids {
            if self.trace(id).await?.is_none() {
                return Err(no_trace(id));
            }
        }
        let mut tx = self.store.write_tx().await?;
        for id in trace_ids {
            for d in destinations {
                sqlx::query(
                    "INSERT INTO ml_entity_links (source_type, source_id, destination_type, destination_id)
                     VALUES ('TRACE', $1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(destination_type)
                .bind(d)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) a trace's tag.
    pub async fn trace_tag(
        &self,
        id: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), MetadataError> {
        use crate::validation as v;
        v::key(key, "key")?;
        // A long value is cut to the limit, as MLflow's server does by default.
        let value = value.map(|s| v::truncated(s, v::MAX_TRACE_TAG_VAL_LENGTH));
        let value = value.as_deref();
        if self.trace(id).await?.is_none() {
            return Err(no_trace(id));
        }
        match value {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO ml_trace_tags (trace_id, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (trace_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(id)
                .bind(key)
                .bind(value)
                .execute(&self.store.pool)
                .await?;
            }
            None => {
                let res = sqlx::query("DELETE FROM ml_trace_tags WHERE trace_id = $1 AND key = $2")
                    .bind(id)
                    .bind(key)
                    .execute(&self.store.pool)
                    .await?;
                if res.rows_affected() == 0 {
                    return Err(MetadataError::NotFound(Missing::TraceTag {
                        id: id.to_string(),
                        key: key.to_string(),
                    }));
                }
            }
        }
        Ok(())
    }

    /// The assessments of a trace, oldest first.
    pub async fn assessments(&self, trace_id: &str) -> Result<Vec<Value>, MetadataError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM ml_assessments WHERE trace_id = $1 ORDER BY created, assessment_id",
        )
        .bind(trace_id)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|body| Ok(serde_json::from_str(body)?))
            .collect()
    }

    /// Logs an assessment (feedback or an expectation) on a trace; answers it with its id
    /// and times.
    pub async fn create_assessment(
        &self,
        trace_id: &str,
        body: &Value,
    ) -> Result<Value, MetadataError> {
        if self.trace(trace_id).await?.is_none() {
            return Err(no_trace(trace_id));
        }
        let now = chrono::Utc::now().timestamp_millis();
        let id = format!("a-{}", uuid::Uuid::new_v4().simple());
        let mut a = body.clone();
        a["assessment_id"] = json!(id);
        a["trace_id"] = json!(trace_id);
        if a["create_time"].is_null() {
            a["create_time"] = json!(rfc3339(now));
        }
        a["last_update_time"] = a["create_time"].clone();
        sqlx::query(
            "INSERT INTO ml_assessments (assessment_id, trace_id, created, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(trace_id)
        .bind(now)
        .bind(a.to_string())
        .execute(&self.store.pool)
        .await?;
        Ok(a)
    }

    /// One assessment of a trace.
    pub async fn assessment(&self, trace_id: &str, id: &str) -> Result<Value, MetadataError> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM ml_assessments WHERE trace_id = $1 AND assessment_id = $2",
        )
        .bind(trace_id)
        .bind(id)
        .fetch_optional(&self.store.pool)
        .await?;
        let body = body.ok_or_else(|| {
            MetadataError::NotFound(Missing::Assessment {
                trace_id: trace_id.to_string(),
                id: id.to_string(),
            })
        })?;
        Ok(serde_json::from_str(&body)?)
    }

    /// Updates the fields of an assessment named in `fields` from `changes`.
    pub async fn update_assessment(
        &self,
        trace_id: &str,
        id: &str,
        changes: &Value,
        fields: &[String],
    ) -> Result<Value, MetadataError> {
        let mut a = self.assessment(trace_id, id).await?;
        let all = fields.is_empty();
        if let Some(o) = changes.as_object() {
            for (k, v) in o {
                if all || fields.iter().any(|f| f == k) {
                    a[k] = v.clone();
                }
            }
        }
        a["assessment_id"] = json!(id);
        a["trace_id"] = json!(trace_id);
        a["last_update_time"] = json!(rfc3339(chrono::Utc::now().timestamp_millis()));
        sqlx::query(
            "UPDATE ml_assessments SET body = $1 WHERE trace_id = $2 AND assessment_id = $3",
        )
        .bind(a.to_string())
        .bind(trace_id)
        .bind(id)
        .execute(&self.store.pool)
        .await?;
        Ok(a)
    }

    /// Deletes an assessment.
    pub async fn delete_assessment(&self, trace_id: &str, id: &str) -> Result<(), MetadataError> {
        self.assessment(trace_id, id).await?;
        sqlx::query("DELETE FROM ml_assessments WHERE trace_id = $1 AND assessment_id = $2")
            .bind(trace_id)
            .bind(id)
            .execute(&self.store.pool)
            .await?;
        Ok(())
    }
}

impl crate::run_search::Searchable for TraceInfo {
    /// A trace's runs: the one it ran in (`mlflow.sourceRun`) and those it was linked to.
    fn values_of(&self, e: &crate::run_search::Entity) -> Vec<crate::run_search::Literal> {
        use crate::run_search::{Entity, Literal};
        match e {
            Entity::Attribute(k) if k == "run_id" => self
                .trace_metadata
                .get("mlflow.sourceRun")
                .into_iter()
                .chain(self.linked_runs.iter())
                .map(|r| Literal::Text(r.clone()))
                .collect(),
            e => self.value_of(e).into_iter().collect(),
        }
    }

    fn value_of(&self, e: &crate::run_search::Entity) -> Option<crate::run_search::Literal> {
        use crate::run_search::{Entity, Literal};
        let text = |v: Option<&String>| v.map(|s| Literal::Text(s.clone()));
        match e {
            Entity::Tag(k) => text(self.tags.get(k)),
            Entity::Metadata(k) => text(self.trace_metadata.get(k)),
            Entity::Attribute(k) => match k.as_str() {
                "timestamp_ms" | "timestamp" | "request_time" => {
                    Some(Literal::Number(self.request_time_ms as f64))
                }
                "execution_time_ms" | "execution_time" | "execution_duration" => {
                    self.execution_ms.map(|d| Literal::Number(d as f64))
                }
                "status" | "state" => Some(Literal::Text(self.state.clone())),
                "name" => text(self.tags.get("mlflow.traceName")),
                "run_id" => text(self.trace_metadata.get("mlflow.sourceRun")),
                "trace_id" | "request_id" => Some(Literal::Text(self.trace_id.clone())),
                "client_request_id" => text(self.client_request_id.as_ref()),
                _ => None,
            },
            _ => None,
        }
    }
}
