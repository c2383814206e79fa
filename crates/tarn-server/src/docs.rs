//! The API's description: the OpenAPI document (utoipa, from the handlers' annotations) at
//! `/openapi.json` (its paths from the routes `routes::documented` registers), and a browsable page at `/docs` (Swagger UI, vendored from the npm package
//! `swagger-ui-dist` and embedded in the binary, so it works with no internet).

use crate::routes;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tarn",
        description = "A data lake and its ML operations in one program: zones and objects, the catalog, crawls, Delta loads, SQL, events and pipeline executions, model approvals.\n\nErrors always answer `{\"error\": {\"code\", \"message\", \"status\"}}`. Lists page with `limit` and `next_token`. When the server runs with `--auth`, every call but /health and /ready needs `Authorization: Bearer TOKEN` (`tarn token create`)."
    ),
    components(schemas(crate::error::ErrorBody)),
    tags(
        (name = "probes", description = "Liveness and readiness"),
        (name = "zones", description = "Zones (domain x layer) and the objects landed in them"),
        (name = "events", description = "What happened in the lake; custom events for pipelines"),
        (name = "executions", description = "Pipeline executions and their step attempts"),
        (name = "catalog", description = "Databases, tables, schemas, partitions, versions; crawls"),
        (name = "tables", description = "Loads into Delta tables under data contracts"),
        (name = "sql", description = "SQL over every catalogued table"),
        (name = "models", description = "The model registry's approvals (MLflow's own API is at /api/2.0/mlflow)"),
        (name = "monitors", description = "Model monitors: drift, data quality, performance; runs and their figures"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `tarn token create` (when the server runs with --auth)",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "token",
            Vec::<String>::new(),
        )]);
        // Under --auth any call but the probes may answer 401, and a write 403 (read-only
        // token): declared once here rather than on every handler.
        let error = |what: &str| {
            utoipa::openapi::ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if matches!(path.as_str(), "/health" | "/ready") {
                continue;
            }
            let ops = [
                (false, &mut item.get),
                (true, &mut item.put),
                (true, &mut item.post),
            ];
            for (writes, op) in ops {
                let Some(op) = op.as_mut() else { continue };
                let responses = &mut op.responses.responses;
                responses
                    .entry("401".into())
                    .or_insert_with(|| error("no token, or an unknown or revoked one").into());
                if writes && path != "/api/v1/sql" {
                    responses.entry("403".into()).or_insert_with(|| {
                        error("the token is read-only, or may write only another domain").into()
                    });
                }
            }
        }
    }
}

/// The OpenAPI document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = crate::routes::documented().split_for_parts();
    // axum's catch-all `{*key}` is OpenAPI's `{key}`.
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    BearerAuth.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "probes",
    responses((status = 200, description = "the OpenAPI document", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi_json(
    axum::extract::State(app): axum::extract::State<crate::App>,
) -> Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| openapi().to_pretty_json().unwrap_or_default());
    let Some(endpoints) = &app.endpoints else {
        return ([(header::CONTENT_TYPE, "application/json")], doc.clone()).into_response();
    };
    // Each model endpoint with the input schema of the version it serves now.
    let mut value: serde_json::Value = serde_json::from_str(doc).unwrap_or_default();
    if let Some(paths) = value.get_mut("paths").and_then(|p| p.as_object_mut()) {
        paths.extend(endpoints.openapi_paths());
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(&value).unwrap_or_default(),
    )
        .into_response()
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>tarn API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui", deepLinking: true });
  </script>
</body>
</html>
"##;

pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "swagger-ui-bundle.js" => (
            include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
            "text/javascript",
        ),
        "swagger-ui.css" => (
            include_bytes!("../assets/swagger-ui/swagger-ui.css"),
            "text/css",
        ),
        _ => return routes::not_found().await.into_response(),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
