//! The API: router tests without a socket, and one over real loopback HTTP.

#[macro_use]
mod hostile;
mod access;
mod mlflow;
mod ui;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tarn_lake::{Lake, Selection};
use tarn_server::{App, Limits};
use tower::ServiceExt;

async fn app(limits: Limits) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tarn.yml"),
        "lake: api\ndomains: [flights]\n",
    )
    .unwrap();
    let lake = Lake::open(dir.path(), &Selection::default()).await.unwrap();
    (dir, App::build(lake, limits))
}

async fn call(app: &App, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let res = app.router().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, body)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn put(uri: &str, body: &'static [u8]) -> Request<Body> {
    Request::put(uri).body(Body::from(body)).unwrap()
}

fn post(uri: &str, body: serde_json::Value) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

const AIRLINES: &[u8] =
    b"carrier,name\n9E,Endeavor Air Inc.\nAA,American Airlines Inc.\nUA,United Air Lines Inc.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn land_crawl_load_and_query_over_the_api() {
    let (_dir, app) = app(Limits::default()).await;
    let (s, b) = call(&app, get("/health")).await;
    assert_eq!(
        (s, json(&b)["status"].clone()),
        (StatusCode::OK, "ok".into())
    );
    let (s, b) = call(&app, get("/ready")).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));

    // Land, twice: one object, one event.
    let uri = "/api/v1/zones/flights/raw/objects/airlines/airlines.csv";
    let (s, b) = call(&app, put(uri, AIRLINES)).await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json(&b)["event_recorded"], true);
    let (s, b) = call(&app, put(uri, AIRLINES)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&b)["outcome"], "unchanged");
    let (s, b) = call(&app, get(uri)).await;
    assert_eq!((s, b.as_slice()), (StatusCode::OK, AIRLINES));
    // Other bytes on a raw key: refused, the original kept.
    let (s, b) = call(&app, put(uri, b"carrier,name\nZZ,Z\n")).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(json(&b)["error"]["code"], "raw_object_exists");
    let (_, b) = call(&app, get(uri)).await;
    assert_eq!(b.as_slice(), AIRLINES);

    // Crawl, list with pagination, show.
    let (s, b) = call(
        &app,
        post(
            "/api/v1/crawls",
            serde_json::json!({"scope": "flights/raw"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json(&b)["tables"][0]["change"], "created");
    let (s, b) = call(
        &app,
        post("/api/v1/loads", serde_json::json!({"table": "flights.trusted.airlines", "source": "flights/raw/airlines/airlines.csv"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json(&b)["rows_written"], 3);
    let (_, b) = call(&app, get("/api/v1/tables?limit=1")).await;
    let first = json(&b);
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let token = first["next_token"].as_str().unwrap().to_string();
    let (_, b) = call(
        &app,
        get(&format!("/api/v1/tables?limit=1&next_token={token}")),
    )
    .await;
    let second = json(&b);
    assert_eq!(second["items"][0]["table"], "flights.trusted.airlines");
    assert!(second["next_token"].is_null());
    let (s, b) = call(&app, get("/api/v1/tables/flights.trusted.airlines")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&b)["row_count"], 3);

    // SQL as JSON, CSV and Arrow.
    let q = serde_json::json!({"query": "SELECT carrier FROM flights.trusted.airlines ORDER BY carrier", "limit": 2});
    let (s, b) = call(&app, post("/api/v1/sql", q.clone())).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let r = json(&b);
    assert_eq!(
        r["rows"],
        serde_json::json!([{"carrier": "9E"}, {"carrier": "AA"}])
    );
    assert_eq!(r["truncated"], true);
    let mut req = post("/api/v1/sql", q.clone());
    req.headers_mut()
        .insert("accept", "text/csv".parse().unwrap());
    let (_, b) = call(&app, req).await;
    assert_eq!(String::from_utf8(b).unwrap(), "carrier\n9E\nAA\n");
    let mut req = post("/api/v1/sql", q);
    req.headers_mut().insert(
        "accept",
        "application/vnd.apache.arrow.stream".parse().unwrap(),
    );
    let (_, b) = call(&app, req).await;
    let reader = arrow_ipc_rows(&b);
    assert_eq!(reader, 2);
}

fn arrow_ipc_rows(bytes: &[u8]) -> usize {
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    assert_eq!(reader.schema().field(0).name(), "carrier");
    reader.map(|b| b.unwrap().num_rows()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_one_shape_and_no_internals() {
    let (_dir, app) = app(Limits {
        object_size: 10,
        ..Limits::default()
    })
    .await;
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            put("/api/v1/zones/flights/raw/objects/a/..%2F..%2Fx", b"x"),
            StatusCode::BAD_REQUEST,
            "bad_key",
        ),
        (
            put("/api/v1/zones/flihgts/raw/objects/a.csv", b"x"),
            StatusCode::NOT_FOUND,
            "zone_not_found",
        ),
        (
            put(
                "/api/v1/zones/flights/raw/objects/big.csv",
                b"0123456789ABCDEF",
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "object_too_large",
        ),
        (
            get("/api/v1/zones/flights/raw/objects/missing.csv"),
            StatusCode::NOT_FOUND,
            "object_not_found",
        ),
        (
            get("/api/v1/tables/flights.trusted.none"),
            StatusCode::NOT_FOUND,
            "table_not_found",
        ),
        (
            post("/api/v1/sql", serde_json::json!({"query": "SELEC 1"})),
            StatusCode::BAD_REQUEST,
            "sql",
        ),
        (
            post(
                "/api/v1/sql",
                serde_json::json!({"query": "DROP TABLE flights.trusted.x"}),
            ),
            StatusCode::FORBIDDEN,
            "read_only",
        ),
        (
            post(
                "/api/v1/loads",
                serde_json::json!({"table": "flights.trusted.t", "source": "/etc/passwd"}),
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (get("/nope"), StatusCode::NOT_FOUND, "route_not_found"),
    ];
    for (req, status, code) in cases {
        let uri = req.uri().to_string();
        let (s, b) = call(&app, req).await;
        let body = json(&b);
        assert_eq!(
            (s, body["error"]["code"].as_str().unwrap()),
            (status, code),
            "{uri}: {body}"
        );
        assert_eq!(body["error"]["status"], status.as_u16());
        let text = body.to_string();
        assert!(
            !text.contains("panicked") && !text.contains("src/"),
            "{uri}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_loopback_and_refuses_other_addresses() {
    let (_dir, app) = app(Limits::default()).await;
    let err = app
        .clone()
        .serve("0.0.0.0:0".parse().unwrap(), async {}, |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--auth"), "{err}");
    // Auth with no token at all could never answer a call: refused too.
    let err = app
        .clone()
        .with_auth(true)
        .serve("0.0.0.0:0".parse().unwrap(), async {}, |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("tarn token create"), "{err}");

    let (tx, rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(
        "127.0.0.1:0".parse().unwrap(),
        async {
            stop_rx.await.ok();
        },
        move |addr| {
            tx.send(addr).unwrap();
        },
    ));
    let addr = rx.await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"ok\""), "{out}");
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

fn with_token(mut req: Request<Body>, token: &str) -> Request<Body> {
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_every_call_needs_a_live_token_and_read_only_cannot_write() {
    let (_dir, app) = app(Limits::default()).await;
    let (_, writer) = app
        .lake()
        .tokens()
        .create_token("etl", false)
        .await
        .unwrap();
    let (_, reader) = app.lake().tokens().create_token("bi", true).await.unwrap();
    let app = app.with_auth(true);

    // Probes stay open; everything else needs a token.
    assert_eq!(call(&app, get("/health")).await.0, StatusCode::OK);
    let res = app.router().oneshot(get("/api/v1/zones")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    for bad in ["tarn_nope", "Basic x", ""] {
        let (s, b) = call(&app, with_token(get("/api/v1/tables"), bad)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(json(&b)["error"]["code"], "unauthorized");
    }

    // The writer lands; the reader reads and queries but cannot land, crawl or load.
    let (s, _) = call(
        &app,
        with_token(
            put("/api/v1/zones/flights/raw/objects/airlines.csv", AIRLINES),
            &writer,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = call(
        &app,
        with_token(
            put("/api/v1/zones/flights/raw/objects/other.csv", AIRLINES),
            &reader,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(json(&b)["error"]["code"], "token_read_only");
    for req in [
        post("/api/v1/crawls", serde_json::json!({})),
        post(
            "/api/v1/loads",
            serde_json::json!({"table": "flights.trusted.airlines", "source": "flights/raw/airlines.csv"}),
        ),
    ] {
        let (s, _) = call(&app, with_token(req, &reader)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (s, b) = call(
        &app,
        with_token(
            get("/api/v1/zones/flights/raw/objects/airlines.csv"),
            &reader,
        ),
    )
    .await;
    assert_eq!((s, b.as_slice()), (StatusCode::OK, AIRLINES));
    let (s, b) = call(
        &app,
        with_token(
            post(
                "/api/v1/sql",
                serde_json::json!({"query": "SELECT 1 AS one"}),
            ),
            &reader,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json(&b)["rows"][0]["one"], 1);

    // Nothing the reader tried landed; a revoked token stops working at once.
    let objects = app.lake().ls("flights/raw").await.unwrap();
    assert_eq!(objects.len(), 1);
    assert!(app.lake().tokens().revoke_token("etl").await.unwrap());
    let (s, _) = call(&app, with_token(get("/api/v1/zones"), &writer)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// Every route the router serves, as the spec must name it.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/openapi.json"),
    ("get", "/api/v1/zones"),
    ("get", "/api/v1/zones/{domain}/{layer}/objects"),
    ("get", "/api/v1/zones/{domain}/{layer}/objects/{key}"),
    ("put", "/api/v1/zones/{domain}/{layer}/objects/{key}"),
    ("get", "/api/v1/events"),
    ("post", "/api/v1/events"),
    ("get", "/api/v1/executions"),
    ("get", "/api/v1/executions/{id}"),
    ("get", "/api/v1/executions/{id}/logs"),
    ("post", "/api/v1/executions/{id}/retry"),
    ("post", "/api/v1/executions/{id}/cancel"),
    ("get", "/api/v1/models"),
    ("get", "/api/v1/models/{name}"),
    ("post", "/api/v1/models/{name}/versions/{version}/approve"),
    ("post", "/api/v1/models/{name}/versions/{version}/reject"),
    ("get", "/api/v1/monitors"),
    ("get", "/api/v1/monitors/{name}"),
    ("post", "/api/v1/monitors/{name}/runs"),
    ("get", "/api/v1/monitors/{name}/runs"),
    ("get", "/api/v1/monitors/{name}/report"),
    ("get", "/api/v1/tables"),
    ("get", "/api/v1/tables/{table}"),
    ("get", "/api/v1/tables/{table}/history"),
    ("get", "/api/v1/tables/{table}/files"),
    ("get", "/api/v1/crawls"),
    ("post", "/api/v1/crawls"),
    ("post", "/api/v1/doctor"),
    ("post", "/api/v1/loads"),
    ("post", "/api/v1/loads/upload"),
    ("post", "/api/v1/sql"),
    ("post", "/api/v1/sql/into"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_names_every_route_and_every_documented_route_answers() {
    let (_dir, app) = app(Limits::default()).await;
    let (s, b) = call(&app, get("/openapi.json")).await;
    assert_eq!(s, StatusCode::OK);
    let spec = json(&b);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    assert_eq!(documented, served);

    // Each documented operation reaches a handler (no fallback, no 405), with placeholder values.
    for (method, path) in &documented {
        let uri = path
            .replace("{domain}", "flights")
            .replace("{layer}", "raw")
            .replace("{key}", "a.csv")
            .replace("{table}", "flights.trusted.none")
            .replace("{id}", "0123456789ab");
        let uri = if uri.ends_with("/upload") {
            format!("{uri}?table=flights.trusted.t&name=a.csv")
        } else {
            uri
        };
        let req = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Body::from(if method == "post" { "{}" } else { "" }))
            .unwrap();
        let (s, b) = call(&app, req).await;
        assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        let text = String::from_utf8_lossy(&b);
        assert!(!text.contains("route_not_found"), "{method} {uri}: {text}");
        // Every answer is one the document declares for the operation.
        let declared = &spec["paths"][path][method]["responses"];
        assert!(
            declared.get(s.as_u16().to_string()).is_some(),
            "{method} {uri} answered {s}, which the document does not declare: {text}"
        );
    }

    // The docs page and its assets come from the binary, not from the internet.
    let (s, b) = call(&app, get("/docs")).await;
    assert_eq!(s, StatusCode::OK);
    let page = String::from_utf8_lossy(&b).to_string();
    assert!(
        page.contains("/openapi.json") && !page.contains("https://"),
        "{page}"
    );
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
        let (s, b) = call(&app, get(asset)).await;
        assert_eq!(s, StatusCode::OK, "{asset}");
        assert!(b.len() > 10_000, "{asset}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_page_in_order_with_next_token() {
    let (_dir, app) = app(Limits::default()).await;
    for key in ["a.csv", "b.csv", "c.csv"] {
        let body: &'static [u8] = match key {
            "a.csv" => b"x\n1\n",
            "b.csv" => b"x\n2\n",
            _ => b"x\n3\n",
        };
        let (s, _) = call(
            &app,
            put(&format!("/api/v1/zones/flights/raw/objects/{key}"), body),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, b) = call(&app, get("/api/v1/events?limit=2")).await;
    assert_eq!(s, StatusCode::OK);
    let first = json(&b);
    let keys: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a.csv", "b.csv"]);
    let token = first["next_token"].as_str().unwrap();
    let (_, b) = call(
        &app,
        get(&format!("/api/v1/events?limit=2&next_token={token}")),
    )
    .await;
    let second = json(&b);
    assert_eq!(second["items"][0]["key"], "c.csv");
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["next_token"].is_null());
    let (s, _) = call(&app, get("/api/v1/events?limit=0")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
