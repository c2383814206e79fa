//! The HTTP client of a running `tarn serve`: the lake's operations over its API, answering
//! with the same types (and so printing the same way) as a lake opened directly. Lists follow
//! `next_token` to the end; SQL travels as an Arrow IPC stream.

use crate::ClientError;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::path::Path;
use tarn_lake::registry::{ModelVersion, RegisteredModel};
use tarn_monitoring::{Figure, MonitorSummary, RunReport, RunSummary};

type Result<T, E = ClientError> = std::result::Result<T, E>;

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Read {
        path: path.display().to_string(),
        source,
    }
}
use tarn_lake::{
    CrawlReport, Event, ExecutionDetail, ExecutionRecord, HistoryEntry, Landed, LoadArgs,
    LoadReport, ObjectInfo, SqlInto, TableDetail, TableFiles, TableSummary,
};

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_token: Option<String>,
}

/// Encodes one path segment (keys keep their `/`).
fn segment(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

fn key_path(key: &str) -> String {
    key.split('/').map(segment).collect::<Vec<_>>().join("/")
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Self> {
        let base = server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::BadServer(base));
        }
        Ok(Client {
            base,
            token,
            http: reqwest::Client::builder()
                .user_agent(concat!("tarn/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| ClientError::Unexpected(e.to_string()))?,
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends, and turns an error answer into its message.
    async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let res = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        // tarn's errors are `{"error": {message}}`; MLflow's API answers `{"message"}`.
        match body["error"]["message"]
            .as_str()
            .or(body["message"].as_str())
        {
            Some(m) if status == StatusCode::UNAUTHORIZED => Err(ClientError::Unauthorized {
                message: m.to_string(),
            }),
            Some(m) => Err(ClientError::Refused {
                status: status.as_u16(),
                message: m.to_string(),
            }),
            None => Err(ClientError::Refused {
                status: status.as_u16(),
                message: format!("the server answered {status}: {text}"),
            }),
        }
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let res = self.send(req).await?;
        res.json()
            .await
            .map_err(|e| ClientError::Unexpected(e.to_string()))
    }

    /// Every item of a paged list.
    async fn all<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<T>> {
        self.first(path, query, usize::MAX).await
    }

    /// The first `n` items of a paged list.
    async fn first<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        n: usize,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        while out.len() < n {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            if let Some(t) = &token {
                q.push(("next_token", t));
            }
            let page: Page<T> = self.json(self.request(Method::GET, path).query(&q)).await?;
            out.extend(page.items);
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.truncate(n);
        Ok(out)
    }

    fn zone_of(target: &str) -> Result<(&str, &str, &str)> {
        let mut parts = target.splitn(3, '/');
        match (parts.next(), parts.next()) {
            (Some(d), Some(l)) if !d.is_empty() && !l.is_empty() => {
                Ok((d, l, parts.next().unwrap_or("")))
            }
            _ => Err(ClientError::NotAZone(target.to_string())),
        }
    }

    pub async fn land(
        &self,
        path: &Path,
        target: &str,
        force: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<Landed>> {
        let (domain, layer, key) = Self::zone_of(target)?;
        let mut out = Vec::new();
        for (file, key) in tarn_lake::land_plan(path, key).map_err(tarn_lake::LakeError::from)? {
            let f = tokio::fs::File::open(&file)
                .await
                .map_err(read_error(&file))?;
            let size = f.metadata().await.map_err(read_error(&file))?.len();
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
            let req = self
                .request(
                    Method::PUT,
                    &format!(
                        "/api/v1/zones/{}/{}/objects/{}",
                        segment(domain),
                        segment(layer),
                        key_path(&key)
                    ),
                )
                .query(&[("force", force)])
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(body);
            out.push(self.json(req).await?);
            progress(size);
        }
        Ok(out)
    }

    pub async fn ls(&self, target: &str) -> Result<Vec<ObjectInfo>> {
        let (domain, layer, prefix) = Self::zone_of(target)?;
        self.all(
            &format!(
                "/api/v1/zones/{}/{}/objects",
                segment(domain),
                segment(layer)
            ),
            &[("prefix", prefix)],
        )
        .await
    }

    pub async fn events(&self, kind: Option<&str>, limit: i64) -> Result<Vec<Event>> {
        let mut q = Vec::new();
        if let Some(k) = kind {
            q.push(("kind", k));
        }
        self.first("/api/v1/events", &q, limit.max(0) as usize)
            .await
    }

    /// The endpoints the server hosts, with the version each serves now.
    pub async fn endpoints(&self) -> Result<Vec<tarn_serving::EndpointStatus>> {
        self.json(self.request(Method::GET, "/api/v1/endpoints"))
            .await
    }

    /// The newest `limit` events, oldest first.
    pub async fn latest_events(&self, kind: Option<&str>, limit: i64) -> Result<Vec<Event>> {
        let limit = limit.max(1).to_string();
        let mut q = vec![("newest", "true"), ("limit", limit.as_str())];
        if let Some(k) = kind {
            q.push(("kind", k));
        }
        let page: Page<Event> = self
            .json(self.request(Method::GET, "/api/v1/events").query(&q))
            .await?;
        Ok(page.items)
    }

    pub async fn crawl(&self, scope: Option<&str>) -> Result<CrawlReport> {
        self.json(
            self.request(Method::POST, "/api/v1/crawls")
                .json(&serde_json::json!({ "scope": scope })),
        )
        .await
    }

    pub async fn doctor(&self, check: bool, stale_after: u64) -> Result<tarn_lake::DoctorReport> {
        self.json(
            self.request(Method::POST, "/api/v1/doctor")
                .json(&serde_json::json!({ "check": check, "stale_after": stale_after })),
        )
        .await
    }

    pub async fn tables(
        &self,
        filter: Option<&str>,
        search: Option<&str>,
    ) -> Result<Vec<TableSummary>> {
        let mut q = Vec::new();
        if let Some(f) = filter {
            q.push(("filter", f));
        }
        if let Some(s) = search {
            q.push(("search", s));
        }
        self.all("/api/v1/tables", &q).await
    }

    pub async fn table(&self, table: &str) -> Result<TableDetail> {
        self.json(self.request(Method::GET, &format!("/api/v1/tables/{}", segment(table))))
            .await
    }

    pub async fn table_files(&self, table: &str) -> Result<TableFiles> {
        self.json(self.request(
            Method::GET,
            &format!("/api/v1/tables/{}/files", segment(table)),
        ))
        .await
    }

    pub async fn history(&self, table: &str) -> Result<Vec<HistoryEntry>> {
        self.all(&format!("/api/v1/tables/{}/history", segment(table)), &[])
            .await
    }

    /// Loads a local file (sent as the body) or an object already in a zone.
    pub async fn load(&self, args: &LoadArgs) -> Result<LoadReport> {
        let mode = args.mode.as_str();
        let format = args.format.map(|f| format!("{f:?}").to_lowercase());
        let local = Path::new(&args.source);
        if local.is_file() {
            let name = local
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("upload")
                .to_string();
            let f = tokio::fs::File::open(local)
                .await
                .map_err(read_error(local))?;
            let mut q = vec![
                ("table", args.table.clone()),
                ("name", name),
                ("mode", mode.to_string()),
            ];
            if let Some(f) = format {
                q.push(("format", f));
            }
            if !args.key.is_empty() {
                q.push(("key", args.key.join(",")));
            }
            if args.again {
                q.push(("again", "true".into()));
            }
            let req = self
                .request(Method::POST, "/api/v1/loads/upload")
                .query(&q)
                .body(reqwest::Body::wrap_stream(
                    tokio_util::io::ReaderStream::new(f),
                ));
            return self.json(req).await;
        }
        self.json(
            self.request(Method::POST, "/api/v1/loads")
                .json(&serde_json::json!({
                    "table": args.table,
                    "source": args.source,
                    "format": format,
                    "mode": mode,
                    "key": args.key,
                    "again": args.again,
                })),
        )
        .await
    }

    /// Runs a query; the rows travel as an Arrow IPC stream, so every output format works.
    /// Runs a query on the server and streams its rows as the server sends them (an Arrow
    /// IPC stream decoded chunk by chunk: nothing holds the whole result).
    pub async fn sql_stream(
        &self,
        query: &str,
        timeout: Option<std::time::Duration>,
    ) -> Result<(arrow::datatypes::SchemaRef, tarn_lake::BatchStream)> {
        use futures::StreamExt;
        let res = self
            .send(
                self.request(Method::POST, "/api/v1/sql")
                    .header(
                        reqwest::header::ACCEPT,
                        "application/vnd.apache.arrow.stream",
                    )
                    .json(&serde_json::json!({
                        "query": query,
                        "timeout_ms": timeout.map(|t| t.as_millis() as u64),
                    })),
            )
            .await?;
        let mut body = IpcBody {
            chunks: res.bytes_stream().boxed(),
            decoder: arrow::ipc::reader::StreamDecoder::new(),
            buffer: arrow::buffer::Buffer::from_vec(Vec::<u8>::new()),
            ended: false,
        };
        // The schema is the stream's first message; a batch may arrive in the same chunk.
        let mut first = None;
        let schema = loop {
            if let Some(s) = body.decoder.schema() {
                break s;
            }
            match body.step().await {
                Ok(Step::Batch(b)) => first = Some(b),
                Ok(Step::Nothing) => {}
                Ok(Step::End) => {
                    return Err(ClientError::Unexpected(
                        "the server's Arrow answer ended before its schema".into(),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        };
        let rows = futures::stream::unfold((Some(body), first), |(body, first)| async move {
            if let Some(b) = first {
                return Some((Ok(b), (body, None)));
            }
            let mut body = body?;
            loop {
                match body.step().await {
                    Ok(Step::Nothing) => {}
                    Ok(Step::Batch(b)) => return Some((Ok(b), (Some(body), None))),
                    Ok(Step::End) => return None,
                    Err(e) => return Some((Err(e), (None, None))),
                }
            }
        });
        Ok((schema, rows.boxed()))
    }

    pub async fn sql_into(&self, query: &str, table: &str) -> Result<SqlInto> {
        self.json(
            self.request(Method::POST, "/api/v1/sql/into")
                .json(&serde_json::json!({ "query": query, "table": table })),
        )
        .await
    }

    /// Records a custom event; answers its id.
    pub async fn put_event(
        &self,
        source: &str,
        detail_type: &str,
        detail: serde_json::Value,
    ) -> Result<String> {
        let v: serde_json::Value = self
            .json(self.request(Method::POST, "/api/v1/events").json(
                &serde_json::json!({"source": source, "detail_type": detail_type, "detail": detail}),
            ))
            .await?;
        Ok(v["event_id"].as_str().unwrap_or_default().to_string())
    }

    /// The newest `limit` executions, of one pipeline and status when given.
    pub async fn executions(
        &self,
        pipeline: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ExecutionRecord>> {
        let mut q = Vec::new();
        if let Some(p) = pipeline {
            q.push(("pipeline", p));
        }
        if let Some(s) = status {
            q.push(("status", s));
        }
        self.first("/api/v1/executions", &q, limit.max(0) as usize)
            .await
    }

    pub async fn execution(&self, id: &str) -> Result<ExecutionDetail> {
        self.json(self.request(Method::GET, &format!("/api/v1/executions/{}", segment(id))))
            .await
    }

    pub async fn execution_logs(&self, id: &str) -> Result<String> {
        let res = self
            .send(self.request(
                Method::GET,
                &format!("/api/v1/executions/{}/logs", segment(id)),
            ))
            .await?;
        res.text()
            .await
            .map_err(|e| ClientError::Unexpected(e.to_string()))
    }

    /// `retry` or `cancel`.
    pub async fn execution_action(&self, id: &str, action: &str) -> Result<ExecutionRecord> {
        self.json(self.request(
            Method::POST,
            &format!("/api/v1/executions/{}/{action}", segment(id)),
        ))
        .await
    }

    /// Every registered model.
    pub async fn models(&self) -> Result<Vec<RegisteredModel>> {
        #[derive(serde::Deserialize)]
        struct List {
            models: Vec<RegisteredModel>,
        }
        let l: List = self
            .json(self.request(Method::GET, "/api/v1/models"))
            .await?;
        Ok(l.models)
    }

    /// A model and all its versions.
    pub async fn model(&self, name: &str) -> Result<(RegisteredModel, Vec<ModelVersion>)> {
        #[derive(serde::Deserialize)]
        struct Detail {
            model: RegisteredModel,
            versions: Vec<ModelVersion>,
        }
        let d: Detail = self
            .json(self.request(Method::GET, &format!("/api/v1/models/{}", segment(name))))
            .await?;
        Ok((d.model, d.versions))
    }

    /// `approve` or `reject` a version, saying why (and who, when the server has no auth).
    pub async fn decide(
        &self,
        name: &str,
        version: &str,
        action: &str,
        reason: &str,
        by: &str,
    ) -> Result<ModelVersion> {
        let path = format!(
            "/api/v1/models/{}/versions/{}/{action}",
            segment(name),
            segment(version)
        );
        self.json(
            self.request(Method::POST, &path)
                .json(&serde_json::json!({ "reason": reason, "by": by })),
        )
        .await
    }

    /// Points `alias` at `version`, or removes it (`None`), through MLflow's registry API.
    pub async fn alias(&self, name: &str, alias: &str, version: Option<&str>) -> Result<()> {
        let path = "/api/2.0/mlflow/registered-models/alias";
        let req = match version {
            Some(v) => self
                .request(Method::POST, path)
                .json(&serde_json::json!({ "name": name, "alias": alias, "version": v })),
            None => self
                .request(Method::DELETE, path)
                .json(&serde_json::json!({ "name": name, "alias": alias })),
        };
        self.send(req).await?;
        Ok(())
    }

    /// The server lake's monitors.
    pub async fn monitors(&self) -> Result<Vec<MonitorSummary>> {
        #[derive(serde::Deserialize)]
        struct List {
            monitors: Vec<MonitorSummary>,
        }
        let l: List = self
            .json(self.request(Method::GET, "/api/v1/monitors"))
            .await?;
        Ok(l.monitors)
    }

    pub async fn monitor(&self, name: &str) -> Result<MonitorSummary> {
        self.json(self.request(Method::GET, &format!("/api/v1/monitors/{}", segment(name))))
            .await
    }

    /// Runs a monitor on the server now (another window than its file's when given).
    pub async fn run_monitor(&self, name: &str, window: Option<&str>) -> Result<RunReport> {
        let req = self
            .request(
                Method::POST,
                &format!("/api/v1/monitors/{}/runs", segment(name)),
            )
            .json(&serde_json::json!({ "window": window }));
        self.json(req).await
    }

    /// The newest `limit` runs of a monitor, newest first.
    pub async fn monitor_runs(&self, name: &str, limit: usize) -> Result<Vec<RunSummary>> {
        #[derive(serde::Deserialize)]
        struct Runs {
            runs: Vec<RunSummary>,
        }
        let r: Runs = self
            .json(
                self.request(
                    Method::GET,
                    &format!("/api/v1/monitors/{}/runs", segment(name)),
                )
                .query(&[("limit", limit)]),
            )
            .await?;
        Ok(r.runs)
    }

    /// The figures of a run of a monitor (by default its latest).
    pub async fn monitor_figures(
        &self,
        name: &str,
        run: Option<&str>,
        alerting_only: bool,
    ) -> Result<Vec<Figure>> {
        #[derive(serde::Deserialize)]
        struct Report {
            figures: Vec<Figure>,
        }
        let mut req = self
            .request(
                Method::GET,
                &format!("/api/v1/monitors/{}/report", segment(name)),
            )
            .query(&[("alerts", alerting_only)]);
        if let Some(r) = run {
            req = req.query(&[("run", r)]);
        }
        let r: Report = self.json(req).await?;
        Ok(r.figures)
    }
}

/// An Arrow IPC stream arriving in chunks of an HTTP body.
struct IpcBody {
    chunks: futures::stream::BoxStream<'static, reqwest::Result<tokio_util::bytes::Bytes>>,
    decoder: arrow::ipc::reader::StreamDecoder,
    buffer: arrow::buffer::Buffer,
    ended: bool,
}

/// What one step through an [`IpcBody`] gave.
enum Step {
    Batch(arrow::record_batch::RecordBatch),
    Nothing,
    End,
}

impl IpcBody {
    /// Decodes what is buffered, reading the next chunk when nothing is.
    async fn step(&mut self) -> Result<Step, tarn_lake::QueryError> {
        use futures::StreamExt;
        let broke = |what: String| tarn_lake::QueryError::Output(what);
        if self.ended {
            return Ok(Step::End);
        }
        if self.buffer.is_empty() {
            match self.chunks.next().await {
                Some(Ok(c)) => self.buffer = arrow::buffer::Buffer::from(c),
                Some(Err(e)) => return Err(broke(format!(
                    "the server's answer broke off (the query failed or ran past its timeout; the server log says which): {e}"
                ))),
                None => {
                    self.ended = true;
                    return self
                        .decoder
                        .finish()
                        .map(|_| Step::End)
                        .map_err(|e| broke(format!("the server's Arrow answer ended early: {e}")))
                }
            }
        }
        match self.decoder.decode(&mut self.buffer) {
            Ok(Some(b)) => Ok(Step::Batch(b)),
            Ok(None) => Ok(Step::Nothing),
            Err(e) => Err(broke(format!(
                "the server's Arrow answer is unreadable: {e}"
            ))),
        }
    }
}
