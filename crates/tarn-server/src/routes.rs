//! The routes of the API and their handlers: thin translations to `tarn-lake` calls.

use crate::access::Access;
use crate::error::{ErrorBody, JsonBody, Params, PathParams};
use crate::{ApiError, App};
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tarn_config::{Action, Resource};
use tarn_lake::{LandOptions, LoadArgs, LoadMode, OutputFormat, QueryOptions};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

type ApiResult<T> = Result<T, ApiError>;

/// The documented routes, each registered once: its path and methods come from the handler's
/// `#[utoipa::path]`, so the router and `/openapi.json` cannot disagree. (The MLflow API is
/// MLflow's, documented by MLflow; model endpoints add their own paths at run time.)
pub(crate) fn documented() -> OpenApiRouter<App> {
    use crate::{executions, models};
    OpenApiRouter::with_openapi(crate::docs::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(crate::docs::openapi_json))
        .routes(routes!(zones))
        .routes(routes!(list_objects))
        .routes(routes!(read_object, land_object))
        .routes(routes!(events, executions::put_event))
        .routes(routes!(executions::list))
        .routes(routes!(executions::show))
        .routes(routes!(executions::logs))
        .routes(routes!(executions::retry))
        .routes(routes!(executions::cancel))
        .routes(routes!(models::list))
        .routes(routes!(models::show))
        .routes(routes!(models::approve))
        .routes(routes!(models::reject))
        .routes(routes!(crate::monitors::list))
        .routes(routes!(crate::monitors::show))
        .routes(routes!(crate::monitors::run, crate::monitors::runs))
        .routes(routes!(crate::monitors::report))
        .routes(routes!(tables))
        .routes(routes!(table))
        .routes(routes!(history))
        .routes(routes!(table_files))
        .routes(routes!(crawls, crawl))
        .routes(routes!(doctor))
        .routes(routes!(load))
        .routes(routes!(load_upload))
        .routes(routes!(sql))
        .routes(routes!(sql_into))
}

pub(crate) fn router(app: App) -> Router {
    let (documented, _) = documented().split_for_parts();
    let main = documented
        .route("/docs", get(crate::docs::page))
        .route("/docs/{file}", get(crate::docs::asset))
        .nest("/api/2.0/mlflow", crate::mlflow::router())
        .nest("/api/3.0/mlflow", crate::mlflow::router_v3())
        .route(
            "/api/2.0/mlflow-artifacts/artifacts",
            get(crate::mlflow_artifacts::list),
        )
        .route(
            "/api/2.0/mlflow-artifacts/artifacts/{*path}",
            get(crate::mlflow_artifacts::download).put(crate::mlflow_artifacts::upload),
        )
        .route("/api/2.0/mlflow-artifacts/{*rest}", axum::routing::any(crate::mlflow::not_built))
        .route("/api/v1/endpoints", get(endpoints))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/ui/") }).post(crate::glue::handle),
        )
        .merge(tarn_ui::router({
            let ui = tarn_ui::Ui::new(app.lake.clone())
                .with_body_limit(app.limits.request_body)
                .waking(app.landed.clone())
                .with_sessions(app.ui_sessions.clone());
            match &app.endpoints {
                Some(e) => ui.with_serving(Arc::new(crate::ui::Hosted(e.clone()))),
                None => ui,
            }
        }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|r: &axum::http::Request<Body>| {
                    tracing::info_span!("request", method = %r.method(), path = %r.uri().path(), token = tracing::field::Empty)
                })
                .on_response(
                    |res: &Response, latency: Duration, _span: &tracing::Span| {
                        tracing::info!(status = res.status().as_u16(), ms = latency.as_secs_f64() * 1000.0, "answered");
                    },
                ),
        )
        .with_state(app.clone());
    // Endpoints answer without an access log line each (their requests are counted in
    // /metrics and kept in the inference tables), behind the same token check.
    let serving = match &app.endpoints {
        Some(e) => tarn_serving::router(e.clone()),
        None => Router::new(),
    };
    main.merge(serving)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::auth::require_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// The endpoints `tarn serve` hosts, with the version each serves.
async fn endpoints(State(app): State<App>) -> Json<Vec<tarn_serving::EndpointStatus>> {
    Json(
        app.endpoints
            .as_ref()
            .map(|e| e.statuses())
            .unwrap_or_default(),
    )
}

pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    wrong_method(&method, uri.path())
}

fn wrong_method(method: &axum::http::Method, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not served at {path}; /openapi.json lists the methods of every route"),
    )
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "no such route; the API lives under /api/v1, described at /openapi.json and browsable at /docs",
    )
}

/// Liveness.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: String,
}

/// Whether the process is up.
#[utoipa::path(get, path = "/health", tag = "probes", responses((status = 200, body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: whether the stores answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `not ready`.
    status: String,
    /// The metadata store answers.
    metadata: bool,
    /// The object store answers.
    storage: bool,
    /// This node (`HOST:PID`), one of a deployment's nodes on one metadata store.
    node: String,
    /// What this node does: `api` and `endpoints` (every `tarn serve`), `executions` (when the
    /// lake has pipelines), and `coordinator` while it holds that role (it watches zones and
    /// fires schedules; one node of a deployment at a time).
    roles: Vec<String>,
}

/// Whether the metadata store and the object store are reachable.
#[utoipa::path(get, path = "/ready", tag = "probes", responses(
    (status = 200, body = Readiness, description = "both stores answer"),
    (status = 503, body = Readiness, description = "a store does not answer"),
))]
pub(crate) async fn ready(State(app): State<App>) -> Response {
    let meta = app.lake.metadata_answers().await;
    let storage = app
        .lake
        .zones
        .store()
        .list_with_delimiter(None)
        .await
        .is_ok();
    let node = tarn_lake::this_node();
    let mut roles = vec!["api".to_string(), "endpoints".to_string()];
    if app.lake.config.runs_pipelines() {
        roles.push("executions".into());
    }
    if meta {
        if let Ok(held) = app.lake.roles().holders().await {
            roles.extend(
                held.into_iter()
                    .filter(|h| h.owner.starts_with(&node))
                    .map(|h| h.role),
            );
        }
    }
    let status = if meta && storage {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if status == StatusCode::OK {
                "ready"
            } else {
                "not ready"
            }
            .into(),
            metadata: meta,
            storage,
            node: node.trim_end_matches(':').to_string(),
            roles,
        }),
    )
        .into_response()
}

/// A page of a list, with the token that asks for the next one.
#[derive(Serialize, ToSchema)]
pub(crate) struct Page<T: ToSchema> {
    items: Vec<T>,
    /// Pass as `next_token` to get the next page; absent on the last page.
    next_token: Option<String>,
}

/// Paging of every list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Items per page, 1 to 10000 (default 1000).
    limit: Option<usize>,
    /// The `next_token` of the previous page.
    next_token: Option<String>,
}

const DEFAULT_PAGE: usize = 1000;

/// A page token: the last key of the page before, opaque to clients.
fn encode_token(key: &str) -> String {
    format!("p{}", hex::encode(key))
}

/// The key inside a page token, or a 400 for a token this server never gave.
fn decode_token(token: &str) -> ApiResult<String> {
    token
        .strip_prefix('p')
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_page_token",
                "next_token is not one this server gave; pass the next_token of the previous page, or leave it out to start from the first",
            )
        })
}

impl PageQuery {
    /// The page size asked for, within `limits.page_size`.
    fn limit(&self, app: &App) -> ApiResult<usize> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE.min(app.limits.page_size));
        if limit == 0 || limit > app.limits.page_size {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "page_limit",
                format!(
                    "limit must be between 1 and {} (limits.page_size in tarn.yml)",
                    app.limits.page_size
                ),
            ));
        }
        Ok(limit)
    }

    /// The key after which the page starts.
    fn after(&self) -> ApiResult<Option<String>> {
        self.next_token.as_deref().map(decode_token).transpose()
    }
}

/// Items after the page token (by `key`, ascending), at most `limit` (default 1000).
fn page<T: ToSchema>(
    app: &App,
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    q: &PageQuery,
) -> ApiResult<Page<T>> {
    let limit = q.limit(app)?;
    let mut rest: Vec<T> = match q.after()? {
        Some(t) => items.into_iter().filter(|i| key(i) > t).collect(),
        None => items,
    };
    let next_token = if rest.len() > limit {
        rest.truncate(limit);
        rest.last().map(|i| encode_token(&key(i)))
    } else {
        None
    };
    Ok(Page {
        items: rest,
        next_token,
    })
}

/// A zone: one domain x layer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ZoneInfo {
    domain: String,
    layer: String,
    database: String,
    location: String,
}

/// Every zone the lake declares that the caller may read (or read a table of).
#[utoipa::path(get, path = "/api/v1/zones", tag = "zones", params(PageQuery), responses(
    (status = 200, body = Page<ZoneInfo>), (status = 400, body = ErrorBody),
))]
pub(crate) async fn zones(
    State(app): State<App>,
    Extension(access): Extension<Access>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Page<ZoneInfo>>> {
    let all: Vec<ZoneInfo> = app
        .lake
        .zones
        .all()
        .into_iter()
        .filter(|z| {
            access
                .grants
                .reaches(Action::Read, &Resource::zone(&z.domain, &z.layer))
        })
        .map(|z| ZoneInfo {
            location: app.lake.zones.url_of(&z.root()),
            database: z.database(),
            domain: z.domain,
            layer: z.layer,
        })
        .collect();
    Ok(Json(page(&app, all, |z| z.database.clone(), &q)?))
}

/// Narrows a list of objects.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PrefixQuery {
    /// Only keys starting with this.
    prefix: Option<String>,
}

/// Objects of a zone, by key.
#[utoipa::path(get, path = "/api/v1/zones/{domain}/{layer}/objects", tag = "zones",
    params(("domain" = String, Path), ("layer" = String, Path), PrefixQuery, PageQuery),
    responses((status = 200, body = Page<tarn_lake::ObjectInfo>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_objects(
    State(app): State<App>,
    PathParams((domain, layer)): PathParams<(String, String)>,
    Params(p): Params<PrefixQuery>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Page<tarn_lake::ObjectInfo>>> {
    let target = format!("{domain}/{layer}/{}", p.prefix.unwrap_or_default());
    let objects = app.lake.ls(&target).await?;
    Ok(Json(page(&app, objects, |o| o.key.clone(), &q)?))
}

/// The bytes of an object (keys may hold `/`).
#[utoipa::path(get, path = "/api/v1/zones/{domain}/{layer}/objects/{*key}", tag = "zones",
    params(("domain" = String, Path), ("layer" = String, Path), ("key" = String, Path, description = "the object's key; `/` may be sent as is or as %2F")),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn read_object(
    State(app): State<App>,
    PathParams((domain, layer, key)): PathParams<(String, String, String)>,
) -> ApiResult<Response> {
    let zone = app
        .lake
        .zones
        .zone(&domain, &layer)
        .map_err(tarn_lake::LakeError::from)?;
    let bytes = app
        .lake
        .zones
        .read(&zone, &key)
        .await
        .map_err(tarn_lake::LakeError::from)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// Landing options.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LandQuery {
    /// Replace an existing raw object; its old content is kept under `_versions/`.
    #[serde(default)]
    force: bool,
}

/// Lands the body as an object and records one `object.created` event per content.
#[utoipa::path(put, path = "/api/v1/zones/{domain}/{layer}/objects/{*key}", tag = "zones",
    params(("domain" = String, Path), ("layer" = String, Path), ("key" = String, Path), LandQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = tarn_lake::Landed, description = "landed (new or replaced)"),
        (status = 200, body = tarn_lake::Landed, description = "the same bytes were there already"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a raw object with other content exists"),
        (status = 413, body = ErrorBody)))]
pub(crate) async fn land_object(
    State(app): State<App>,
    PathParams((domain, layer, key)): PathParams<(String, String, String)>,
    Params(q): Params<LandQuery>,
    body: Body,
) -> ApiResult<Response> {
    // Check the place before reading a byte of the body.
    app.lake
        .zones
        .zone(&domain, &layer)
        .map_err(tarn_lake::LakeError::from)?;
    app.lake
        .zones
        .check_key(&key)
        .map_err(tarn_lake::LakeError::from)?;
    let (_dir, path) = receive(&app, body, "object").await?;
    let landed = app
        .lake
        .land(
            &path,
            &format!("{domain}/{layer}/{key}"),
            &LandOptions { force: q.force },
            &|_| {},
        )
        .await?;
    app.landed.notify_one();
    let first = landed
        .into_iter()
        .next()
        .expect("one file lands one object");
    let status = match first.outcome {
        tarn_lake::LandOutcome::Unchanged => StatusCode::OK,
        _ => StatusCode::CREATED,
    };
    Ok((status, Json(first)).into_response())
}

/// Streams a request body into a temporary file, within the object size limit.
async fn receive(
    app: &App,
    body: Body,
    name: &str,
) -> ApiResult<(tempfile::TempDir, std::path::PathBuf)> {
    let room = |e: std::io::Error| ApiError::internal(format!("receiving a body: {e}"));
    // Under the lake's own folder, where `tarn doctor` (run at every start) removes what a
    // killed server left half-received; the system's temporary folder when that cannot be made.
    let incoming = app.lake.incoming_dir();
    let dir = std::fs::create_dir_all(&incoming)
        .and_then(|_| {
            tempfile::Builder::new()
                .prefix("upload-")
                .tempdir_in(&incoming)
        })
        .or_else(|_| tempfile::tempdir())
        .map_err(room)?;
    let path = dir.path().join(name);
    let mut file = tokio::fs::File::create(&path).await.map_err(room)?;
    let mut stream = body.into_data_stream();
    let mut size: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > app.limits.object_size {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "object_too_large",
                format!(
                    "objects are limited to {} bytes on this server",
                    app.limits.object_size
                ),
            ));
        }
        file.write_all(&chunk).await.map_err(room)?;
    }
    file.flush().await.map_err(room)?;
    Ok((dir, path))
}

/// Which events to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    /// Only this kind, e.g. `object.created`.
    kind: Option<String>,
    /// The newest `limit` events (oldest first, one page, no `next_token`) instead of paging
    /// from the oldest.
    #[serde(default)]
    newest: bool,
}

/// Recorded events, oldest first (or the newest, with `newest=true`).
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery, PageQuery),
    responses((status = 200, body = Page<tarn_lake::Event>), (status = 400, body = ErrorBody)))]
pub(crate) async fn events(
    State(app): State<App>,
    Params(e): Params<EventQuery>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Page<tarn_lake::Event>>> {
    // Event ids are UUIDv7: ordered by time, so the store pages on them; one row more than
    // the page tells whether another page follows.
    if e.newest {
        let rows = app
            .lake
            .latest_events(e.kind.as_deref(), q.limit(&app)? as i64)
            .await?;
        return Ok(Json(Page {
            items: rows,
            next_token: None,
        }));
    }
    let after = q.after()?;
    let rows = app
        .lake
        .events_after(
            e.kind.as_deref(),
            after.as_deref(),
            q.limit(&app)? as i64 + 1,
        )
        .await?;
    Ok(Json(page(&app, rows, |e| e.id.clone(), &q)?))
}

/// Which tables to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TableQuery {
    /// `domain` or `domain.layer`.
    filter: Option<String>,
    /// Only tables whose name, columns, location or parameters contain this.
    search: Option<String>,
}

/// Catalogued tables, by address.
#[utoipa::path(get, path = "/api/v1/tables", tag = "catalog", params(TableQuery, PageQuery),
    responses((status = 200, body = Page<tarn_lake::TableSummary>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn tables(
    State(app): State<App>,
    Extension(access): Extension<Access>,
    Params(t): Params<TableQuery>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Page<tarn_lake::TableSummary>>> {
    let mut all = app
        .lake
        .tables(t.filter.as_deref(), t.search.as_deref())
        .await?;
    // Only the tables the caller may read.
    all.retain(|s| Resource::of_table(&s.table).is_some_and(|r| access.allows(Action::Read, &r)));
    Ok(Json(page(&app, all, |t| t.table.clone(), &q)?))
}

/// One table: schema, partitions, catalog versions, loads.
#[utoipa::path(get, path = "/api/v1/tables/{table}", tag = "catalog",
    params(("table" = String, Path, description = "domain.layer.table")),
    responses((status = 200, body = tarn_lake::TableDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn table(
    State(app): State<App>,
    PathParams(table): PathParams<String>,
) -> ApiResult<Json<tarn_lake::TableDetail>> {
    Ok(Json(app.lake.table(&table).await?))
}

/// The files behind a table (a Delta table's at its latest version, each with its partition
/// values), for engines that read them directly (Spark running a Glue ETL script).
#[utoipa::path(get, path = "/api/v1/tables/{table}/files", tag = "catalog",
    params(("table" = String, Path, description = "domain.layer.table")),
    responses((status = 200, body = tarn_lake::TableFiles), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn table_files(
    State(app): State<App>,
    PathParams(table): PathParams<String>,
) -> ApiResult<Json<tarn_lake::TableFiles>> {
    Ok(Json(app.lake.table_files(&table).await?))
}

/// The Delta commits of a table, newest first.
#[utoipa::path(get, path = "/api/v1/tables/{table}/history", tag = "catalog",
    params(("table" = String, Path, description = "domain.layer.table"), PageQuery),
    responses((status = 200, body = Page<tarn_lake::HistoryEntry>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn history(
    State(app): State<App>,
    PathParams(table): PathParams<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Page<tarn_lake::HistoryEntry>>> {
    let all = app.lake.history(&table).await?;
    // Newest first: page on the version, zero-padded so text order is number order.
    Ok(Json(page(
        &app,
        all,
        |h| format!("{:020}", i64::MAX - h.version),
        &q,
    )?))
}

/// How to check the lake.
#[derive(Deserialize, ToSchema)]
pub(crate) struct DoctorRequest {
    /// Only report; change nothing.
    #[serde(default)]
    check: bool,
    /// Temporary files untouched, and S3 uploads started, longer ago than this many seconds
    /// belong to writers that are gone (default 3600).
    stale_after: Option<u64>,
}

/// Checks the catalog against the Delta logs and the objects against their events, and repairs
/// what it finds unless `check` (as `tarn doctor` does); needs admin on the whole lake.
#[utoipa::path(post, path = "/api/v1/doctor", tag = "catalog", request_body = DoctorRequest,
    responses((status = 200, body = tarn_lake::DoctorReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn doctor(
    State(app): State<App>,
    JsonBody(req): JsonBody<DoctorRequest>,
) -> ApiResult<Json<tarn_lake::DoctorReport>> {
    let stale = req
        .stale_after
        .map(Duration::from_secs)
        .unwrap_or(tarn_lake::STALE_AFTER);
    Ok(Json(app.lake.doctor(req.check, stale).await?))
}

/// What to crawl.
#[derive(Deserialize, ToSchema)]
pub(crate) struct CrawlRequest {
    /// A domain (`flights`) or a zone (`flights/raw`); every zone when absent.
    scope: Option<String>,
}

/// Crawls now and answers with the report.
#[utoipa::path(post, path = "/api/v1/crawls", tag = "catalog", request_body = CrawlRequest,
    responses((status = 200, body = tarn_lake::CrawlReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn crawl(
    State(app): State<App>,
    Extension(access): Extension<Access>,
    JsonBody(req): JsonBody<CrawlRequest>,
) -> ApiResult<Json<tarn_lake::CrawlReport>> {
    let target = match req.scope.as_deref().filter(|s| !s.is_empty() && *s != "*") {
        None => Resource::Lake,
        Some(s) => match s.split('/').collect::<Vec<_>>()[..] {
            [d, l, ..] => Resource::zone(d, l),
            _ => Resource::Data {
                domain: s.to_string(),
                layer: None,
                table: None,
            },
        },
    };
    access
        .require(&app, Action::Write, target, Method::POST, "/api/v1/crawls")
        .await?;
    Ok(Json(app.lake.crawl(req.scope.as_deref()).await?))
}

/// Past crawls and their reports, newest first.
#[utoipa::path(get, path = "/api/v1/crawls", tag = "catalog", params(PageQuery),
    responses((status = 200, body = Page<tarn_lake::CrawlRecord>), (status = 400, body = ErrorBody)))]
pub(crate) async fn crawls(
    State(app): State<App>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Page<tarn_lake::CrawlRecord>>> {
    let all = app
        .lake
        .catalog()
        .crawls()
        .await
        .map_err(tarn_lake::LakeError::from)?;
    // Ids are UUIDv7, listed newest first: page on the inverted order.
    Ok(Json(page(&app, all, |c| invert(&c.id), &q)?))
}

/// A key that sorts in the opposite order of a hex id (for lists served newest first).
fn invert(id: &str) -> String {
    id.chars()
        .map(|c| match c.to_digit(16) {
            Some(d) => char::from_digit(15 - d, 16).unwrap_or(c),
            None => c,
        })
        .collect()
}

/// A load of an object already in a zone.
#[derive(Deserialize, ToSchema)]
pub(crate) struct LoadRequest {
    /// `domain.layer.table` (a trusted or service table).
    table: String,
    /// An object `DOMAIN/LAYER/KEY` (never a path on the server).
    source: String,
    /// `csv`, `json` or `parquet`; detected when absent.
    format: Option<String>,
    /// `append` (default), `overwrite` or `merge`.
    mode: Option<String>,
    /// Merge key columns (default: the contract's key).
    #[serde(default)]
    key: Vec<String>,
    /// Load a second copy of bytes this table already holds in this mode (without it such a
    /// load answers `already_loaded` and writes nothing).
    #[serde(default)]
    again: bool,
}

fn load_args(
    table: String,
    source: String,
    format: Option<&str>,
    mode: Option<&str>,
    key: Vec<String>,
    again: bool,
) -> ApiResult<LoadArgs> {
    Ok(LoadArgs {
        table,
        source,
        format: format
            .map(str::parse)
            .transpose()
            .map_err(ApiError::bad_request)?,
        mode: mode
            .unwrap_or("append")
            .parse::<LoadMode>()
            .map_err(ApiError::bad_request)?,
        key,
        again,
    })
}

/// Loads an object into a Delta table under its contract, in one commit.
#[utoipa::path(post, path = "/api/v1/loads", tag = "tables", request_body = LoadRequest,
    responses((status = 200, body = tarn_lake::LoadReport), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "the data breaks the contract or cannot be read")))]
pub(crate) async fn load(
    State(app): State<App>,
    Extension(access): Extension<Access>,
    JsonBody(req): JsonBody<LoadRequest>,
) -> ApiResult<Json<tarn_lake::LoadReport>> {
    access
        .require_write(&app, &req.table, "/api/v1/loads")
        .await?;
    let args = load_args(
        req.table,
        req.source,
        req.format.as_deref(),
        req.mode.as_deref(),
        req.key,
        req.again,
    )?;
    Ok(Json(app.lake.load_object(&args).await?))
}

/// A load of the request body.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// `domain.layer.table` (a trusted or service table).
    table: String,
    /// The file's name, which tells its format and names the source in the table's history.
    name: String,
    /// `csv`, `json` or `parquet`; detected from `name` when absent.
    format: Option<String>,
    /// `append` (default), `overwrite` or `merge`.
    mode: Option<String>,
    /// Merge key columns, comma separated.
    key: Option<String>,
    /// Load a second copy of bytes the table already holds in this mode.
    #[serde(default)]
    again: bool,
}

/// Loads the request body (a file the client has) into a Delta table, as `tarn load FILE` does.
#[utoipa::path(post, path = "/api/v1/loads/upload", tag = "tables", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = tarn_lake::LoadReport), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn load_upload(
    State(app): State<App>,
    Extension(access): Extension<Access>,
    Params(q): Params<UploadQuery>,
    body: Body,
) -> ApiResult<Json<tarn_lake::LoadReport>> {
    access
        .require_write(&app, &q.table, "/api/v1/loads/upload")
        .await?;
    let name = std::path::Path::new(&q.name)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != "..")
        .ok_or_else(|| ApiError::bad_request("name must be a file name, e.g. flights.csv"))?
        .to_string();
    let key = q
        .key
        .map(|k| k.split(',').map(str::trim).map(String::from).collect())
        .unwrap_or_default();
    let (_dir, path) = receive(&app, body, &name).await?;
    let args = load_args(
        q.table,
        path.display().to_string(),
        q.format.as_deref(),
        q.mode.as_deref(),
        key,
        q.again,
    )?;
    Ok(Json(app.lake.load_upload(&args, &name).await?))
}

/// A query.
#[derive(Deserialize, ToSchema)]
pub(crate) struct SqlRequest {
    /// One read-only statement over `domain.layer.table` names (`@vN` reads version N).
    query: String,
    /// Most rows to answer (default: the server's row limit).
    limit: Option<usize>,
    /// Stop the query after this long.
    timeout_ms: Option<u64>,
}

/// A column of a SQL answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct SqlColumn {
    name: String,
    /// The Arrow type.
    #[serde(rename = "type")]
    data_type: String,
}

/// A SQL answer as JSON.
#[derive(Serialize, ToSchema)]
pub(crate) struct SqlAnswer {
    columns: Vec<SqlColumn>,
    /// One object per row, by column name.
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
    row_count: usize,
    /// Whether the row limit cut the answer.
    truncated: bool,
}

/// Runs one read-only SQL statement; answers JSON, CSV (`Accept: text/csv`) or an Arrow IPC
/// stream (`Accept: application/vnd.apache.arrow.stream`).
#[utoipa::path(post, path = "/api/v1/sql", tag = "sql", request_body = SqlRequest,
    responses(
        (status = 200, description = "the rows", content(
            (SqlAnswer = "application/json"),
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.apache.arrow.stream"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "the statement writes"),
        (status = 408, body = ErrorBody)))]
pub(crate) async fn sql(
    State(app): State<App>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SqlRequest>,
) -> ApiResult<Response> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or("");
    let (format, content_type) = if accept.contains("text/csv") {
        (OutputFormat::Csv, "text/csv")
    } else if accept.contains("application/vnd.apache.arrow.stream") {
        (OutputFormat::Arrow, "application/vnd.apache.arrow.stream")
    } else {
        (OutputFormat::Json, "application/json")
    };
    let limits = &app.limits;
    let timeout = match req.timeout_ms {
        Some(0) => return Err(ApiError::bad_request("timeout_ms must be at least 1")),
        Some(ms) if Duration::from_millis(ms) > limits.query_timeout => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "query_limit",
                format!(
                    "timeout_ms {ms} is over this server's limit of {} ms (limits.query_timeout in tarn.yml)",
                    limits.query_timeout.as_millis()
                ),
            ))
        }
        Some(ms) => Duration::from_millis(ms),
        None => limits.query_timeout,
    };
    if format == OutputFormat::Json {
        // A JSON answer is built whole: it holds at most `limits.query_rows` rows.
        let row_limit = req.limit.unwrap_or(limits.query_rows);
        if row_limit > limits.query_rows {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "query_limit",
                format!(
                    "limit {row_limit} is over the {} rows a JSON answer may hold (limits.query_rows in tarn.yml); ask for text/csv or an Arrow stream, which stream any number of rows",
                    limits.query_rows
                ),
            ));
        }
        let opts = QueryOptions {
            row_limit: Some(row_limit),
            may_read: Some(access.may_read()),
            timeout: Some(timeout),
        };
        let result = access
            .noted(&app, app.lake.sql(&req.query, &opts).await, "/api/v1/sql")
            .await?;
        let mut buf = Vec::new();
        tarn_lake::write_result(&result, format, &mut buf).map_err(tarn_lake::LakeError::from)?;
        let rows = serde_json::from_slice(&buf).map_err(ApiError::internal)?;
        let columns = result
            .schema
            .fields()
            .iter()
            .map(|f| SqlColumn {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
            })
            .collect();
        return Ok(Json(SqlAnswer {
            columns,
            rows,
            row_count: result.rows(),
            truncated: result.truncated,
        })
        .into_response());
    }
    // CSV and Arrow stream as the query produces batches: nothing holds the whole result.
    let opts = QueryOptions {
        row_limit: req.limit,
        may_read: Some(access.may_read()),
        timeout: Some(timeout),
    };
    let chunks = access
        .noted(
            &app,
            app.lake.sql_bytes(&req.query, &opts, format).await,
            "/api/v1/sql",
        )
        .await?;
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// A query whose result becomes a table.
#[derive(Deserialize, ToSchema)]
pub(crate) struct SqlIntoRequest {
    /// One read-only statement.
    query: String,
    /// `domain.service.table`: the Delta table to (re)write with the result.
    table: String,
}

/// Materialises a query's result as a Delta table in a service zone (`tarn sql --into`).
#[utoipa::path(post, path = "/api/v1/sql/into", tag = "sql", request_body = SqlIntoRequest,
    responses((status = 200, body = tarn_lake::SqlInto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn sql_into(
    State(app): State<App>,
    Extension(access): Extension<Access>,
    JsonBody(req): JsonBody<SqlIntoRequest>,
) -> ApiResult<Json<tarn_lake::SqlInto>> {
    access
        .require_write(&app, &req.table, "/api/v1/sql/into")
        .await?;
    let opts = QueryOptions {
        timeout: Some(app.limits.query_timeout),
        row_limit: None,
        may_read: Some(access.may_read()),
    };
    Ok(Json(
        access
            .noted(
                &app,
                app.lake.sql_into_with(&req.query, &req.table, &opts).await,
                "/api/v1/sql/into",
            )
            .await?,
    ))
}
