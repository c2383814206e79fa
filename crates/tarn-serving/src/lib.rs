//! Model endpoints: registered model versions served over HTTP by `tarn serve`.
//!
//! [`Endpoints`] keeps every endpoint of the lake (stored by `tarn endpoints deploy` or
//! declared in `tarn.yml`) in step with the store: each endpoint follows its model URI, and
//! when an alias moves to another approved version, that version is downloaded, loaded and
//! warmed, then swapped in atomically (requests in flight finish on the version they started
//! on). [`router`] answers `POST /endpoints/NAME/invocations`, `GET /endpoints/NAME/ping` and
//! `GET /metrics`.
//!
//! The runtime is chosen from the version's `MLmodel` flavors: `onnx` runs in process
//! ([`onnx`], micro-batched on a thread pool, [`worker`]); `python_function` runs behind
//! MLflow's scoring server as a bring-your-own process ([`byo`]), as does any endpoint with a
//! `command`. Every answered row goes to the inference log ([`log`]).

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod byo;
pub mod columns;
mod error;
pub mod input;
pub mod log;
mod metrics;
mod onnx;
mod worker;

pub use error::{DeployError, LoadError, ModelServerError, ServingError};
pub use metrics::{Minute, MINUTES};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tarn_config::EndpointSpec;
use tarn_lake::Lake;

/// The model tag that lets endpoints serve versions not yet approved (`optional`).
pub const APPROVAL_TAG: &str = "tarn.endpoint.approval";

/// How endpoints run.
#[derive(Debug, Clone)]
pub struct ServingOptions {
    /// How often the store is read for new endpoints and moved aliases.
    pub poll: Duration,
    /// Threads per endpoint running in-process models.
    pub threads: usize,
    pub log: log::LogOptions,
}

impl Default for ServingOptions {
    fn default() -> Self {
        ServingOptions {
            poll: Duration::from_secs(2),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            log: log::LogOptions::default(),
        }
    }
}

/// How a loaded version runs.
enum Runtime {
    Onnx(onnx::OnnxModel),
    Process(byo::Server),
}

/// A model version loaded and warmed, ready to answer.
pub struct Loaded {
    pub model: String,
    pub version: String,
    runtime: Runtime,
    /// The MLmodel signature's inputs are tensors: MLflow then answers every request with
    /// one list per output (as for `instances`), and so does tarn.
    tensor_signature: bool,
    /// The signature's field types and the classifier's classes, for the inference table.
    hints: Arc<columns::Hints>,
    /// Time spent in the model (µs), for `/metrics`.
    busy_micros: AtomicUsize,
}

impl Loaded {
    fn onnx(&self) -> Option<&onnx::OnnxModel> {
        match &self.runtime {
            Runtime::Onnx(m) => Some(m),
            Runtime::Process(_) => None,
        }
    }

    fn runtime_name(&self) -> &'static str {
        match &self.runtime {
            Runtime::Onnx(_) => "onnx",
            Runtime::Process(_) => "process",
        }
    }
}

/// One endpoint.
pub struct Endpoint {
    pub name: String,
    pub spec: EndpointSpec,
    main: RwLock<Option<Arc<Loaded>>>,
    canary: RwLock<Option<Arc<Loaded>>>,
    /// What the endpoint is doing or why it cannot serve.
    state: RwLock<String>,
    pool: worker::Pool,
    log: log::InferenceLog,
    counter: AtomicU64,
    shed: AtomicU64,
}

/// A short view of an endpoint, for `GET /api/v1/endpoints`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EndpointStatus {
    pub name: String,
    pub model: String,
    pub version: Option<String>,
    pub runtime: Option<String>,
    pub canary: Option<String>,
    pub canary_version: Option<String>,
    pub state: String,
    pub inference_table: String,
}

impl Endpoint {
    /// The version a new request goes to (the canary takes its share).
    fn pick(&self) -> Option<Arc<Loaded>> {
        let main = self.main.read().ok()?.clone();
        if let (Some(c), Some(split)) = (
            self.canary.read().ok().and_then(|c| c.clone()),
            &self.spec.canary,
        ) {
            // A spread sequence (Weyl) so the share holds over any window of requests.
            let k = self.counter.fetch_add(1, Ordering::Relaxed);
            let u = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
            if u * 100.0 < split.percent || main.is_none() {
                return Some(c);
            }
        }
        main
    }

    fn status(&self) -> EndpointStatus {
        let main = self.main.read().ok().and_then(|m| m.clone());
        let canary = self.canary.read().ok().and_then(|m| m.clone());
        EndpointStatus {
            name: self.name.clone(),
            model: self.spec.model.clone(),
            version: main.as_ref().map(|m| m.version.clone()),
            runtime: main.as_ref().map(|m| m.runtime_name().to_string()),
            canary: self.spec.canary.as_ref().map(|c| c.model.clone()),
            canary_version: canary.map(|c| c.version.clone()),
            state: self.state.read().map(|s| s.clone()).unwrap_or_default(),
            inference_table: self.spec.inference_table(&self.name),
        }
    }
}

/// Every endpoint of a lake, kept in step with the store.
pub struct Endpoints {
    lake: Lake,
    options: ServingOptions,
    map: RwLock<HashMap<String, Arc<Endpoint>>>,
    metrics: metrics::Metrics,
    /// Serialises refreshes (the poll loop and explicit calls).
    refreshing: tokio::sync::Mutex<()>,
}

/// Where a URI points now: model name, version, files.
struct Target {
    model: String,
    version: String,
    location: String,
}

impl Endpoints {
    /// Starts serving the lake's endpoints: one refresh now, then one every `options.poll`.
    pub async fn start(lake: Lake, options: ServingOptions) -> Arc<Endpoints> {
        let me = Arc::new(Endpoints {
            lake,
            options,
            map: RwLock::new(HashMap::new()),
            metrics: metrics::Metrics::default(),
            refreshing: tokio::sync::Mutex::new(()),
        });
        me.refresh().await;
        let weak = Arc::downgrade(&me);
        let poll = me.options.poll;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let Some(me) = weak.upgrade() else { return };
                me.refresh().await;
            }
        });
        me
    }

    /// Stops taking requests' records and commits every inference log (on shutdown).
    pub async fn close(&self) {
        let eps: Vec<Arc<Endpoint>> = self
            .map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for e in eps {
            e.log.close().await;
        }
    }

    fn get(&self, name: &str) -> Option<Arc<Endpoint>> {
        self.map.read().ok()?.get(name).cloned()
    }

    /// The endpoints and what they serve.
    pub fn statuses(&self) -> Vec<EndpointStatus> {
        let mut v: Vec<EndpointStatus> = self
            .map
            .read()
            .map(|m| m.values().map(|e| e.status()).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Endpoint `name`'s last hour of requests on this node, minute by minute and by version.
    pub fn minutes(&self, name: &str) -> Vec<Minute> {
        self.metrics.minutes(name)
    }

    /// What endpoint `name` serves now, when this node serves it.
    pub fn status(&self, name: &str) -> Option<EndpointStatus> {
        self.get(name).map(|e| e.status())
    }

    /// Scores `body` (JSON in any of MLflow's scoring formats) with endpoint `name` as a
    /// request to its invocations path would be: counted, logged to the inference table.
    pub async fn invoke(self: &Arc<Self>, name: &str, body: Vec<u8>) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        invoke(
            State(self.clone()),
            UrlPath(name.to_string()),
            headers,
            axum::body::Body::from(body),
        )
        .await
    }

    /// The input schema of each endpoint's current version: `(endpoint, [(column, type)])`.
    pub fn schemas(&self) -> Vec<(String, Vec<(String, String)>)> {
        let mut out: Vec<(String, Vec<(String, String)>)> = self
            .map
            .read()
            .map(|m| {
                m.values()
                    .map(|e| {
                        let cols = e
                            .main
                            .read()
                            .ok()
                            .and_then(|l| l.clone())
                            .and_then(|l| {
                                l.onnx().map(|o| {
                                    o.schema()
                                        .into_iter()
                                        .map(|(n, t, _)| (n, t.to_string()))
                                        .collect()
                                })
                            })
                            .unwrap_or_default();
                        (e.name.clone(), cols)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The OpenAPI `paths` of every endpoint: invocations with the current version's input
    /// schema (and an example to try from `/docs`), and ping.
    pub fn openapi_paths(&self) -> serde_json::Map<String, Json> {
        let mut paths = serde_json::Map::new();
        for st in self.statuses() {
            let schema = self
                .schemas()
                .into_iter()
                .find(|(n, _)| *n == st.name)
                .map(|(_, cols)| cols)
                .unwrap_or_default();
            let mut props = serde_json::Map::new();
            let mut example = serde_json::Map::new();
            for (col, ty) in &schema {
                let (t, e) = match ty.as_str() {
                    "string" => ("string", Json::from("a")),
                    "int64" | "int32" => ("integer", Json::from(0)),
                    _ => ("number", Json::from(0.0)),
                };
                props.insert(
                    col.clone(),
                    serde_json::json!({"type": t, "description": ty}),
                );
                example.insert(col.clone(), e);
            }
            let record = if schema.is_empty() {
                serde_json::json!({"type": "object"})
            } else {
                serde_json::json!({"type": "object", "properties": props, "required": schema.iter().map(|c| c.0.clone()).collect::<Vec<_>>()})
            };
            let serves = match &st.version {
                Some(v) => format!("{} version {v}", st.model),
                None => format!("{} (not loaded: {})", st.model, st.state),
            };
            let err = serde_json::json!({"description": "MLflow's error shape", "content": {"application/json": {"schema": {"type": "object", "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}}}}}});
            paths.insert(
                format!("/endpoints/{}/invocations", st.name),
                serde_json::json!({"post": {
                    "tags": ["endpoints"],
                    "summary": format!("Score rows with endpoint {}: {serves}", st.name),
                    "description": format!("MLflow's scoring formats (dataframe_split, dataframe_records, instances, inputs) or CSV with a header. Every answered row is logged to {}; send x-request-id to join actuals later.", st.inference_table),
                    "requestBody": {"required": true, "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {
                                "dataframe_records": {"type": "array", "items": record},
                                "dataframe_split": {"type": "object", "properties": {"columns": {"type": "array", "items": {"type": "string"}}, "data": {"type": "array", "items": {"type": "array"}}}},
                                "instances": {"type": "array"},
                                "inputs": {"type": ["object", "array"]}}},
                            "example": {"dataframe_records": [example]}},
                        "text/csv": {"schema": {"type": "string"}}}},
                    "responses": {
                        "200": {"description": "the predictions, as mlflow models serve answers them; x-tarn-model-version names the version", "content": {"application/json": {"schema": {"type": "object", "properties": {"predictions": {}}}}}},
                        "400": err, "413": err, "415": {"description": "not JSON or CSV"},
                        "503": err, "504": err}}}),
            );
            paths.insert(
                format!("/endpoints/{}/ping", st.name),
                serde_json::json!({"get": {"tags": ["endpoints"], "summary": format!("200 when endpoint {} has a version loaded", st.name),
                    "responses": {"200": {"description": "ready"}, "503": err}}}),
            );
        }
        paths
    }

    /// Reads the store: starts new endpoints, drops deleted ones, restarts changed ones, and
    /// moves each to the version its URI names now.
    pub async fn refresh(&self) {
        let _one = self.refreshing.lock().await;
        let stored = match self.lake.endpoints().list().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("endpoints: cannot read the store: {e}");
                return;
            }
        };
        let mut wanted = HashMap::new();
        for r in stored {
            match serde_json::from_value::<EndpointSpec>(r.spec.clone()) {
                Ok(spec) => {
                    wanted.insert(r.name.clone(), spec);
                }
                Err(e) => tracing::warn!("endpoint {}: unreadable spec: {e}", r.name),
            }
        }
        let current: Vec<(String, Arc<Endpoint>)> = self
            .map
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (name, ep) in &current {
            if wanted.get(name) != Some(&ep.spec) {
                if let Ok(mut m) = self.map.write() {
                    m.remove(name);
                }
                tracing::info!("endpoint {name}: removed or changed");
            }
        }
        for (name, spec) in wanted {
            let ep = match self.get(&name) {
                Some(ep) => ep,
                None => {
                    let ep = Arc::new(Endpoint {
                        name: name.clone(),
                        pool: worker::Pool::new(
                            &name,
                            self.options.threads,
                            spec.max_queue(),
                            spec.max_batch(),
                        ),
                        log: log::InferenceLog::start(
                            self.lake.clone(),
                            &name,
                            spec.inference_table(&name),
                            self.options.log.clone(),
                        ),
                        spec,
                        main: RwLock::new(None),
                        canary: RwLock::new(None),
                        state: RwLock::new("loading".into()),
                        counter: AtomicU64::new(0),
                        shed: AtomicU64::new(0),
                    });
                    if let Ok(mut m) = self.map.write() {
                        m.insert(name.clone(), ep.clone());
                    }
                    ep
                }
            };
            self.follow(&ep).await;
        }
    }

    async fn follow(&self, ep: &Arc<Endpoint>) {
        let main = self.follow_one(ep, &ep.spec.model.clone(), &ep.main).await;
        let canary = match &ep.spec.canary {
            Some(c) => self.follow_one(ep, &c.model.clone(), &ep.canary).await,
            None => Ok(()),
        };
        let state = match (main, canary) {
            (Ok(()), Ok(())) => "serving".to_string(),
            (Err(e), _) => e.to_string(),
            (_, Err(e)) => format!("canary: {e}"),
        };
        if let Ok(mut s) = ep.state.write() {
            *s = state;
        }
    }

    /// Resolves `uri`; when it names another version than `slot` holds, loads, warms and
    /// swaps it in. A failure keeps the old version serving and answers why.
    async fn follow_one(
        &self,
        ep: &Arc<Endpoint>,
        uri: &str,
        slot: &RwLock<Option<Arc<Loaded>>>,
    ) -> Result<(), LoadError> {
        let target = resolve(&self.lake, uri).await?;
        let held = slot.read().ok().and_then(|s| s.clone());
        if held
            .as_ref()
            .is_some_and(|h| h.model == target.model && h.version == target.version)
        {
            return Ok(());
        }
        let loaded = self
            .load(ep, &target)
            .await
            .map_err(|e| LoadError::Version {
                model: target.model.clone(),
                version: target.version.clone(),
                source: Box::new(e),
            })?;
        tracing::info!(
            "endpoint {}: now serving {} version {} ({})",
            ep.name,
            loaded.model,
            loaded.version,
            loaded.runtime_name()
        );
        if let Ok(mut s) = slot.write() {
            *s = Some(Arc::new(loaded));
        }
        Ok(())
    }

    async fn load(&self, ep: &Arc<Endpoint>, t: &Target) -> Result<Loaded, LoadError> {
        let root = self
            .lake
            .config
            .root
            .join(".tarn")
            .join("endpoints")
            .join(&ep.name);
        let dir = root.join(format!(
            "{}-{}-{}",
            t.model,
            t.version,
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(|source| LoadError::File {
            path: dir.display().to_string(),
            source,
        })?;
        let model_dir = dir.join("model");
        let mlmodel = self.lake.download_model(&t.location, &model_dir).await?;
        let flavors = mlmodel.get("flavors").cloned().unwrap_or(Json::Null);
        let command: Option<Vec<String>> = if let Some(c) = &ep.spec.command {
            Some(c.clone())
        } else if flavors.get("onnx").is_some() {
            None
        } else if flavors.get("python_function").is_some() {
            let python = tarn_process::Python::new(&self.lake.config.root);
            Some(
                [
                    python.base().display().to_string().as_str(),
                    "-m",
                    "mlflow",
                    "models",
                    "serve",
                    "-m",
                    "{model_dir}",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    "{port}",
                    "--env-manager",
                    "local",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            )
        } else {
            let flavors: Vec<String> = flavors
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            return Err(LoadError::Flavors { flavors });
        };
        let runtime = match command {
            None => {
                let data = flavors["onnx"]
                    .get("data")
                    .and_then(Json::as_str)
                    .unwrap_or("model.onnx");
                let file = model_dir.join(data);
                let bytes = std::fs::read(&file).map_err(|source| LoadError::File {
                    path: file.display().to_string(),
                    source,
                })?;
                let model = tarn_onnx::Model::load(&bytes)?;
                let m = onnx::OnnxModel { model };
                warm(&m).map_err(LoadError::Warm)?;
                Runtime::Onnx(m)
            }
            Some(command) => {
                let launch = byo::Launch {
                    command,
                    dir: self.lake.config.root.clone(),
                    model_dir: model_dir.clone(),
                    log: dir.join("server.log"),
                };
                Runtime::Process(byo::Server::start(launch, ep.name.clone()).await?)
            }
        };
        let tensor_signature = mlmodel
            .pointer("/signature/inputs")
            .and_then(Json::as_str)
            .and_then(|s| serde_json::from_str::<Json>(s).ok())
            .and_then(|v| v.as_array().cloned())
            .is_some_and(|a| a.iter().any(|i| i["type"] == "tensor"));
        Ok(Loaded {
            model: t.model.clone(),
            version: t.version.clone(),
            runtime,
            tensor_signature,
            hints: Arc::new(columns::Hints::of_mlmodel(&mlmodel)),
            busy_micros: AtomicUsize::new(0),
        })
    }

    fn metrics_text(&self) -> String {
        let eps: Vec<Arc<Endpoint>> = self
            .map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let mut gauges = Vec::new();
        for (name, help) in [
            (
                "tarn_endpoint_queue_depth",
                "Requests waiting for the model.",
            ),
            (
                "tarn_endpoint_shed_total",
                "Requests refused with 503 because the queue was full.",
            ),
            (
                "tarn_endpoint_model_seconds_total",
                "Time spent running the model.",
            ),
            (
                "tarn_endpoint_server_restarts_total",
                "Restarts of bring-your-own model servers.",
            ),
            (
                "tarn_inference_log_written_total",
                "Rows written to the inference table.",
            ),
            (
                "tarn_inference_log_buffered",
                "Rows waiting on local disk for the store.",
            ),
            (
                "tarn_inference_log_failures_total",
                "Failed writes to the inference table.",
            ),
        ] {
            for e in &eps {
                let main = e.main.read().ok().and_then(|m| m.clone());
                let value = match name {
                    "tarn_endpoint_queue_depth" => e.pool.depth() as f64,
                    "tarn_endpoint_shed_total" => e.shed.load(Ordering::Relaxed) as f64,
                    "tarn_endpoint_model_seconds_total" => main
                        .as_ref()
                        .map(|m| m.busy_micros.load(Ordering::Relaxed) as f64 / 1e6)
                        .unwrap_or(0.0),
                    "tarn_endpoint_server_restarts_total" => {
                        match main.as_deref().map(|m| &m.runtime) {
                            Some(Runtime::Process(s)) => s.restarts.load(Ordering::Relaxed) as f64,
                            _ => 0.0,
                        }
                    }
                    "tarn_inference_log_written_total" => {
                        e.log.stats.written.load(Ordering::Relaxed) as f64
                    }
                    "tarn_inference_log_buffered" => {
                        e.log.stats.buffered.load(Ordering::Relaxed) as f64
                    }
                    _ => e.log.stats.failures.load(Ordering::Relaxed) as f64,
                };
                gauges.push((name, help, e.name.clone(), value));
            }
        }
        self.metrics.render(&gauges)
    }
}

/// The approval status endpoints serve (the registry's `Approved`).
const APPROVED: &str = "Approved";

async fn resolve(lake: &Lake, uri: &str) -> Result<Target, DeployError> {
    let r = lake.resolve_model(uri).await?;
    let (Some(model), Some(version)) = (r.model, r.version) else {
        return Err(DeployError::NotAVersion {
            uri: uri.to_string(),
        });
    };
    let Some(v) = lake.registry().model_version(&model, &version).await? else {
        return Err(DeployError::NoVersion { model, version });
    };
    if v.approval.status != APPROVED {
        let policy = lake
            .registry()
            .registered_model(&model)
            .await?
            .and_then(|m| m.tags.into_iter().find(|t| t.key == APPROVAL_TAG))
            .map(|t| t.value)
            .unwrap_or_default();
        if !policy.eq_ignore_ascii_case("optional") {
            return Err(DeployError::NotApproved {
                model,
                version,
                status: v.approval.status,
                tag: APPROVAL_TAG,
            });
        }
    }
    Ok(Target {
        model,
        version,
        location: r.location,
    })
}

/// Checks that an endpoint can be deployed: its spec is valid, its log domain is declared,
/// and its model URI (and canary) name versions it may serve. Answers `(model, version)` of
/// each URI.
pub async fn deployable(
    lake: &Lake,
    name: &str,
    spec: &EndpointSpec,
) -> Result<Vec<(String, String)>, DeployError> {
    spec.check(name)
        .map_err(|(field, problem)| DeployError::Spec { field, problem })?;
    if !lake.config.has_domain(spec.log_domain()) {
        return Err(DeployError::NoLogDomain {
            table: spec.inference_table(name),
            domain: spec.log_domain().to_string(),
        });
    }
    let mut out = Vec::new();
    for uri in std::iter::once(&spec.model).chain(spec.canary.as_ref().map(|c| &c.model)) {
        let t = resolve(lake, uri).await?;
        out.push((t.model, t.version));
    }
    Ok(out)
}

/// Makes the stored endpoints match `tarn.yml`'s `endpoints:`: declared ones are stored (as
/// `config`), those once declared and now gone are deleted; endpoints deployed from the CLI
/// are left alone. Answers the names stored.
pub async fn sync_declared(lake: &Lake, user: &str) -> Result<Vec<String>, DeployError> {
    let declared = &lake.config.endpoints;
    let stored = lake.endpoints().list().await?;
    for r in &stored {
        if r.source == "config" && !declared.contains_key(&r.name) {
            lake.endpoints().delete_endpoint(&r.name).await?;
        }
    }
    let mut names = Vec::new();
    for (name, spec) in declared {
        let json = serde_json::to_value(spec).map_err(|e| DeployError::Spec {
            field: "endpoints",
            problem: format!("endpoint `{name}` cannot be stored: {e}"),
        })?;
        let same = stored
            .iter()
            .any(|r| &r.name == name && r.spec == json && r.source == "config");
        if !same {
            lake.endpoints()
                .put_endpoint(name, &json, "config", user)
                .await?;
        }
        names.push(name.clone());
    }
    Ok(names)
}

/// Runs the model once on a made-up row so the first request does not pay for warming.
fn warm(m: &onnx::OnnxModel) -> Result<(), ServingError> {
    let schema = m.schema();
    let frame = input::Frame {
        names: Some(schema.iter().map(|(n, _, _)| n.clone()).collect()),
        columns: schema
            .iter()
            .map(|(_, t, w)| {
                let one = if *t == "string" {
                    Json::from("")
                } else {
                    Json::from(0)
                };
                vec![match w {
                    Some(w) if *w > 1 => Json::Array(vec![one; *w]),
                    _ => one,
                }]
            })
            .collect(),
        rows: 1,
    };
    let feeds = m.feeds(&frame)?;
    match m.run(&[&feeds]) {
        Ok(_) | Err(ServingError::BadRequest(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The routes of every endpoint and `/metrics`.
pub fn router(endpoints: Arc<Endpoints>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/endpoints/{name}/invocations", post(invoke))
        .route("/endpoints/{name}/ping", get(ping))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(endpoints)
}

async fn metrics(State(eps): State<Arc<Endpoints>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        eps.metrics_text(),
    )
        .into_response()
}

async fn ping(State(eps): State<Arc<Endpoints>>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(ep) = eps.get(&name) else {
        return not_found(&name).into_response();
    };
    match ep.pick() {
        Some(l) if !matches!(&l.runtime, Runtime::Process(s) if !s.healthy()) => {
            let mut r = (StatusCode::OK, "\n").into_response();
            version_headers(&mut r, &ep, &l, None);
            r
        }
        _ => ServingError::Unavailable(format!(
            "endpoint {name} is not ready: {}",
            ep.state.read().map(|s| s.clone()).unwrap_or_default()
        ))
        .into_response(),
    }
}

fn not_found(name: &str) -> ServingError {
    ServingError::NotFound(format!(
        "no endpoint is called `{name}`; `tarn endpoints list` shows them, `tarn endpoints deploy` makes one"
    ))
}

fn version_headers(r: &mut Response, ep: &Endpoint, l: &Loaded, request_id: Option<&str>) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ep.name) {
        h.insert("x-tarn-endpoint", v);
    }
    if let Ok(v) = HeaderValue::from_str(&l.model) {
        h.insert("x-tarn-model", v);
    }
    if let Ok(v) = HeaderValue::from_str(&l.version) {
        h.insert("x-tarn-model-version", v);
    }
    if let Some(id) = request_id.and_then(|i| HeaderValue::from_str(i).ok()) {
        h.insert("x-request-id", id);
    }
}

async fn invoke(
    State(eps): State<Arc<Endpoints>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let started = Instant::now();
    let Some(ep) = eps.get(&name) else {
        return not_found(&name).into_response();
    };
    // Read at most the endpoint's limit: a larger body is refused before it is buffered.
    let limit = ep.spec.max_body();
    let body = match axum::body::to_bytes(body, limit.saturating_add(1)).await {
        Ok(b) if b.len() <= limit => b,
        Ok(_) | Err(_) => {
            return ServingError::TooLarge(format!(
                "the request body is larger than endpoint {name} takes: at most {limit} bytes (max_body); send fewer rows per request"
            ))
            .into_response()
        }
    };
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let loaded = ep.pick();
    let version = loaded
        .as_ref()
        .map(|l| l.version.clone())
        .unwrap_or_else(|| "none".into());
    let outcome = match &loaded {
        None => Err(ServingError::Unavailable(format!(
            "endpoint {name} has no version loaded: {}",
            ep.state.read().map(|s| s.clone()).unwrap_or_default()
        ))),
        Some(l) => answer(&ep, l, content_type.as_deref(), body, &request_id, started).await,
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut r = match outcome {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, ServingError::Unavailable(_)) {
                ep.shed.fetch_add(1, Ordering::Relaxed);
            }
            e.into_response()
        }
    };
    eps.metrics
        .observe(&name, &version, r.status().as_u16(), seconds);
    if let Some(l) = &loaded {
        version_headers(&mut r, &ep, l, Some(&request_id));
    }
    r
}

/// Scores one request on `l` and logs its rows.
async fn answer(
    ep: &Arc<Endpoint>,
    l: &Arc<Loaded>,
    content_type: Option<&str>,
    body: Bytes,
    request_id: &str,
    started: Instant,
) -> Result<Response, ServingError> {
    if body.len() > ep.spec.max_body() {
        return Err(ServingError::TooLarge(format!(
            "the request body is {} bytes; endpoint {} takes at most {} (max_body)",
            body.len(),
            ep.name,
            ep.spec.max_body()
        )));
    }
    let timeout = ep.spec.timeout();
    match &l.runtime {
        Runtime::Onnx(m) => {
            let csv = input::media_type(content_type)?;
            let (frame, shape) = input::parse(&body, csv)?;
            let feeds = m.feeds(&frame)?;
            let rows = feeds.rows;
            let (tx, rx) = tokio::sync::oneshot::channel();
            ep.pool.submit(worker::Job {
                loaded: l.clone(),
                feeds,
                reply: tx,
            })?;
            let outputs = match tokio::time::timeout(timeout, rx).await {
                Err(_) => {
                    return Err(ServingError::Timeout(format!(
                        "Request processing time exceeded limit ({}s, the endpoint's timeout)",
                        timeout.as_secs_f64()
                    )))
                }
                Ok(Err(_)) => return Err(ServingError::Internal("the worker stopped".into())),
                Ok(Ok(r)) => r?,
            };
            let names = m.output_names();
            let per_row: Vec<Json> = (0..rows)
                .map(|r| {
                    Json::Object(
                        names
                            .iter()
                            .zip(&outputs)
                            .map(|(n, v)| (n.clone(), onnx::cell(v, r)))
                            .collect(),
                    )
                })
                .collect();
            let shape = if l.tensor_signature {
                input::Shape::Tensors
            } else {
                shape
            };
            let predictions = match shape {
                input::Shape::Records => Json::Array(per_row.clone()),
                input::Shape::Tensors => Json::Object(
                    names
                        .iter()
                        .zip(&outputs)
                        .map(|(n, v)| (n.clone(), onnx::column(v, rows)))
                        .collect(),
                ),
            };
            let body = serde_json::to_vec(&serde_json::json!({ "predictions": predictions }))
                .map_err(|e| ServingError::Internal(e.to_string()))?;
            record(ep, l, request_id, &frame, &per_row, started);
            Ok(([("content-type", "application/json")], body).into_response())
        }
        Runtime::Process(s) => {
            let (status, ct, out) = s.invoke(body.clone(), content_type, timeout).await?;
            if status == 200 {
                // Log what can be read back: the rows as parsed, the predictions as answered.
                let csv = input::media_type(content_type).unwrap_or(false);
                if let Ok((frame, _)) = input::parse(&body, csv) {
                    let preds: Json = serde_json::from_slice(&out).unwrap_or(Json::Null);
                    let list = match preds.get("predictions").unwrap_or(&preds) {
                        Json::Array(a) if a.len() == frame.rows => a.clone(),
                        other => vec![other.clone(); frame.rows.min(1)],
                    };
                    record(ep, l, request_id, &frame, &list, started);
                }
            }
            let mut r = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                out,
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&ct) {
                r.headers_mut().insert("content-type", v);
            }
            Ok(r)
        }
    }
}

fn record(
    ep: &Endpoint,
    l: &Loaded,
    request_id: &str,
    frame: &input::Frame,
    predictions: &[Json],
    started: Instant,
) {
    let now = chrono::Utc::now().timestamp_micros();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let records = (0..frame.rows.max(predictions.len()))
        .map(|r| log::Record {
            request_id: request_id.to_string(),
            row: r as i32,
            timestamp: now,
            endpoint: ep.name.clone(),
            model: l.model.clone(),
            model_version: l.version.clone(),
            features: if r < frame.rows {
                frame.row(r)
            } else {
                Json::Null
            },
            prediction: predictions.get(r).cloned().unwrap_or(Json::Null),
            latency_ms,
            hints: Some(l.hints.clone()),
        })
        .collect();
    ep.log.push(records);
}
