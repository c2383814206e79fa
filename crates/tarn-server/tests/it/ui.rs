//! The web UI under `/ui`, over the router: every page answers with the security headers,
//! values a user or a file put there show as text, queries run and download, and under auth
//! a browser without a token is told why it cannot come in.

use super::{app, call, get, json, put};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tarn_server::{App, Limits};
use tower::ServiceExt;

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

fn form(uri: &str, fields: &[(&str, &str)]) -> Request<Body> {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", tarn_ui::catalog::percent(v)))
        .collect();
    Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.join("&")))
        .unwrap()
}

async fn page(app: &App, req: Request<Body>) -> (StatusCode, String) {
    let res = app.router().oneshot(req).await.unwrap();
    let status = res.status();
    let csp = res
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(csp.as_deref(), Some(tarn_ui::layout::CSP), "{status}");
    assert!(!tarn_ui::layout::CSP.contains("unsafe-inline"));
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let html = String::from_utf8(body.to_vec()).unwrap();
    // No script in the page but the files: the only inline script element is the chart's
    // data, which is not run.
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..html[i..].find('>').map_or(html.len(), |e| i + e)];
        assert!(
            tag.contains(" src=\"/ui/assets/") || tag.contains("type=\"application/json\""),
            "inline script: {tag}"
        );
    }
    (status, html)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_the_lake_runs_queries_and_shows_hostile_values_as_text() {
    let (_dir, app) = app(Limits::default()).await;
    let csv = "carrier,name\n9E,<script>alert(1)</script>\nAA,American Airlines Inc.\nUA,United Air Lines Inc.\n";
    let (s, _) = call(
        &app,
        put(
            "/api/v1/zones/flights/raw/objects/airlines/airlines.csv",
            csv.as_bytes().to_vec().leak(),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    call(
        &app,
        super::post(
            "/api/v1/crawls",
            serde_json::json!({"scope": "flights/raw"}),
        ),
    )
    .await;
    let (s, b) = call(
        &app,
        super::post("/api/v1/loads", serde_json::json!({"table": "flights.trusted.airlines", "source": "flights/raw/airlines/airlines.csv"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));

    // `/` leads to the UI.
    let res = app.router().oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/ui/");

    // The overview: the zones with their objects and tables, the newest events.
    let (s, html) = page(&app, get("/ui/")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("<td>flights</td><td>raw</td><td class=\"num\">1</td>"),
        "{html}"
    );
    assert!(html.contains("object.created"), "{html}");

    // The catalog finds the table; its page has the columns, the sample rows (a cell holding
    // a script shows as text), the catalog version and the load.
    let (s, html) = page(&app, get("/ui/tables?search=airl")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("href=\"/ui/tables/flights.trusted.airlines\""),
        "{html}"
    );
    let (s, html) = page(&app, get("/ui/tables?search=nothing-like-it")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("0 tables"), "{html}");
    let (s, html) = page(&app, get("/ui/tables/flights.trusted.airlines")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    for want in [
        "<td>carrier</td>",
        "American Airlines Inc.",
        "first version",
        "flights/raw/airlines/airlines.csv",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert(1)"), "{html}");
    let (s, html) = page(&app, get("/ui/tables/flights.trusted.nope")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{html}");

    // SQL: the rows, a column named like markup shown as text, the chart's data kept inside
    // its element.
    let query = format!(
        "SELECT carrier, name, length(name) AS \"{HOSTILE}\" FROM flights.trusted.airlines ORDER BY carrier"
    );
    let (s, html) = page(&app, form("/ui/sql", &[("query", &query)])).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("3 rows"), "{html}");
    assert!(html.contains("<td>United Air Lines Inc.</td>"), "{html}");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(!html.contains("<img"), "{html}");
    let data = html
        .split("id=\"chart-data\" type=\"application/json\">")
        .nth(1)
        .and_then(|r| r.split("</script>").next())
        .expect("the chart's data");
    let data: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["names"][2], HOSTILE);
    assert_eq!(data["columns"][2], serde_json::json!([25.0, 22.0, 21.0]));
    assert_eq!(data["labels"][1][0], "<script>alert(1)</script>");

    // An error marks its place in the query.
    let (s, html) = page(
        &app,
        form(
            "/ui/sql",
            &[(
                "query",
                "SELECT carrier\nFROM flights.trusted.airlines WHER carrier = 1",
            )],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("class=\"error\""), "{html}");
    assert!(html.contains("(line 2, column 36)"), "{html}");
    assert!(html.contains("WHER <mark>c</mark>arrier = 1"), "{html}");

    // Downloads: the same CSV the API answers.
    let q = "SELECT carrier FROM flights.trusted.airlines ORDER BY carrier";
    let res = app
        .router()
        .oneshot(form("/ui/sql/download", &[("query", q), ("format", "csv")]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("result.csv"));
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), "carrier\n9E\nAA\nUA\n");
    let (s, html) = page(
        &app,
        form("/ui/sql/download", &[("query", q), ("format", "xlsx")]),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(html.contains("choose csv or parquet"), "{html}");

    // The assets are embedded, and light.
    for (file, kind) in [
        ("tarn.js", "text/javascript"),
        ("uPlot.iife.min.js", "text/javascript"),
        ("tarn.css", "text/css"),
    ] {
        let res = app
            .router()
            .oneshot(get(&format!("/ui/assets/{file}")))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{file}");
        assert_eq!(res.headers()["content-type"], kind);
    }
    assert!(tarn_ui::assets::javascript_bytes() < 100_000);
}

/// The session cookie a sign-in answer sets, checked for its attributes.
fn session_cookie(res: &axum::response::Response) -> String {
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

fn with_cookie(mut req: Request<Body>, cookie: &str) -> Request<Body> {
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_auth_a_browser_signs_in_with_a_token_and_a_read_only_one_cannot_write() {
    let (_dir, app) = app(Limits::default()).await;
    let app = app.with_auth(true);
    let (_, writer) = app
        .lake()
        .tokens()
        .create_token("ops", false)
        .await
        .unwrap();
    let (_, reader) = app.lake().tokens().create_token("bi", true).await.unwrap();

    // Without a session every page leads to the sign-in page, which needs no token.
    let res = app.router().oneshot(get("/ui/tables")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/ui/sign-in");
    let (s, html) = page(&app, get("/ui/sign-in")).await;
    assert_eq!(s, StatusCode::OK);
    let token = csrf_of(&html);
    // The API still wants a bearer token: no cookie opens it.
    let (s, _) = call(&app, get("/api/v1/tables")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // A wrong token, or a sign-in form without the page's CSRF token: refused.
    let (s, html) = page(
        &app,
        form("/ui/sign-in", &[("token", "tarn_nope"), ("csrf", &token)]),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(html.contains("unknown, revoked or expired"), "{html}");
    let (s, _) = page(
        &app,
        form("/ui/sign-in", &[("token", &writer), ("csrf", "x")]),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The writer signs in: pages open with the cookie, name the token, and offer sign-out.
    let res = app
        .router()
        .oneshot(form("/ui/sign-in", &[("token", &writer), ("csrf", &token)]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&res);
    assert!(
        !cookie.contains(&writer),
        "the cookie holds a session id, not the token"
    );
    let (s, html) = page(&app, with_cookie(get("/ui/"), &cookie)).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("ops") && html.contains("action=\"/ui/sign-out\""),
        "{html}"
    );

    // A read-only token: its execution page has no Cancel, and a forged cancel is refused.
    let (_, b) = call(
        &app,
        super::with_token(
            super::post(
                "/api/v1/events",
                serde_json::json!({"source": "t", "detail_type": "go", "detail": {}}),
            ),
            &writer,
        ),
    )
    .await;
    let event = json(&b)["event_id"].as_str().unwrap().to_string();
    let id = app
        .lake()
        .executions()
        .dispatch(
            &event,
            &[tarn_lake::NewExecution {
                pipeline: "daily".into(),
                input: serde_json::json!({}),
                first_step: "Check".into(),
            }],
        )
        .await
        .unwrap()[0]
        .clone();
    let res = app
        .router()
        .oneshot(form("/ui/sign-in", &[("token", &reader), ("csrf", &token)]))
        .await
        .unwrap();
    let read_only = session_cookie(&res);
    let (s, html) = page(
        &app,
        with_cookie(get(&format!("/ui/executions/{id}")), &read_only),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("bi (read-only)"), "{html}");
    assert!(!html.contains("/cancel\""), "{html}");
    let (s, _) = call(
        &app,
        with_cookie(
            form(&format!("/ui/executions/{id}/cancel"), &[("csrf", &token)]),
            &read_only,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        app.lake()
            .executions()
            .execution(&id)
            .await
            .unwrap()
            .unwrap()
            .status,
        "pending"
    );
    // The read-only token may still query.
    let (s, html) = page(
        &app,
        with_cookie(form("/ui/sql", &[("query", "SELECT 1 AS one")]), &read_only),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("1 rows"), "{html}");

    // Signing out ends the session: the same cookie leads to the sign-in page again.
    let res = app
        .router()
        .oneshot(with_cookie(
            form("/ui/sign-out", &[("csrf", &token)]),
            &cookie,
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let res = app
        .router()
        .oneshot(with_cookie(get("/ui/"), &cookie))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/ui/sign-in");
}

/// The CSRF token a page's forms carry.
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a form with a CSRF token")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_listed_followed_cancelled_and_retried_by_forms_that_carry_a_token() {
    let (_dir, app) = app(Limits::default()).await;
    let (s, b) = call(
        &app,
        super::post(
            "/api/v1/events",
            serde_json::json!({"source": "test", "detail_type": "go", "detail": {}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&b));
    let event = json(&b)["event_id"].as_str().unwrap().to_string();
    let store = app.lake().executions();
    let ids = store
        .dispatch(
            &event,
            &[tarn_lake::NewExecution {
                pipeline: "daily".into(),
                input: serde_json::json!({"key": "<script>alert(1)</script>"}),
                first_step: "Check".into(),
            }],
        )
        .await
        .unwrap();
    let id = ids[0].clone();
    let record = store.execution(&id).await.unwrap().unwrap();
    let (attempt, _) = store
        .start_attempt(&record, "Check", &record.input, "host:1")
        .await
        .unwrap();
    store
        .finish_attempt(
            &attempt,
            "failed",
            None,
            Some("exit 1"),
            "line one\n<script>alert(2)</script>\n",
        )
        .await
        .unwrap();

    let (s, html) = page(&app, get("/ui/executions?status=pending")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains(&format!("href=\"/ui/executions/{id}\"")),
        "{html}"
    );
    let (_, html) = page(&app, get("/ui/executions?status=succeeded")).await;
    assert!(!html.contains(&id), "{html}");

    // The execution's page: its input and the attempt's logs as text, a bar on the timeline,
    // and a cancel form (it is pending).
    let (s, html) = page(&app, get(&format!("/ui/executions/{id}"))).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(2)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(html.contains("class=\"bar failed\""), "{html}");
    assert!(
        html.contains(&format!("action=\"/ui/executions/{id}/cancel\"")),
        "{html}"
    );
    let token = csrf_of(&html);

    // A forged form (no token, or another site's) is refused and changes nothing.
    let cancel = format!("/ui/executions/{id}/cancel");
    let (s, html) = page(&app, form(&cancel, &[("csrf", "guess")])).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{html}");
    let mut other_site = form(&cancel, &[("csrf", &token)]);
    other_site
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    other_site
        .headers_mut()
        .insert("host", "127.0.0.1:8080".parse().unwrap());
    let (s, _) = page(&app, other_site).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        store.execution(&id).await.unwrap().unwrap().status,
        "pending"
    );

    // With the page's token: cancelled, then retried; retrying again is a conflict.
    let res = app
        .router()
        .oneshot(form(&cancel, &[("csrf", &token)]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        store.execution(&id).await.unwrap().unwrap().status,
        "cancelled"
    );
    let (_, html) = page(&app, get(&format!("/ui/executions/{id}"))).await;
    assert!(
        html.contains(&format!("action=\"/ui/executions/{id}/retry\"")),
        "{html}"
    );
    let retry = format!("/ui/executions/{id}/retry");
    let res = app
        .router()
        .oneshot(form(&retry, &[("csrf", &token)]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        store.execution(&id).await.unwrap().unwrap().status,
        "pending"
    );
    let (s, html) = page(&app, form(&retry, &[("csrf", &token)])).await;
    assert_eq!(s, StatusCode::CONFLICT, "{html}");
    let (s, _) = page(&app, get("/ui/executions/nope")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_version_is_approved_with_a_reason_and_shows_its_lineage() {
    let (_dir, app) = app(Limits::default()).await;
    let registry = app.lake().registry();
    registry
        .create_registered_model("delays", "arrival delay", &[], "test")
        .await
        .unwrap();
    let lineage = serde_json::json!({"train": {"query": "SELECT 1", "tables": {"flights.trusted.flights": 3}, "rows": 1200}});
    for _ in 0..2 {
        registry
            .create_model_version(
                &tarn_lake::registry::NewModelVersion {
                    name: "delays".into(),
                    source: "file:///tmp/m".into(),
                    storage_location: "file:///tmp/m".into(),
                    run_id: "run-1".into(),
                    run_link: String::new(),
                    model_id: String::new(),
                    description: String::new(),
                    tags: vec![tarn_lake::tracking::KeyValue {
                        key: "tarn.lineage".into(),
                        value: lineage.to_string(),
                    }],
                },
                "test",
            )
            .await
            .unwrap();
    }
    let (s, html) = page(&app, get("/ui/models")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("href=\"/ui/models/delays\""), "{html}");
    let (s, html) = page(&app, get("/ui/models/delays")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("href=\"/ui/tables/flights.trusted.flights\""),
        "{html}"
    );
    assert!(html.contains("(1200 rows)"), "{html}");
    assert_eq!(
        html.matches("PendingManualApproval</span>").count(),
        2,
        "{html}"
    );
    let token = csrf_of(&html);
    let decide = "/ui/models/delays/versions/2/decide";
    // No reason, or no token: refused, nothing decided.
    let (s, _) = page(
        &app,
        form(
            decide,
            &[("csrf", &token), ("decision", "approve"), ("reason", " ")],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = page(
        &app,
        form(decide, &[("decision", "approve"), ("reason", "good")]),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let res = app
        .router()
        .oneshot(form(
            decide,
            &[
                ("csrf", &token),
                ("decision", "approve"),
                ("reason", "beats v1 <b>on rmse</b>"),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let v = registry.require_version("delays", "2").await.unwrap();
    assert_eq!(v.approval.status, "Approved");
    assert_eq!(v.approval.reason, "beats v1 <b>on rmse</b>");
    assert_eq!(v.approval.by, "anonymous (web UI)");
    // The decision is an event, and the page shows it as text.
    let (_, b) = call(
        &app,
        get("/api/v1/events?kind=model.version.approved&newest=true"),
    )
    .await;
    assert_eq!(
        json(&b)["items"].as_array().unwrap().len(),
        1,
        "{}",
        String::from_utf8_lossy(&b)
    );
    let (_, html) = page(&app, get("/ui/models/delays")).await;
    assert!(
        html.contains("beats v1 &lt;b&gt;on rmse&lt;/b&gt;"),
        "{html}"
    );
    assert_eq!(
        html.matches("PendingManualApproval</span>").count(),
        1,
        "{html}"
    );
    let (s, _) = page(&app, get("/ui/models/ghost")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Aliases: pointed at a version from the page (with who, as an event), then removed; a
    // form without the token changes nothing.
    let aliases = "/ui/models/delays/aliases";
    let set = [
        ("csrf", token.as_str()),
        ("alias", "champion"),
        ("version", "2"),
        ("action", "set"),
    ];
    let (s, _) = page(&app, form(aliases, &set[1..])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(registry
        .version_by_alias("delays", "champion")
        .await
        .is_err());
    let res = app.router().oneshot(form(aliases, &set)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        registry
            .version_by_alias("delays", "champion")
            .await
            .unwrap()
            .version,
        "2"
    );
    let (_, b) = call(&app, get("/api/v1/events?kind=model.version.alias_set")).await;
    assert_eq!(
        json(&b)["items"][0]["detail"]["alias"],
        "champion",
        "{}",
        String::from_utf8_lossy(&b)
    );
    let (_, html) = page(&app, get("/ui/models/delays")).await;
    assert!(
        html.contains("@champion</td><td>→ version 2</td>"),
        "{html}"
    );
    let (s, html) = page(
        &app,
        form(
            aliases,
            &[
                ("csrf", &token),
                ("alias", "bad alias!"),
                ("version", "1"),
                ("action", "set"),
            ],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
    let res = app
        .router()
        .oneshot(form(
            aliases,
            &[
                ("csrf", &token),
                ("alias", "champion"),
                ("action", "delete"),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(registry
        .version_by_alias("delays", "champion")
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_found_sorted_compared_and_their_metrics_charted() {
    let (_dir, app) = app(Limits::default()).await;
    let tracking = app.lake().tracking();
    let experiment = tracking
        .create_experiment("delays <tuning>", None, &[])
        .await
        .unwrap();
    let mut ids = Vec::new();
    let mut artifact_uri = String::new();
    for (name, iters, rmse) in [
        ("small", "50", 21.5),
        ("medium", "100", 18.25),
        ("large", "200", 17.75),
    ] {
        let run = tracking
            .create_run(&experiment, "test", Some(name), None, &[])
            .await
            .unwrap();
        let points: Vec<serde_json::Value> = (0..3)
            .map(|step: i64| {
                serde_json::json!({
                    "key": "rmse", "value": rmse + (2 - step) as f64,
                    "timestamp": 1_700_000_000_000i64 + step, "step": step
                })
            })
            .collect();
        let batch: tarn_lake::tracking::Batch = serde_json::from_value(serde_json::json!({
            "params": [{"key": "max_iter", "value": iters}, {"key": "learning_rate", "value": "0.1"}],
            "metrics": points,
        }))
        .unwrap();
        tracking.log_batch(&run.info.run_id, &batch).await.unwrap();
        if artifact_uri.is_empty() {
            artifact_uri = run.info.artifact_uri.clone();
        }
        ids.push(run.info.run_id);
    }
    let (s, html) = page(&app, get("/ui/experiments")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("delays &lt;tuning&gt;"), "{html}");
    assert!(
        html.contains(&format!("href=\"/ui/experiments/{experiment}\"")),
        "{html}"
    );

    // Every run, a column per parameter and metric; MLflow's filter finds two; sorted by the
    // metric; a filter MLflow would refuse is said, not a 500.
    let runs_page = |q: &str| get(&format!("/ui/experiments/{experiment}?{q}"));
    let (_, html) = page(&app, runs_page("")).await;
    for want in [
        "max_iter",
        "learning_rate",
        "rmse",
        ">small<",
        ">medium<",
        ">large<",
        "17.75",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    let (_, html) = page(&app, runs_page("filter=metrics.rmse%20%3C%2020")).await;
    assert!(
        html.contains(">medium<") && html.contains(">large<") && !html.contains(">small<"),
        "{html}"
    );
    let (_, html) = page(&app, runs_page("order=metrics.%60rmse%60%20ASC")).await;
    let (large, medium, small) = (
        html.find(">large<").unwrap(),
        html.find(">medium<").unwrap(),
        html.find(">small<").unwrap(),
    );
    assert!(large < medium && medium < small, "{html}");
    let (s, html) = page(&app, runs_page("filter=metrics.rmse%20%3C%3E%3C%20x")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("class=\"error\""), "{html}");

    // A run's page charts its metric's history: three points, by step.
    let (s, html) = page(&app, get(&format!("/ui/runs/{}", ids[0]))).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let data = html
        .split("id=\"metric-0\" type=\"application/json\">")
        .nth(1)
        .and_then(|r| r.split("</script>").next())
        .expect("the history's data");
    let data: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        data["series"][0]["points"],
        serde_json::json!([[0.0, 23.5], [1.0, 22.5], [2.0, 21.5]])
    );

    // Compare: the rows that differ are marked, the one that does not is not; the histories
    // overlaid, a line per run.
    let (s, html) = page(
        &app,
        get(&format!("/ui/runs/compare?ids={}&ids={}", ids[0], ids[2])),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("<tr class=\"differs\"><th>param max_iter</th>"),
        "{html}"
    );
    assert!(html.contains("<tr><th>param learning_rate</th>"), "{html}");
    assert!(
        html.contains("<tr class=\"differs\"><th>metric rmse</th>"),
        "{html}"
    );
    let (s, _) = page(&app, get(&format!("/ui/runs/compare?ids={}", ids[0]))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // The artifact tree: folders first, each opened in place; a file downloads as itself.
    let lake = app.lake();
    let mlmodel = b"flavors:\n  python_function: {}\n".to_vec();
    lake.put_artifact(&artifact_uri, "model/MLmodel", mlmodel.clone())
        .await
        .unwrap();
    lake.put_artifact(&artifact_uri, "model/data/weights.bin", vec![7; 2048])
        .await
        .unwrap();
    lake.put_artifact(&artifact_uri, "notes <b>.txt", b"hello".to_vec())
        .await
        .unwrap();
    let run = format!("/ui/runs/{}", ids[0]);
    let (_, html) = page(&app, get(&run)).await;
    let (folder, file) = (
        html.find("?path=model#artifacts")
            .expect("the model folder"),
        html.find("notes &lt;b&gt;.txt").expect("the file, as text"),
    );
    assert!(folder < file, "{html}");
    assert!(
        html.contains(&format!(
            "href=\"{run}/artifacts/notes%20%3Cb%3E.txt\" download"
        )),
        "{html}"
    );
    let (_, html) = page(&app, get(&format!("{run}?path=model"))).await;
    assert!(html.contains("?path=model%2Fdata#artifacts"), "{html}");
    assert!(
        html.contains(&format!("href=\"{run}/artifacts/model/MLmodel\"")),
        "{html}"
    );
    let res = app
        .router()
        .oneshot(get(&format!("{run}/artifacts/model/MLmodel")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"MLmodel\"; filename*=UTF-8''MLmodel"
    );
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body.to_vec(), mlmodel);
    let (s, _) = page(&app, get(&format!("{run}/artifacts/model/nothing"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, html) = page(&app, get(&format!("{run}/artifacts/..%2F..%2Ftarn.yml"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
    let (_, html) = page(&app, get(&format!("/ui/runs/{}", ids[1]))).await;
    assert!(html.contains("This run has no artifact."), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_saved_as_a_tile_and_endpoints_are_listed_with_their_split() {
    let (dir, app) = app(Limits::default()).await;
    let (_, html) = page(
        &app,
        form("/ui/sql", &[("query", "SELECT 1 AS one, 2 AS two")]),
    )
    .await;
    assert!(html.contains("Save as a dashboard tile"), "{html}");
    let token = csrf_of(&html);
    let save = |fields: Vec<(&'static str, String)>| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form("/ui/dashboards/tiles", &fields)
    };
    let tile = |chart: &str, t: &str| {
        vec![
            ("csrf", t.to_string()),
            ("dashboard", "ops".to_string()),
            ("title", format!("Ones {HOSTILE}")),
            ("sql", "SELECT 1 AS one, 2 AS two".to_string()),
            ("chart", chart.to_string()),
            ("x", "one".to_string()),
            ("y", String::new()),
        ]
    };
    // Without the token: refused, nothing written.
    let (s, _) = page(&app, save(tile("bar", "forged"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(!dir.path().join("dashboards/ops.yml").exists());
    let res = app
        .router()
        .oneshot(save(tile("bar", &token)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/ui/dashboards/ops");
    let (s, html) = page(&app, get("/ui/dashboards/ops")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("Ones &lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(html.contains("data-kind=\"bar\""), "{html}");
    // A chart tarn does not draw: refused with the file named; the dashboard unchanged.
    let (s, html) = page(&app, save(tile("pie", &token))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("ops.yml") && html.contains("chart: pie"),
        "{html}"
    );
    let d = tarn_config::load_dashboard(&dir.path().join("dashboards/ops.yml")).unwrap();
    assert_eq!(d.tiles.len(), 1);

    // Endpoints: none yet, then one with a canary; this router serves none, so the page says
    // so and a request from its form is refused.
    let (s, html) = page(&app, get("/ui/endpoints")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("No endpoint yet"), "{html}");
    let mut spec = tarn_config::EndpointSpec::new("models:/delays@champion");
    spec.canary = Some(tarn_config::Canary {
        model: "models:/delays@challenger".into(),
        percent: 10.0,
    });
    app.lake()
        .endpoints()
        .put_endpoint(
            "arrivals",
            &serde_json::to_value(&spec).unwrap(),
            "cli",
            "test",
        )
        .await
        .unwrap();
    let (_, html) = page(&app, get("/ui/endpoints")).await;
    assert!(
        html.contains("90% models:/delays@champion · 10% models:/delays@challenger"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/ui/tables/ml.service.inference_arrivals\""),
        "{html}"
    );
    let (s, html) = page(&app, get("/ui/endpoints/arrivals")).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("href=\"/ui/models/delays\""), "{html}");
    assert!(html.contains("does not serve endpoints"), "{html}");
    let (s, _) = page(&app, get("/ui/endpoints/ghost")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = page(
        &app,
        form(
            "/ui/endpoints/arrivals/invoke",
            &[("csrf", &token), ("body", "{}")],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    // The inference table's page names the endpoint as its writer, once it exists.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_past_the_body_limit_is_refused_naming_the_limit_and_the_server_goes_on() {
    let (dir, app) = app(Limits {
        request_body: 4096,
        ..Limits::default()
    })
    .await;
    let (_, html) = page(&app, form("/ui/sql", &[("query", "SELECT 1 AS one")])).await;
    let token = csrf_of(&html);
    // A query of 64 KiB, and a tile whose title is as long: each refused with 413, naming the
    // limit; nothing written.
    let long = format!("SELECT '{}' AS x", "y".repeat(64 * 1024));
    let (s, html) = page(&app, form("/ui/sql", &[("query", &long)])).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{html}");
    assert!(
        html.contains("larger than 4096 bytes") && html.contains("limits.request_body"),
        "{html}"
    );
    let title = "t".repeat(64 * 1024);
    let (s, html) = page(
        &app,
        form(
            "/ui/dashboards/tiles",
            &[
                ("csrf", &token),
                ("dashboard", "big"),
                ("title", &title),
                ("sql", "SELECT 1 AS one"),
                ("chart", "number"),
            ],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{html}");
    assert!(html.contains("limits.request_body"), "{html}");
    assert!(!dir.path().join("dashboards/big.yml").exists());
    // A form within the limit still runs, and the server answers its health.
    let (s, html) = page(&app, form("/ui/sql", &[("query", "SELECT 41 + 1 AS n")])).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("<td>42</td>"), "{html}");
    let (s, _) = call(&app, get("/health")).await;
    assert_eq!(s, StatusCode::OK);
}
