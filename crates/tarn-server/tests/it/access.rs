//! Grants on every way in: the Aporia seed's policy, a token limited to one zone, and a
//! matrix that walks every route of the OpenAPI document, MLflow's, the UI's and Glue's with
//! a token granted none of them and expects each refused (and recorded).

use crate::{call, get, json, post, put, AIRLINES};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tarn_lake::{Lake, Selection};
use tarn_server::{App, Limits};

const POLICIES: &str = r#"
policies:
  aporia:
    - allow: read
      on: ["*.*"]
  service-reader:
    - allow: read
      on: [flights.service]
  endpoints-only:
    - allow: read
      on: [endpoints]
"#;

fn bearer(mut req: Request<Body>, token: &str) -> Request<Body> {
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

fn glue(op: &str, body: serde_json::Value) -> Request<Body> {
    Request::post("/")
        .header("x-amz-target", format!("AWSGlue.{op}"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A lake with airlines in flights.raw (crawled), flights.trusted and flights.service (loaded),
/// served under --auth, with a token per policy.
async fn lake() -> (tempfile::TempDir, App, [String; 4]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tarn.yml"),
        format!("lake: api\ndomains: [flights, weather]\n{POLICIES}"),
    )
    .unwrap();
    let lake = Lake::open(dir.path(), &Selection::default()).await.unwrap();
    let open = App::build(lake.clone(), Limits::default());
    let (s, _) = call(
        &open,
        put(
            "/api/v1/zones/flights/raw/objects/airlines/airlines.csv",
            AIRLINES,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        call(&open, post("/api/v1/crawls", serde_json::json!({})))
            .await
            .0,
        StatusCode::OK
    );
    for table in ["flights.trusted.airlines", "flights.service.carriers"] {
        let args = tarn_lake::LoadArgs {
            table: table.into(),
            source: "flights/raw/airlines/airlines.csv".into(),
            format: None,
            mode: tarn_lake::LoadMode::Append,
            key: vec![],
            again: false,
        };
        lake.load_object(&args).await.unwrap();
    }
    let mut tokens = Vec::new();
    for (name, policy) in [
        ("admin", "full"),
        ("aporia", "aporia"),
        ("service", "service-reader"),
        ("nothing", "endpoints-only"),
    ] {
        let (_, t) = lake
            .tokens()
            .create_token_with_policies(name, false, &[policy.to_string()])
            .await
            .unwrap();
        tokens.push(t);
    }
    let app = App::build(lake, Limits::default()).with_auth(true);
    (dir, app, tokens.try_into().unwrap())
}

/// Each request sent with `token`: its path, status and JSON answer.
async fn answers(
    app: &App,
    token: &str,
    requests: impl IntoIterator<Item = Request<Body>>,
) -> Vec<(String, StatusCode, serde_json::Value)> {
    let mut out = Vec::new();
    for req in requests {
        let path = req.uri().path().to_string();
        let (s, b) = call(app, bearer(req, token)).await;
        let body = serde_json::from_slice(&b)
            .unwrap_or_else(|_| String::from_utf8_lossy(&b).into_owned().into());
        out.push((path, s, body));
    }
    out
}

async fn denied_events(app: &App) -> Vec<serde_json::Value> {
    app.lake()
        .latest_events(Some("access.denied"), 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aporia_policy_reads_the_catalog_and_nothing_else() {
    let (_dir, app, [_, aporia, _, _]) = lake().await;
    let (s, b) = call(
        &app,
        bearer(
            glue(
                "GetTables",
                serde_json::json!({"DatabaseName": "flights_trusted"}),
            ),
            &aporia,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json(&b)["TableList"][0]["Name"], "airlines");
    let (s, _) = call(
        &app,
        bearer(
            post(
                "/api/v1/sql",
                serde_json::json!({"query": "SELECT count(*) AS n FROM flights.trusted.airlines"}),
            ),
            &aporia,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Refused: landing, loading, SQL --into, approvals and every Glue write.
    let refused = [
        put("/api/v1/zones/flights/raw/objects/x.csv", AIRLINES),
        post(
            "/api/v1/loads",
            serde_json::json!({"table": "flights.trusted.airlines", "source": "flights/raw/airlines/airlines.csv"}),
        ),
        post(
            "/api/v1/sql/into",
            serde_json::json!({"query": "SELECT 1 AS x", "table": "flights.service.x"}),
        ),
        post(
            "/api/v1/models/m/versions/1/approve",
            serde_json::json!({"reason": "ok"}),
        ),
        post(
            "/api/2.0/mlflow/experiments/create",
            serde_json::json!({"name": "x"}),
        ),
    ];
    for (path, s, b) in answers(&app, &aporia, refused).await {
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {b}");
        assert_eq!(b["error"]["code"], "access_denied", "{path}");
    }
    for (op, body) in [
        (
            "CreateTable",
            serde_json::json!({"DatabaseName": "flights_raw", "TableInput": {"Name": "t", "StorageDescriptor": {"Location": "x"}}}),
        ),
        (
            "UpdateTable",
            serde_json::json!({"DatabaseName": "flights_raw", "TableInput": {"Name": "airlines", "StorageDescriptor": {"Location": "x"}}}),
        ),
        (
            "DeleteTable",
            serde_json::json!({"DatabaseName": "flights_raw", "Name": "airlines"}),
        ),
        (
            "CreatePartition",
            serde_json::json!({"DatabaseName": "flights_raw", "TableName": "airlines", "PartitionInput": {"Values": ["1"]}}),
        ),
        (
            "BatchCreatePartition",
            serde_json::json!({"DatabaseName": "flights_raw", "TableName": "airlines", "PartitionInputList": []}),
        ),
        (
            "DeletePartition",
            serde_json::json!({"DatabaseName": "flights_raw", "TableName": "airlines", "PartitionValues": ["1"]}),
        ),
        (
            "CreateDatabase",
            serde_json::json!({"DatabaseInput": {"Name": "x"}}),
        ),
    ] {
        let (s, b) = call(&app, bearer(glue(op, body), &aporia)).await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{op}: {}",
            String::from_utf8_lossy(&b)
        );
        assert_eq!(json(&b)["__type"], "AccessDeniedException", "{op}");
    }
    // Spark's Glue client, starting, finds `default` and creates it: Glue's answer that it
    // exists already, which the seed's policy (CreateDatabase on default) expects.
    for db in ["default", "global_temp"] {
        let (s, b) = call(
            &app,
            bearer(
                glue("GetDatabase", serde_json::json!({"Name": db})),
                &aporia,
            ),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
        let (s, b) = call(
            &app,
            bearer(
                glue(
                    "CreateDatabase",
                    serde_json::json!({"DatabaseInput": {"Name": db}}),
                ),
                &aporia,
            ),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&b)
        );
        assert_eq!(json(&b)["__type"], "AlreadyExistsException");
    }
    let events = denied_events(&app).await;
    assert!(events.iter().all(|e| e["who"] == "aporia"), "{events:?}");
    assert!(events.len() >= 12, "{}", events.len());
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&aporia), "a token reached the record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_granted_one_zone_sees_only_that_zone() {
    let (_dir, app, [_, _, service, _]) = lake().await;
    let (s, b) = call(
        &app,
        bearer(glue("GetDatabases", serde_json::json!({})), &service),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let answer = json(&b);
    let names: Vec<&str> = answer["DatabaseList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["flights_service"]);
    for (op, body) in [
        (
            "GetTable",
            serde_json::json!({"DatabaseName": "flights_trusted", "Name": "airlines"}),
        ),
        ("GetDatabase", serde_json::json!({"Name": "flights_raw"})),
        (
            "GetPartitions",
            serde_json::json!({"DatabaseName": "flights_trusted", "TableName": "airlines"}),
        ),
    ] {
        let (s, b) = call(&app, bearer(glue(op, body), &service)).await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{op}: {}",
            String::from_utf8_lossy(&b)
        );
        assert_eq!(json(&b)["__type"], "AccessDeniedException", "{op}");
    }
    let (s, b) = call(
        &app,
        bearer(
            glue(
                "GetTable",
                serde_json::json!({"DatabaseName": "flights_service", "Name": "carriers"}),
            ),
            &service,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let (s, b) = call(
        &app,
        bearer(glue("SearchTables", serde_json::json!({})), &service),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let answer = json(&b);
    let found: Vec<&str> = answer["TableList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["Name"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["carriers"]);
    // SQL over another zone is refused naming the table, even inside a join or a subquery.
    for query in [
        "SELECT * FROM flights.trusted.airlines",
        "SELECT c.carrier FROM flights.service.carriers c JOIN flights.trusted.airlines a ON a.carrier = c.carrier",
        "SELECT * FROM flights.service.carriers WHERE carrier IN (SELECT carrier FROM flights.trusted.airlines)",
        "WITH x AS (SELECT * FROM flights.trusted.airlines@v0) SELECT * FROM x",
        // A CSV table is read through a view the engine inlines: still checked.
        "SELECT * FROM flights.raw.airlines",
    ] {
        let (s, b) = call(&app, bearer(post("/api/v1/sql", serde_json::json!({"query": query})), &service)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{query}: {}", String::from_utf8_lossy(&b));
        let message = json(&b)["error"]["message"].as_str().unwrap().to_string();
        let named = if query.contains("raw") {
            "flights.raw.airlines"
        } else {
            "flights.trusted.airlines"
        };
        assert!(message.contains(named), "{message}");
    }
    let (s, b) = call(
        &app,
        bearer(
            post(
                "/api/v1/sql",
                serde_json::json!({"query": "SELECT count(*) AS n FROM flights.service.carriers"}),
            ),
            &service,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json(&b)["rows"][0]["n"], 3);
    let (s, _) = call(
        &app,
        bearer(get("/api/v1/tables/flights.trusted.airlines"), &service),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = call(&app, bearer(get("/api/v1/tables"), &service)).await;
    assert_eq!(s, StatusCode::OK);
    let listed: Vec<String> = json(&b)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ["flights.service.carriers"]);
    let (s, b) = call(&app, bearer(get("/api/v1/zones"), &service)).await;
    assert_eq!(s, StatusCode::OK);
    let zones: Vec<String> = json(&b)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["database"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        zones,
        ["flights_service"],
        "zones listed to a one-zone token"
    );
    let (_, b) = call(&app, bearer(get("/ui/tables"), &service)).await;
    let page = String::from_utf8_lossy(&b);
    assert!(
        page.contains("flights.service.carriers") && !page.contains("flights.trusted.airlines"),
        "{page}"
    );
    // The web UI's SQL page and download check the same grants.
    for (path, body) in [
        ("/ui/sql", "query=SELECT+*+FROM+flights.trusted.airlines"),
        (
            "/ui/sql/download",
            "format=csv&query=SELECT+*+FROM+flights.trusted.airlines",
        ),
    ] {
        let req = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        let (_, b) = call(&app, bearer(req, &service)).await;
        let page = String::from_utf8_lossy(&b);
        assert!(page.contains("may not read"), "{path}: {page}");
        assert!(!page.contains("Endeavor"), "{path}: {page}");
    }
    let events = denied_events(&app).await;
    assert!(
        events
            .iter()
            .any(|e| e["resource"] == "flights.trusted.airlines" && e["who"] == "service"),
        "{events:?}"
    );
}

/// A path of the OpenAPI document with its parameters filled in.
/// A pipeline's step token (`pipeline-step:DOMAIN`, as the engine mints it) writes its own
/// domain and runs, reads the rest, and is refused other domains, executions, approvals and
/// the lake as a whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_token_writes_only_its_pipelines_domain() {
    let (_dir, app, _) = lake().await;
    let (record, step) = app
        .lake()
        .tokens()
        .create_scoped_token(
            "pipeline-p-step",
            false,
            &[tarn_config::step_policy("flights")],
            Some("flights"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(record.policies, ["pipeline-step:flights"]);
    let allowed = [
        put("/api/v1/zones/flights/raw/objects/step/x.csv", AIRLINES),
        post(
            "/api/v1/loads",
            serde_json::json!({"table": "flights.trusted.airlines", "source": "flights/raw/airlines/airlines.csv"}),
        ),
        post(
            "/api/v1/sql/into",
            serde_json::json!({"query": "SELECT count(*) AS n FROM flights.trusted.airlines", "table": "flights.service.counted"}),
        ),
        post(
            "/api/2.0/mlflow/experiments/create",
            serde_json::json!({"name": "from-a-step"}),
        ),
        post(
            "/api/v1/crawls",
            serde_json::json!({"scope": "flights/raw"}),
        ),
    ];
    for (path, s, b) in answers(&app, &step, allowed).await {
        assert!(s.is_success(), "{path}: {s} {b}");
    }
    let refused = [
        put("/api/v1/zones/weather/raw/objects/x.csv", AIRLINES),
        post(
            "/api/v1/sql/into",
            serde_json::json!({"query": "SELECT 1 AS x", "table": "weather.service.x"}),
        ),
        post("/api/v1/crawls", serde_json::json!({})),
        post("/api/v1/crawls", serde_json::json!({"scope": "weather"})),
        post("/api/v1/executions/x/retry", serde_json::json!({})),
        post("/api/v1/executions/x/cancel", serde_json::json!({})),
        post("/api/v1/doctor", serde_json::json!({})),
        post(
            "/api/v1/models/m/versions/1/approve",
            serde_json::json!({"reason": "ok"}),
        ),
    ];
    for (path, s, b) in answers(&app, &step, refused).await {
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains("pipeline-p-step"), "{message}");
    }

    assert!(app.lake().ls("weather/raw").await.unwrap().is_empty());
}

fn filled(path: &str) -> String {
    let mut out = Vec::new();
    for seg in path.split('/') {
        out.push(match seg {
            "{domain}" => "flights",
            "{layer}" => "raw",
            "{table}" => "flights.raw.airlines",
            "{version}" => "1",
            s if s.starts_with('{') => "x",
            s => s,
        });
    }
    out.join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_a_token_without_its_grant() {
    let (_dir, app, [admin, _, _, nothing]) = lake().await;
    let (s, b) = call(&app, bearer(get("/openapi.json"), &admin)).await;
    assert_eq!(s, StatusCode::OK);
    let doc = json(&b);
    let mut walked = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            // Open by design: probes and the document itself.
            if ["/health", "/ready", "/openapi.json"].contains(&path.as_str()) {
                continue;
            }
            walked.push((method.to_uppercase(), filled(path)));
        }
    }
    assert!(walked.len() >= 30, "{}", walked.len());
    for (method, path) in [
        ("GET", "/api/2.0/mlflow/experiments/search?max_results=1"),
        ("POST", "/api/2.0/mlflow/experiments/search"),
        ("POST", "/api/2.0/mlflow/runs/create"),
        ("POST", "/api/2.0/mlflow/registered-models/create"),
        ("GET", "/api/2.0/mlflow/registered-models/search"),
        ("POST", "/api/2.0/mlflow/model-versions/create"),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts"),
        ("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/x/a.txt"),
        ("POST", "/api/3.0/mlflow/traces/search"),
        ("POST", "/endpoints/x/invocations"),
        ("GET", "/ui/"),
        ("GET", "/ui/tables"),
        ("GET", "/ui/tables/flights.raw.airlines"),
        ("GET", "/ui/sql"),
        ("POST", "/ui/sql"),
        ("GET", "/ui/pipelines"),
        ("GET", "/ui/executions"),
        ("POST", "/ui/executions/x/cancel"),
        ("GET", "/ui/experiments"),
        ("GET", "/ui/runs/x"),
        ("GET", "/ui/models"),
        ("POST", "/ui/models/m/aliases"),
        ("GET", "/ui/monitors"),
        ("GET", "/ui/dashboards"),
        ("POST", "/ui/dashboards/tiles"),
        ("GET", "/some/route/nobody/wrote/yet"),
    ] {
        walked.push((method.to_string(), path.to_string()));
    }
    for op in [
        "GetDatabase",
        "GetDatabases",
        "CreateDatabase",
        "GetTable",
        "GetTables",
        "GetTableVersion",
        "GetTableVersions",
        "SearchTables",
        "CreateTable",
        "UpdateTable",
        "DeleteTable",
        "GetPartition",
        "GetPartitions",
        "BatchGetPartition",
        "CreatePartition",
        "BatchCreatePartition",
        "DeletePartition",
        "GetConnections",
        "GetUserDefinedFunctions",
    ] {
        walked.push(("GLUE".into(), op.into()));
    }
    let before = denied_events(&app).await.len();
    let mut refused = 0;
    for (method, path) in &walked {
        let req = if method == "GLUE" {
            glue(
                path,
                serde_json::json!({"DatabaseName": "flights_raw", "Name": "airlines", "TableName": "airlines"}),
            )
        } else {
            Request::builder()
                .method(method.as_str())
                .uri(path)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap()
        };
        let (s, b) = call(&app, bearer(req, &nothing)).await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{method} {path} answered {s} to a token granted none of it: {}",
            String::from_utf8_lossy(&b)
        );
        refused += 1;
    }
    let after = denied_events(&app).await.len();
    assert_eq!(after - before, refused, "each refusal is recorded once");
    // What the token is granted still works.
    let (s, _) = call(&app, bearer(get("/api/v1/endpoints"), &nothing)).await;
    assert_eq!(s, StatusCode::OK);
}
