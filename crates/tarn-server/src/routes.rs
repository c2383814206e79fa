//! The routes of the API and their handlers: thin translations to `tarn-lake` calls.

use crate::{ApiError, App};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tarn_lake::{LandOptions, LoadArgs, LoadMode, OutputFormat, QueryOptions};
use tokio::io::AsyncWriteExt;

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn router(app: App) -> Router {
    let api = Router::new()
        .route("/zones", get(zones))
        .route("/zones/{domain}/{layer}/objects", get(list_objects))
        .route(
            "/zones/{domain}/{layer}/objects/{*key}",
            get(read_object).put(land_object),
        )
        .route("/tables", get(tables))
        .route("/tables/{table}", get(table))
        .route("/tables/{table}/history", get(history))
        .route("/crawls", post(crawl))
        .route("/loads", post(load))
        .route("/sql", post(sql));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .nest("/api/v1", api)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::auth::require_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
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
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "no such route; the API lives under /api/v1 (see the crate docs for the list)",
    )
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn ready(State(app): State<App>) -> Response {
    let meta = app.lake.meta.ping().await.is_ok();
    let storage = app
        .lake
        .zones
        .store()
        .list_with_delimiter(None)
        .await
        .is_ok();
    let status = if meta && storage {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({
            "status": if status == StatusCode::OK { "ready" } else { "not ready" },
            "metadata": meta,
            "storage": storage,
        })),
    )
        .into_response()
}

/// A page of a list, with the token that asks for the next one.
#[derive(Serialize)]
struct Page<T> {
    items: Vec<T>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<usize>,
    next_token: Option<String>,
    prefix: Option<String>,
    filter: Option<String>,
    search: Option<String>,
}

/// Items after `token` (by `key`, ascending), at most `limit` (default 1000).
fn page<T>(items: Vec<T>, key: impl Fn(&T) -> String, q: &PageQuery) -> ApiResult<Page<T>> {
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let mut rest: Vec<T> = match &q.next_token {
        Some(t) => items.into_iter().filter(|i| key(i) > *t).collect(),
        None => items,
    };
    let next_token = if rest.len() > limit {
        rest.truncate(limit);
        rest.last().map(&key)
    } else {
        None
    };
    Ok(Page {
        items: rest,
        next_token,
    })
}

#[derive(Serialize)]
struct ZoneInfo {
    domain: String,
    layer: String,
    database: String,
    location: String,
}

async fn zones(State(app): State<App>) -> Json<Vec<ZoneInfo>> {
    Json(
        app.lake
            .zones
            .all()
            .into_iter()
            .map(|z| ZoneInfo {
                location: app.lake.zones.url_of(&z.root()),
                database: z.database(),
                domain: z.domain,
                layer: z.layer,
            })
            .collect(),
    )
}

async fn list_objects(
    State(app): State<App>,
    Path((domain, layer)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<tarn_lake::ObjectInfo>>> {
    let target = format!("{domain}/{layer}/{}", q.prefix.clone().unwrap_or_default());
    let objects = app.lake.ls(&target).await?;
    Ok(Json(page(objects, |o| o.key.clone(), &q)?))
}

async fn read_object(
    State(app): State<App>,
    Path((domain, layer, key)): Path<(String, String, String)>,
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

#[derive(Deserialize)]
struct LandQuery {
    #[serde(default)]
    force: bool,
}

async fn land_object(
    State(app): State<App>,
    Path((domain, layer, key)): Path<(String, String, String)>,
    Query(q): Query<LandQuery>,
    body: Body,
) -> ApiResult<Response> {
    // Check the place before reading a byte of the body.
    app.lake
        .zones
        .zone(&domain, &layer)
        .map_err(tarn_lake::LakeError::from)?;
    tarn_lake::validate_key(&key).map_err(tarn_lake::LakeError::from)?;
    let dir = tempfile::tempdir()
        .map_err(|e| ApiError::bad_request(format!("no room to receive the object: {e}")))?;
    let path = dir.path().join("object");
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| ApiError::bad_request(format!("no room to receive the object: {e}")))?;
    let mut stream = body.into_data_stream();
    let mut size: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > app.limits.max_object_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "object_too_large",
                format!(
                    "objects are limited to {} bytes on this server",
                    app.limits.max_object_bytes
                ),
            ));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::bad_request(format!("no room to receive the object: {e}")))?;
    }
    file.flush().await.ok();
    drop(file);
    let landed = app
        .lake
        .land(
            &path,
            &format!("{domain}/{layer}/{key}"),
            &LandOptions { force: q.force },
            &|_| {},
        )
        .await?;
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

async fn tables(
    State(app): State<App>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<tarn_lake::TableSummary>>> {
    let all = app
        .lake
        .tables(q.filter.as_deref(), q.search.as_deref())
        .await?;
    Ok(Json(page(all, |t| t.table.clone(), &q)?))
}

async fn table(
    State(app): State<App>,
    Path(table): Path<String>,
) -> ApiResult<Json<tarn_lake::TableDetail>> {
    Ok(Json(app.lake.table(&table).await?))
}

async fn history(
    State(app): State<App>,
    Path(table): Path<String>,
) -> ApiResult<Json<Vec<tarn_lake::HistoryEntry>>> {
    Ok(Json(app.lake.history(&table).await?))
}

#[derive(Deserialize)]
struct CrawlRequest {
    scope: Option<String>,
}

async fn crawl(
    State(app): State<App>,
    Json(req): Json<CrawlRequest>,
) -> ApiResult<Json<tarn_lake::CrawlReport>> {
    Ok(Json(app.lake.crawl(req.scope.as_deref()).await?))
}

#[derive(Deserialize)]
struct LoadRequest {
    table: String,
    /// An object `DOMAIN/LAYER/KEY` (never a path on the server).
    source: String,
    format: Option<String>,
    mode: Option<String>,
    #[serde(default)]
    key: Vec<String>,
}

async fn load(
    State(app): State<App>,
    Json(req): Json<LoadRequest>,
) -> ApiResult<Json<tarn_lake::LoadReport>> {
    let args = LoadArgs {
        table: req.table,
        source: req.source,
        format: req
            .format
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(ApiError::bad_request)?,
        mode: req
            .mode
            .as_deref()
            .unwrap_or("append")
            .parse::<LoadMode>()
            .map_err(ApiError::bad_request)?,
        key: req.key,
    };
    Ok(Json(app.lake.load_object(&args).await?))
}

#[derive(Deserialize)]
struct SqlRequest {
    query: String,
    limit: Option<usize>,
    timeout_ms: Option<u64>,
}

async fn sql(
    State(app): State<App>,
    headers: HeaderMap,
    Json(req): Json<SqlRequest>,
) -> ApiResult<Response> {
    let opts = QueryOptions {
        row_limit: Some(req.limit.unwrap_or(app.limits.default_row_limit)),
        timeout: Some(
            req.timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(app.limits.default_timeout),
        ),
    };
    let result = app.lake.sql(&req.query, &opts).await?;
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
    let mut buf = Vec::new();
    tarn_lake::write_result(&result, format, &mut buf).map_err(tarn_lake::LakeError::from)?;
    if format != OutputFormat::Json {
        let mut res = ([(header::CONTENT_TYPE, content_type)], buf).into_response();
        if result.truncated {
            res.headers_mut()
                .insert("x-tarn-truncated", header::HeaderValue::from_static("true"));
        }
        return Ok(res);
    }
    let rows: serde_json::Value = serde_json::from_slice(&buf).unwrap_or(serde_json::Value::Null);
    let columns: Vec<serde_json::Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    Ok(Json(serde_json::json!({
        "columns": columns,
        "rows": rows,
        "row_count": result.rows(),
        "truncated": result.truncated,
    }))
    .into_response())
}
