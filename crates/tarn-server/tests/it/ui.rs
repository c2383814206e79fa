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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_auth_a_browser_without_a_token_is_told_the_ui_has_no_sign_in_yet() {
    let (_dir, app) = app(Limits::default()).await;
    let app = app.with_auth(true);
    let (s, b) = call(&app, get("/ui/")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        json(&b)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no sign-in page yet"),
        "{}",
        String::from_utf8_lossy(&b)
    );
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
        .start_attempt(&record, "Check", &record.input)
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
