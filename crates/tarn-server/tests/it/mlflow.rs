//! MLflow parity regressions, one per difference found by running the mlflow 3 client
//! against `mlflow server` and `tarn serve` (issue 18), on both deployments. The whole
//! client, against both servers, is `tarn/tests/it/parity.rs`.

use crate::hostile::app_on;
use crate::{call, get, json, post};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tarn_lake::testing::Deployment;
use tarn_server::App;

const API: &str = "/api/2.0/mlflow";

async fn ok(app: &App, req: Request<Body>) -> Value {
    let (s, b) = call(app, req).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    json(&b)
}

/// MLflow's error: the status and `error_code`.
async fn refused(app: &App, req: Request<Body>) -> (StatusCode, String) {
    let (s, b) = call(app, req).await;
    let code = json(&b)["error_code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (s, code)
}

async fn new_run(app: &App) -> String {
    let run = ok(
        app,
        post(&format!("{API}/runs/create"), json!({"experiment_id": "0"})),
    )
    .await;
    run["run"]["info"]["run_id"].as_str().unwrap().to_string()
}

async fn history(app: &App, run: &str, key: &str) -> Vec<Value> {
    let h = ok(
        app,
        get(&format!(
            "{API}/metrics/get-history?run_id={run}&metric_key={key}"
        )),
    )
    .await;
    h["metrics"].as_array().cloned().unwrap_or_default()
}

async fn latest(app: &App, run: &str) -> Value {
    let r = ok(app, get(&format!("{API}/runs/get?run_id={run}"))).await;
    let mut out = json!({});
    for m in r["run"]["data"]["metrics"].as_array().unwrap() {
        out[m["key"].as_str().unwrap()] = m["value"].clone();
    }
    out
}

/// Item 1: NaN is stored (one call or in a batch, which keeps its other values) and
/// answered as `"NaN"`, as mlflow server's JSON has it.
async fn nan_metrics_are_stored_and_answered_as_nan(d: Deployment) {
    let (_dir, app) = app_on(d, "").await;
    let run = new_run(&app).await;
    for value in [json!("NaN"), json!("nan")] {
        ok(
            &app,
            post(
                &format!("{API}/runs/log-metric"),
                json!({"run_id": run, "key": "loss", "value": value, "timestamp": 1, "step": 0}),
            ),
        )
        .await;
    }
    ok(
        &app,
        post(
            &format!("{API}/runs/log-batch"),
            json!({"run_id": run, "metrics": [
                {"key": "ok", "value": 1.5, "timestamp": 2, "step": 0},
                {"key": "bad", "value": "NaN", "timestamp": 2, "step": 0}
            ]}),
        ),
    )
    .await;
    assert_eq!(
        latest(&app, &run).await,
        json!({"bad": "NaN", "loss": "NaN", "ok": 1.5})
    );
    // The same point (NaN at the same time and step) logged twice is one point.
    let h = history(&app, &run, "loss").await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["value"], "NaN");
    // NaN fails every comparison but `!=`, and sorts after numbers.
    let other = new_run(&app).await;
    ok(
        &app,
        post(
            &format!("{API}/runs/log-metric"),
            json!({"run_id": other, "key": "loss", "value": 0.0, "timestamp": 1}),
        ),
    )
    .await;
    let found = |filter: &str, order: &str| {
        post(
            &format!("{API}/runs/search"),
            json!({"experiment_ids": ["0"], "filter": filter,
                   "order_by": if order.is_empty() { vec![] } else { vec![order] }}),
        )
    };
    let ids = |v: Value| -> Vec<String> {
        v["runs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["info"]["run_id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        ids(ok(&app, found("metrics.loss = 0", "")).await),
        [other.as_str()]
    );
    assert_eq!(
        ids(ok(&app, found("metrics.loss != 0", "")).await),
        [run.as_str()]
    );
    for dir in ["ASC", "DESC"] {
        let order = format!("metrics.loss {dir}");
        assert_eq!(
            ids(ok(&app, found("", &order)).await),
            [other.clone(), run.clone()],
            "{order}"
        );
    }
}

/// Item 2: infinities are answered as the largest doubles (mlflow's SQL store), not null.
async fn infinite_metrics_are_answered_as_the_largest_doubles(d: Deployment) {
    let (_dir, app) = app_on(d, "").await;
    let run = new_run(&app).await;
    for (key, value) in [("big", "Infinity"), ("small", "-Infinity")] {
        ok(
            &app,
            post(
                &format!("{API}/runs/log-metric"),
                json!({"run_id": run, "key": key, "value": value, "timestamp": 1}),
            ),
        )
        .await;
    }
    assert_eq!(
        latest(&app, &run).await,
        json!({"big": f64::MAX, "small": f64::MIN})
    );
    assert_eq!(
        history(&app, &run, "big").await[0]["value"],
        json!(f64::MAX)
    );
}

/// Item 3: a point is unique by (key, value, timestamp, step): logged again (as the client
/// does when it logs a model) it is kept once.
async fn a_metric_point_logged_twice_is_kept_once(d: Deployment) {
    let (_dir, app) = app_on(d, "").await;
    let run = new_run(&app).await;
    let points: Vec<Value> = (0..5)
        .map(|s| json!({"key": "loss", "value": 1.0 / (s as f64 + 1.0), "timestamp": 100 + s, "step": s}))
        .collect();
    for _ in 0..2 {
        ok(
            &app,
            post(
                &format!("{API}/runs/log-batch"),
                json!({"run_id": run, "metrics": points}),
            ),
        )
        .await;
    }
    ok(
        &app,
        post(
            &format!("{API}/runs/log-batch"),
            json!({"run_id": run, "metrics": [points[0], points[0]]}),
        ),
    )
    .await;
    let h = history(&app, &run, "loss").await;
    let steps: Vec<i64> = h.iter().map(|m| m["step"].as_i64().unwrap()).collect();
    assert_eq!(steps, [0, 1, 2, 3, 4]);
    // Another value at the same step and time is another point.
    let mut other = points[0].clone();
    other["value"] = json!(7.0);
    ok(
        &app,
        post(
            &format!("{API}/runs/log-batch"),
            json!({"run_id": run, "metrics": [other]}),
        ),
    )
    .await;
    assert_eq!(history(&app, &run, "loss").await.len(), 6);
}

/// Item 4: the v3 tracing calls and server-info.
async fn traces_are_recorded_searched_tagged_assessed_and_deleted(d: Deployment) {
    let (_dir, app) = app_on(d, "").await;
    let info = ok(&app, get("/api/3.0/mlflow/server-info")).await;
    assert_eq!(info["workspaces_enabled"], false);
    let trace = |id: &str, at: &str, state: &str| {
        json!({"trace": {"trace_info": {
            "trace_id": id,
            "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "0"}},
            "request_time": at,
            "execution_duration": "0.250s",
            "state": state,
            "request_preview": "{\"x\": 1}",
            "trace_metadata": {"mlflow.sourceRun": "r1"},
            "tags": {"mlflow.traceName": "pipeline"}
        }}})
    };
    let made = ok(
        &app,
        post(
            "/api/3.0/mlflow/traces",
            trace("tr-1", "2023-11-14T22:13:20Z", "OK"),
        ),
    )
    .await;
    let made = &made["trace"]["trace_info"];
    assert_eq!(
        made["tags"]["mlflow.artifactLocation"],
        "mlflow-artifacts:/0/traces/tr-1/artifacts"
    );
    assert_eq!(made["execution_duration"], "0.25s");
    ok(
        &app,
        post(
            "/api/3.0/mlflow/traces",
            trace("tr-2", "2023-11-14T22:13:21.000Z", "ERROR"),
        ),
    )
    .await;
    let got = ok(&app, get("/api/3.0/mlflow/traces/tr-1")).await;
    assert_eq!(got["trace"]["trace_info"]["request_preview"], "{\"x\": 1}");
    assert_eq!(
        refused(&app, get("/api/3.0/mlflow/traces/tr-9")).await,
        (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST".into())
    );
    let search = |filter: &str, order: &str, max: i64| {
        post(
            "/api/3.0/mlflow/traces/search",
            json!({"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "0"}}],
                   "filter": filter, "order_by": [order], "max_results": max}),
        )
    };
    let ids = |v: &Value| -> Vec<String> {
        v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = ok(&app, search("", "timestamp_ms DESC", 100)).await;
    assert_eq!(ids(&all), ["tr-2", "tr-1"]);
    let page = ok(&app, search("", "timestamp_ms ASC", 1)).await;
    assert_eq!(
        (ids(&page), page["next_page_token"].is_string()),
        (vec!["tr-1".to_string()], true)
    );
    for (filter, want) in [
        ("trace.status = 'OK'", vec!["tr-1"]),
        ("attributes.execution_time_ms > 200", vec!["tr-2", "tr-1"]),
        ("metadata.mlflow.sourceRun = 'r1'", vec!["tr-2", "tr-1"]),
        ("tags.mlflow.traceName = 'nope'", vec![]),
    ] {
        assert_eq!(
            ids(&ok(&app, search(filter, "timestamp_ms DESC", 100)).await),
            want,
            "{filter}"
        );
    }
    // Tags: set, then removed with the key in the DELETE's body (the client's way).
    let tag = Request::patch(format!("{API}/traces/tr-1/tags"))
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"key": "env", "value": "test"}).to_string(),
        ))
        .unwrap();
    ok(&app, tag).await;
    let tagged = ok(&app, get("/api/3.0/mlflow/traces/tr-1")).await;
    assert_eq!(tagged["trace"]["trace_info"]["tags"]["env"], "test");
    let untag = Request::delete(format!("{API}/traces/tr-1/tags"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"key": "env"}).to_string()))
        .unwrap();
    ok(&app, untag).await;
    let untagged = ok(&app, get("/api/3.0/mlflow/traces/tr-1")).await;
    assert!(untagged["trace"]["trace_info"]["tags"]["env"].is_null());
    // Feedback on a trace comes back with it.
    let a = ok(
        &app,
        post(
            "/api/3.0/mlflow/traces/tr-1/assessments",
            json!({"assessment": {"assessment_name": "quality", "trace_id": "tr-1", "feedback": {"value": true}}}),
        ),
    )
    .await;
    let aid = a["assessment"]["assessment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let with = ok(&app, get("/api/3.0/mlflow/traces/tr-1")).await;
    assert_eq!(
        with["trace"]["trace_info"]["assessments"][0]["assessment_id"],
        aid.as_str()
    );
    // A trace linked to a run is found by that run.
    let run = new_run(&app).await;
    ok(
        &app,
        post(
            &format!("{API}/traces/link-to-run"),
            json!({"trace_ids": ["tr-2"], "run_id": run}),
        ),
    )
    .await;
    let linked = ok(
        &app,
        search(&format!("trace.run_id = '{run}'"), "timestamp_ms DESC", 100),
    )
    .await;
    assert_eq!(ids(&linked), ["tr-2"]);
    // As mlflow: a trace that is not there is passed over, not refused.
    ok(
        &app,
        post(
            &format!("{API}/traces/link-to-run"),
            json!({"trace_ids": ["tr-9"], "run_id": run}),
        ),
    )
    .await;
    // Deleting by id answers how many went.
    let gone = ok(
        &app,
        post(
            &format!("{API}/traces/delete-traces"),
            json!({"experiment_id": "0", "request_ids": ["tr-1", "tr-9"]}),
        ),
    )
    .await;
    assert_eq!(gone["traces_deleted"], 1);
    assert_eq!(
        ids(&ok(&app, search("", "timestamp_ms DESC", 100)).await),
        ["tr-2"]
    );
}

/// Item 5: metrics logged for a logged model are its metrics, and search finds it by them.
async fn metrics_linked_to_a_logged_model_are_its_metrics(d: Deployment) {
    let (_dir, app) = app_on(d, "").await;
    let run = new_run(&app).await;
    let m = ok(
        &app,
        post(
            &format!("{API}/logged-models"),
            json!({"experiment_id": "0", "name": "tree", "source_run_id": run}),
        ),
    )
    .await;
    let model = m["model"]["info"]["model_id"].as_str().unwrap().to_string();
    ok(
        &app,
        post(
            &format!("{API}/runs/log-batch"),
            json!({"run_id": run, "metrics": [
                {"key": "r2", "value": 0.9, "timestamp": 5, "step": 0, "model_id": model,
                 "dataset_name": "flights", "dataset_digest": "abc"},
                {"key": "other", "value": 1.0, "timestamp": 5, "step": 0}
            ]}),
        ),
    )
    .await;
    let got = ok(&app, get(&format!("{API}/logged-models/{model}"))).await;
    let metrics = &got["model"]["data"]["metrics"];
    assert_eq!(metrics.as_array().unwrap().len(), 1, "{metrics}");
    assert_eq!(metrics[0]["key"], "r2");
    assert_eq!(metrics[0]["dataset_name"], "flights");
    assert_eq!(metrics[0]["run_id"], run.as_str());
    let search = |filter: &str| {
        post(
            &format!("{API}/logged-models/search"),
            json!({"experiment_ids": ["0"], "filter": filter}),
        )
    };
    let found = ok(&app, search("metrics.r2 > 0.5")).await;
    assert_eq!(found["models"].as_array().unwrap().len(), 1, "{found}");
    let none = ok(&app, search("metrics.r2 > 0.95")).await;
    assert!(
        none["models"].as_array().is_none_or(|a| a.is_empty()),
        "{none}"
    );
}

/// Item 6: every search pages; experiments search also answers GET; run search takes
/// `IN`, `NOT IN`, `IS NULL` and `datasets.*`.
async fn searches_page_and_take_lists_nulls_and_datasets(d: Deployment) {
    let (_dir, app) = app_on(d, "").await;
    for n in ["a", "b", "c"] {
        ok(
            &app,
            post(&format!("{API}/experiments/create"), json!({"name": n})),
        )
        .await;
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"max_results": 2, "order_by": ["name ASC"]});
        if let Some(t) = &token {
            body["page_token"] = json!(t);
        }
        let page = ok(&app, post(&format!("{API}/experiments/search"), body)).await;
        let got: Vec<String> = page["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect();
        assert!(got.len() <= 2);
        names.extend(got);
        token = page["next_page_token"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, ["Default", "a", "b", "c"]);
    let by_get = ok(
        &app,
        get(&format!(
            "{API}/experiments/search?max_results=3&order_by=name%20DESC"
        )),
    )
    .await;
    assert_eq!(by_get["experiments"][0]["name"], "c");
    assert!(by_get["next_page_token"].is_string());

    let (r1, r2, r3) = (
        new_run(&app).await,
        new_run(&app).await,
        new_run(&app).await,
    );
    ok(
        &app,
        post(
            &format!("{API}/runs/log-inputs"),
            json!({"run_id": r1, "datasets": [{
                "tags": [{"key": "mlflow.data.context", "value": "training"}],
                "dataset": {"name": "flights", "digest": "d1", "source_type": "code", "source": "{}"}
            }]}),
        ),
    )
    .await;
    ok(
        &app,
        post(
            &format!("{API}/runs/log-parameter"),
            json!({"run_id": r2, "key": "alpha", "value": "1"}),
        ),
    )
    .await;
    let app_ref = &app;
    let search = |filter: String| async move {
        let v = ok(
            app_ref,
            post(
                &format!("{API}/runs/search"),
                json!({"experiment_ids": ["0"], "filter": filter}),
            ),
        )
        .await;
        let mut ids: Vec<String> = v["runs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["info"]["run_id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        search(format!("attributes.run_id IN ('{r1}', '{r3}')")).await,
        sorted(vec![r1.clone(), r3.clone()])
    );
    assert_eq!(
        search(format!("attributes.run_id NOT IN ('{r1}', '{r3}')")).await,
        [r2.as_str()]
    );
    assert_eq!(
        search("datasets.name = 'flights'".into()).await,
        [r1.as_str()]
    );
    assert_eq!(
        search("datasets.context = 'training'".into()).await,
        [r1.as_str()]
    );
    assert_eq!(
        search("datasets.digest IN ('d1', 'd2')".into()).await,
        [r1.as_str()]
    );
    assert_eq!(
        search("params.alpha IS NOT NULL".into()).await,
        [r2.as_str()]
    );
    assert_eq!(
        search("params.alpha IS NULL".into()).await,
        sorted(vec![r1.clone(), r3.clone()])
    );
    // A comparator a key does not take is refused, as mlflow refuses it.
    let (s, code) = refused(
        &app,
        post(
            &format!("{API}/runs/search"),
            json!({"experiment_ids": ["0"], "filter": "metrics.loss LIKE 'x'"}),
        ),
    )
    .await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE")
    );
}

/// Item 7: mlflow's limits and name rules.
async fn mlflow_limits_and_name_rules_hold(d: Deployment) {
    let (_dir, app) = app_on(d, "").await;
    let run = new_run(&app).await;
    let param = |key: &str, value: &str| {
        post(
            &format!("{API}/runs/log-parameter"),
            json!({"run_id": run, "key": key, "value": value}),
        )
    };
    // Long values are cut to mlflow's limits (its server's default), not kept whole.
    ok(&app, param("long", &"p".repeat(7000))).await;
    ok(
        &app,
        post(
            &format!("{API}/runs/set-tag"),
            json!({"run_id": run, "key": "long", "value": "t".repeat(9000)}),
        ),
    )
    .await;
    let r = ok(&app, get(&format!("{API}/runs/get?run_id={run}"))).await;
    let len = |kind: &str| {
        r["run"]["data"][kind]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == "long")
            .map(|p| p["value"].as_str().unwrap().len())
    };
    assert_eq!((len("params"), len("tags")), (Some(6000), Some(8000)));
    for bad in [
        "k".repeat(251),
        "bad key!@#".into(),
        "../etc".into(),
        "a/../b".into(),
        "/abs".into(),
    ] {
        let (s, code) = refused(&app, param(&bad, "v")).await;
        assert_eq!(
            (s, code.as_str()),
            (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            "{bad}"
        );
    }
    ok(&app, param("fine key/with.dots-and_ok:1", "v")).await;
    let (s, code) = refused(
        &app,
        post(
            &format!("{API}/runs/search"),
            json!({"experiment_ids": ["0"], "max_results": 60000}),
        ),
    )
    .await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE")
    );
    // A logged model's source names the model in model_id too.
    let m = ok(
        &app,
        post(
            &format!("{API}/logged-models"),
            json!({"experiment_id": "0", "name": "m"}),
        ),
    )
    .await;
    let model = m["model"]["info"]["model_id"].as_str().unwrap().to_string();
    ok(
        &app,
        post(
            &format!("{API}/registered-models/create"),
            json!({"name": "reg"}),
        ),
    )
    .await;
    let version = |with_id: bool| {
        let mut body = json!({"name": "reg", "source": format!("models:/{model}")});
        if with_id {
            body["model_id"] = json!(model);
        }
        post(&format!("{API}/model-versions/create"), body)
    };
    let (s, code) = refused(&app, version(false)).await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE")
    );
    ok(&app, version(true)).await;
}

/// Item 8: mlflow's error codes for a deleted alias and a missing run id.
async fn errors_carry_mlflows_codes(d: Deployment) {
    let (_dir, app) = app_on(d, "").await;
    assert_eq!(
        refused(&app, get(&format!("{API}/runs/get"))).await,
        (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE".into())
    );
    assert_eq!(
        refused(
            &app,
            get(&format!("{API}/runs/get?run_id={}", "0".repeat(32)))
        )
        .await,
        (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST".into())
    );
    assert_eq!(
        refused(&app, get(&format!("{API}/experiments/get"))).await,
        (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE".into())
    );
    ok(
        &app,
        post(
            &format!("{API}/registered-models/create"),
            json!({"name": "reg"}),
        ),
    )
    .await;
    assert_eq!(
        refused(
            &app,
            get(&format!(
                "{API}/registered-models/alias?name=reg&alias=champion"
            ))
        )
        .await,
        (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE".into())
    );
    let (s, code) = refused(
        &app,
        post(
            &format!("{API}/registered-models/alias"),
            json!({"name": "reg", "alias": "v1", "version": "1"}),
        ),
    )
    .await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE")
    );
}

on_both_deployments!(
    nan_metrics_are_stored_and_answered_as_nan,
    infinite_metrics_are_answered_as_the_largest_doubles,
    a_metric_point_logged_twice_is_kept_once,
    traces_are_recorded_searched_tagged_assessed_and_deleted,
    metrics_linked_to_a_logged_model_are_its_metrics,
    searches_page_and_take_lists_nulls_and_datasets,
    mlflow_limits_and_name_rules_hold,
    errors_carry_mlflows_codes,
);
