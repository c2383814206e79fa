//! Model endpoints as a team uses them: scikit-learn exports served in process and compared
//! with onnxruntime and scikit-learn, the status codes of `mlflow models serve`, an alias moved
//! under load, a bring-your-own server killed under load, and the inference log kept exactly
//! once even when its store fails.

use crate::server::Served;
use crate::{json_of as json, ok, tarn, Group};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn check(args: &[&str]) -> serde_json::Value {
    crate::python_check("serving_check.py", args, None)
}

/// The quickstart lake: flights loaded, `delays` version 1 trained, approved, alias champion.
fn quickstart() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("qs");
    ok(&tarn(dir.path(), &["quickstart", lake.to_str().unwrap()]));
    (dir, lake)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits until `GET url` answers 200.
async fn ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of `GET /metrics`.
fn metrics(rt: &tokio::runtime::Runtime, url: &str) -> String {
    rt.block_on(async {
        reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
}

/// One answered request of a load test.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    request_id: String,
    version: String,
    took: Duration,
}

/// Sends `body` from `workers` concurrent clients until `stop` is set.
async fn load(url: String, body: String, workers: usize, stop: Arc<AtomicBool>) -> Vec<Answer> {
    load_from(url, body, 0..workers, stop).await
}

/// [`load`] with clients numbered `workers` (request ids `load-W-K` stay apart between two
/// loads).
async fn load_from(
    url: String,
    body: String,
    workers: std::ops::Range<usize>,
    stop: Arc<AtomicBool>,
) -> Vec<Answer> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for w in workers {
        let (client, url, body, stop) = (client.clone(), url.clone(), body.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut k = 0;
            while !stop.load(Ordering::SeqCst) {
                k += 1;
                let id = format!("load-{w}-{k}");
                let started = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-request-id", &id)
                    .body(body.clone())
                    .send()
                    .await;
                let took = started.elapsed();
                let (status, version) = match r {
                    Ok(r) => (
                        r.status().as_u16(),
                        r.headers()
                            .get("x-tarn-model-version")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default(),
                    ),
                    // A request that hangs past the client's timeout or breaks off.
                    Err(_) => (0, String::new()),
                };
                out.push(Answer {
                    status,
                    request_id: id,
                    version,
                    took,
                });
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Once `endpoint` answers its ping, sends `rows`-row requests from `workers` clients while
/// `during` runs; answers every request's outcome and what `during` answered.
async fn load_during<T>(
    served: &str,
    endpoint: &str,
    rows: usize,
    workers: usize,
    during: impl std::future::Future<Output = T>,
) -> (Vec<Answer>, T) {
    ready(
        &reqwest::Client::new(),
        &format!("{served}/endpoints/{endpoint}/ping"),
    )
    .await;
    let url = format!("{served}/endpoints/{endpoint}/invocations");
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(url, records(rows), workers, stop.clone()));
    let out = during.await;
    stop.store(true, Ordering::SeqCst);
    (running.await.unwrap(), out)
}

const ROW: &str = r#"{"dep_delay": 12, "distance": 1400, "hour": 7, "minute": 5, "day": 3}"#;

fn records(n: usize) -> String {
    format!(r#"{{"dataframe_records": [{}]}}"#, vec![ROW; n].join(", "))
}

/// Every answered request appears in the inference table exactly once per row, with the
/// version its answer named.
fn assert_logged_once(lake: &Path, table: &str, answers: &[Answer], rows: usize) {
    let got = json(&ok(&tarn(
        lake,
        &[
            "sql",
            &format!("SELECT request_id, model_version, count(*) AS n, count(DISTINCT \"row\") AS r FROM {table} WHERE request_id LIKE 'load-%' GROUP BY request_id, model_version"),
            "--format",
            "json",
        ],
    )));
    let logged: std::collections::HashMap<String, (String, i64, i64)> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["request_id"].as_str().unwrap().to_string(),
                (
                    r["model_version"].as_str().unwrap().to_string(),
                    r["n"].as_i64().unwrap(),
                    r["r"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    let answered: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(
        logged.len(),
        answered.len(),
        "every answered request is logged, once (and no other)"
    );
    for a in answered {
        let (version, n, distinct) = logged
            .get(&a.request_id)
            .unwrap_or_else(|| panic!("{} is not in {table}", a.request_id));
        assert_eq!(version, &a.version, "{}", a.request_id);
        assert_eq!(
            (*n, *distinct),
            (rows as i64, rows as i64),
            "{}",
            a.request_id
        );
    }
}

/// A served lake with domains flights and ml and no model yet, and flights.csv beside it.
fn empty_lake() -> (tempfile::TempDir, PathBuf, Served) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tarn.yml"),
        "lake: serving\ndomains: [flights, ml]\n",
    )
    .unwrap();
    let csv = crate::flights_csv(dir.path());
    let served = Served::start(dir.path(), &["--endpoint-poll-ms", "200"]);
    (dir, csv, served)
}

/// Each scikit-learn model kind, exported by skl2onnx with its defaults (StandardScaler and
/// OneHotEncoder on string columns in a pipeline, ZipMap outputs), logged by the mlflow
/// client, approved and deployed, answers what onnxruntime and scikit-learn answer.
#[test]
fn scikit_learn_exports_answer_as_onnxruntime_and_scikit_learn() {
    let (dir, csv, served) = empty_lake();
    let work = tempfile::tempdir().unwrap();
    let models = check(&[
        "register",
        &served.url,
        csv.to_str().unwrap(),
        work.path().to_str().unwrap(),
    ]);
    let models = models.as_array().unwrap();
    assert_eq!(models.len(), 7);

    // Pending versions are not served.
    let first = &models[0];
    let name = first["model"].as_str().unwrap();
    let uri = format!("models:/{name}/{}", first["version"].as_str().unwrap());
    let refused = tarn(dir.path(), &["endpoints", "deploy", name, "--model", &uri]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("PendingManualApproval") && err.contains("tarn models approve"),
        "{err}"
    );
    // Unless the model's policy says otherwise (a tag set with the mlflow API).
    let rt = runtime();
    let client = reqwest::Client::new();
    rt.block_on(async {
        let r = client
            .post(format!(
                "{}/api/2.0/mlflow/registered-models/set-tag",
                served.url
            ))
            .json(&serde_json::json!({"name": name, "key": "tarn.endpoint.approval", "value": "optional"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    ok(&tarn(
        dir.path(),
        &["endpoints", "deploy", name, "--model", &uri],
    ));

    for m in models {
        let name = m["model"].as_str().unwrap();
        let version = m["version"].as_str().unwrap();
        ok(&tarn(
            dir.path(),
            &[
                "models",
                "approve",
                name,
                version,
                "--reason",
                "checked offline",
            ],
        ));
        ok(&tarn(
            dir.path(),
            &[
                "endpoints",
                "deploy",
                name,
                "--model",
                &format!("models:/{name}/{version}"),
            ],
        ));
    }
    rt.block_on(async {
        for m in models {
            let name = m["model"].as_str().unwrap();
            ready(&client, &format!("{}/endpoints/{name}/ping", served.url)).await;
        }
    });
    // Each endpoint is in the OpenAPI document with its model's input schema, and an example
    // /docs can send.
    let doc: serde_json::Value = rt.block_on(async {
        client
            .get(format!("{}/openapi.json", served.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let post = &doc["paths"]["/endpoints/skl_logistic/invocations"]["post"];
    let json_body = &post["requestBody"]["content"]["application/json"];
    let record = &json_body["schema"]["properties"]["dataframe_records"]["items"];
    assert_eq!(record["properties"]["carrier"]["type"], "string", "{post}");
    assert_eq!(record["properties"]["distance"]["type"], "number", "{post}");
    assert_eq!(record["required"].as_array().unwrap().len(), 7, "{post}");
    assert!(json_body["example"]["dataframe_records"][0]["origin"].is_string());
    let report = check(&["compare", &served.url, work.path().to_str().unwrap()]);
    for m in models {
        let kind = m["kind"].as_str().unwrap();
        let r = &report[kind];
        assert_eq!(r["status"], 200, "{kind}: {r}");
        assert_eq!(r["rows"], 3000, "{kind}: {r}");
        assert!(
            r["max_diff_onnxruntime"].as_f64().unwrap() <= 1e-5,
            "{kind}: {r}"
        );
        assert_eq!(r["labels_equal_onnxruntime"], true, "{kind}: {r}");
        // Where tarn differs from scikit-learn, onnxruntime differs on the very same rows:
        // skl2onnx's float32 export of tree ensembles rounds split thresholds to float32 (a
        // property of the exported file, ~1% of rows here). Linear models match everywhere.
        assert_eq!(r["same_rows_as_onnxruntime"], true, "{kind}: {r}");
        let off = r["rows_off_sklearn"].as_i64().unwrap();
        if kind.starts_with("logistic") {
            assert_eq!(off, 0, "{kind}: {r}");
        } else {
            assert!(off <= 60, "{kind}: {r}");
        }
    }

    // The input schema is checked before inference: a 400 naming the column.
    rt.block_on(async {
        let url = format!("{}/endpoints/skl_logistic/invocations", served.url);
        let row = r#""month": 1.0, "day": 2.0, "dep_delay": 3.0, "distance": 200.0, "hour": 9.0, "origin": "JFK""#;
        for (body, column) in [
            (format!(r#"{{"dataframe_records": [{{{row}}}]}}"#), "carrier"),
            (
                format!(r#"{{"dataframe_records": [{{{row}, "carrier": 5}}]}}"#),
                "carrier",
            ),
            (
                r#"{"dataframe_records": [{"month": "may", "day": 2.0, "dep_delay": 3.0, "distance": 200.0, "hour": 9.0, "origin": "JFK", "carrier": "UA"}]}"#.to_string(),
                "month",
            ),
        ] {
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400);
            let e: serde_json::Value = r.json().await.unwrap();
            assert_eq!(e["error_code"], "BAD_REQUEST");
            assert!(
                e["message"].as_str().unwrap().contains(&format!("`{column}`")),
                "{e}"
            );
        }
    });
    served.stop();
}

/// A started quickstart lake with endpoint `delays` (models:/delays@champion), served.
fn deployed(extra_yml: &str) -> (tempfile::TempDir, PathBuf, Served) {
    deployed_with(extra_yml, &[], false)
}

/// `tarn endpoints deploy delays` following models:/delays@champion, logging to flights.
fn deploy_delays(lake: &Path, args: &[&str]) {
    let mut deploy = vec![
        "endpoints",
        "deploy",
        "delays",
        "--model",
        "models:/delays@champion",
        "--log-domain",
        "flights",
    ];
    deploy.extend_from_slice(args);
    ok(&tarn(lake, &deploy));
}

/// [`deployed`], with more `tarn endpoints deploy` arguments, after training and approving
/// version 2 when `second` is set.
fn deployed_with(
    extra_yml: &str,
    args: &[&str],
    second: bool,
) -> (tempfile::TempDir, PathBuf, Served) {
    let (dir, lake) = quickstart();
    if !extra_yml.is_empty() {
        let yml = std::fs::read_to_string(lake.join("tarn.yml")).unwrap();
        std::fs::write(lake.join("tarn.yml"), format!("{yml}{extra_yml}")).unwrap();
    }
    if second {
        let trained = json(&ok(&tarn(&lake, &["train", "delays", "--format", "json"])));
        assert_eq!(trained["registered"]["version"], "2", "{trained}");
        ok(&tarn(
            &lake,
            &["models", "approve", "delays", "2", "--reason", "retrained"],
        ));
    }
    deploy_delays(&lake, args);
    let served = Served::start(&lake, &["--endpoint-poll-ms", "200"]);
    (dir, lake, served)
}

/// The bodies `mlflow models serve` accepts and refuses get the same status codes (and the
/// accepted ones the same predictions) from tarn, on a model trained by tarn.
#[test]
fn request_bodies_get_mlflow_s_status_codes() {
    let (_dir, _lake, served) = deployed("");
    let model = tempfile::tempdir().unwrap();
    check(&[
        "download",
        &served.url,
        "models:/delays/1",
        model.path().to_str().unwrap(),
    ]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mlflow = Group(
        std::process::Command::new("python3")
            .args(["-m", "mlflow", "models", "serve", "-m"])
            .arg(model.path())
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--env-manager",
                "local",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let mlflow_url = format!("http://127.0.0.1:{port}");
    let rt = runtime();
    rt.block_on(async {
        let client = reqwest::Client::new();
        ready(&client, &format!("{mlflow_url}/ping")).await;
        ready(&client, &format!("{}/endpoints/delays/ping", served.url)).await;
    });
    let cases = check(&[
        "statuses",
        &format!("{}/endpoints/delays", served.url),
        &mlflow_url,
    ]);
    drop(mlflow);
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 18);
    for c in cases {
        if c["case"] == "csv" {
            // MLflow 3.17 cannot read CSV for a model whose signature is made of tensors
            // ("TensorSpec only supports numpy types"); tarn reads it (SageMaker's contract).
            assert_eq!(c["tarn"], 200, "{c}");
            assert!(
                c["mlflow_body"].as_str().unwrap().contains("TensorSpec"),
                "{c}"
            );
            continue;
        }
        assert_eq!(c["tarn"], c["mlflow"], "{c}");
        if c["tarn"] == 200 {
            assert_eq!(
                json(c["tarn_body"].as_str().unwrap()),
                json(c["mlflow_body"].as_str().unwrap()),
                "{c}"
            );
        }
    }
    served.stop();
}

/// The alias moves to another approved version while clients keep sending: no request
/// fails, every answer names the version that made it, and each is logged once.
#[test]
fn alias_moves_under_load_without_a_failed_request() {
    // Version 2: trained again, approved; version 1 serves meanwhile.
    alias_moves_under_load(deployed_with("", &[], true));
}

/// The same on the shared deployment: Postgres for the metadata, the inference table on S3.
#[test]
fn alias_moves_under_load_shared() {
    let (dir, lake) = shared_with_delays(&["1", "2"]);
    ok(&tarn(
        &lake,
        &["models", "alias", "delays", "champion", "1"],
    ));
    deploy_delays(&lake, &[]);
    let served = Served::start(&lake, &["--endpoint-poll-ms", "200"]);
    alias_moves_under_load((dir, lake, served));
}

/// A shared lake (Postgres + S3) with flights and the quickstart's delays model trained and
/// approved as `versions`.
fn shared_with_delays(versions: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = crate::training::flights_lake(tarn_lake::testing::Deployment::Shared);
    let lake = dir.path().to_path_buf();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/quickstart/models/delays/train.yml"
        ),
        lake.join("models/delays/train.yml"),
    )
    .unwrap();
    for &version in versions {
        let trained = json(&ok(&tarn(&lake, &["train", "delays", "--format", "json"])));
        assert_eq!(trained["registered"]["version"], version, "{trained}");
        ok(&tarn(
            &lake,
            &[
                "models", "approve", "delays", version, "--reason", "checked",
            ],
        ));
    }
    (dir, lake)
}

/// Two `tarn serve` nodes on one shared lake serve the same endpoint; traffic spread over
/// both is answered and every answered request is in the inference table once.
#[test]
fn endpoint_traffic_over_two_nodes_is_logged_once_shared() {
    let (_dir, lake) = shared_with_delays(&["1"]);
    ok(&tarn(
        &lake,
        &["models", "alias", "delays", "champion", "1"],
    ));
    deploy_delays(&lake, &[]);
    let a = Served::start(&lake, &["--endpoint-poll-ms", "200"]);
    let b = Served::start(&lake, &["--endpoint-poll-ms", "200"]);
    let rt = runtime();
    let answers = rt.block_on(async {
        let client = reqwest::Client::new();
        for s in [&a.url, &b.url] {
            ready(&client, &format!("{s}/endpoints/delays/ping")).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let on_a = tokio::spawn(load_from(
            format!("{}/endpoints/delays/invocations", a.url),
            records(3),
            0..3,
            stop.clone(),
        ));
        let on_b = tokio::spawn(load_from(
            format!("{}/endpoints/delays/invocations", b.url),
            records(3),
            100..103,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::SeqCst);
        let mut all = on_a.await.unwrap();
        let from_a = all.len();
        all.extend(on_b.await.unwrap());
        assert!(
            from_a > 20 && all.len() - from_a > 20,
            "{from_a} and {}",
            all.len() - from_a
        );
        all
    });
    let failed: Vec<&Answer> = answers.iter().filter(|x| x.status != 200).collect();
    assert!(failed.is_empty(), "{failed:?}");
    a.stop();
    b.stop();
    assert_logged_once(&lake, "flights.service.inference_delays", &answers, 3);
}

fn alias_moves_under_load((_dir, lake, served): (tempfile::TempDir, PathBuf, Served)) {
    let rt = runtime();
    let lake2 = lake.clone();
    let (answers, _) = rt.block_on(load_during(&served.url, "delays", 3, 4, async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        tokio::task::spawn_blocking(move || {
            ok(&tarn(
                &lake2,
                &["models", "alias", "delays", "champion", "2"],
            ))
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }));
    assert!(answers.len() > 100, "{} requests", answers.len());
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.status != 200).collect();
    assert!(failed.is_empty(), "{failed:?}");
    let ones = answers.iter().filter(|a| a.version == "1").count();
    let twos = answers.iter().filter(|a| a.version == "2").count();
    assert!(ones > 0 && twos > 0, "v1 {ones}, v2 {twos}");
    assert_eq!(ones + twos, answers.len());
    let metrics = metrics(&rt, &served.url);
    assert!(
        metrics.contains(
            "tarn_endpoint_requests_total{endpoint=\"delays\",version=\"2\",code=\"200\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("tarn_endpoint_request_duration_seconds_bucket{endpoint=\"delays\",version=\"1\",le=\"+Inf\"}"),
        "{metrics}"
    );
    served.stop();
    assert_logged_once(&lake, "flights.service.inference_delays", &answers, 3);
}

/// A bring-your-own server killed under load: tarn answers 503 while it restarts it, never
/// hangs, and serves again.
#[test]
fn a_killed_bring_your_own_server_is_restarted_and_never_hangs() {
    let pidfile = tempfile::NamedTempFile::new().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/byo_server.py");
    let yml = format!(
        // Under the quickstart's `endpoints:` (its last key).
        "  custom:\n    model: models:/delays@champion\n    log_domain: flights\n    command: [python3, {script}, \"{{port}}\", {}]\n",
        pidfile.path().display()
    );
    let (_dir, lake, served) = deployed(&yml);
    let rt = runtime();
    let pids = pidfile.path().to_path_buf();
    let (answers, (first, second)) =
        rt.block_on(load_during(&served.url, "custom", 2, 4, async move {
            let first = std::fs::read_to_string(&pids).unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            std::process::Command::new("kill")
                .args(["-KILL", first.trim()])
                .status()
                .unwrap();
            // Until it is back and has answered for a while.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let now = std::fs::read_to_string(&pids).unwrap_or_default();
                if now != first && !now.is_empty() {
                    break;
                }
                assert!(Instant::now() < deadline, "never restarted");
            }
            tokio::time::sleep(Duration::from_millis(800)).await;
            let second = std::fs::read_to_string(&pids).unwrap();
            (first, second)
        }));
    assert_ne!(first, second);
    let statuses: std::collections::BTreeSet<u16> = answers.iter().map(|a| a.status).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "the restart was never seen: {statuses:?}"
    );
    let slowest = answers.iter().map(|a| a.took).max().unwrap();
    assert!(
        slowest < Duration::from_secs(5),
        "a request hung for {slowest:?}"
    );
    // Serving again after the restart: the last answers are 200.
    let mut last: Vec<&Answer> = answers.iter().collect();
    last.sort_by_key(|a| {
        a.request_id
            .rsplit('-')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
    });
    assert_eq!(last.last().unwrap().status, 200);
    let metrics = metrics(&rt, &served.url);
    assert!(
        metrics.contains("tarn_endpoint_server_restarts_total{endpoint=\"custom\"} 1"),
        "{metrics}"
    );
    served.stop();
    // What the server answered is in the inference table, once per answered request.
    assert_logged_once(&lake, "flights.service.inference_custom", &answers, 2);
}

/// The store of the inference table fails: answers keep coming, the records wait on local
/// disk, and land exactly once when the store is back.
#[test]
fn inference_records_wait_on_disk_while_the_store_fails() {
    let (_dir, lake, served) = deployed("");
    // The table's folder is taken by a file: every write to it fails.
    let table = lake.join("lake/dev/flights/service/inference_delays");
    std::fs::create_dir_all(table.parent().unwrap()).unwrap();
    std::fs::write(&table, "in the way").unwrap();
    let rt = runtime();
    let answers = send_each(&rt, &served.url, "delays", &records(2), 20, "load-0");
    assert!(answers.iter().all(|a| a.status == 200));
    let buffered = |rt: &tokio::runtime::Runtime| -> (f64, f64) {
        let text = metrics(rt, &served.url);
        let value = |name: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(&format!("{name}{{endpoint=\"delays\"}}")))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1.0)
        };
        (
            value("tarn_inference_log_buffered"),
            value("tarn_inference_log_written_total"),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while buffered(&rt).0 < 40.0 {
        assert!(
            Instant::now() < deadline,
            "never buffered: {:?}",
            buffered(&rt)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let files: Vec<_> = std::fs::read_dir(lake.join(".tarn/inference/delays"))
        .unwrap()
        .collect();
    assert!(!files.is_empty());
    // The store is back.
    std::fs::remove_file(&table).unwrap();
    while buffered(&rt) != (0.0, 40.0) {
        assert!(
            Instant::now() < deadline,
            "never flushed: {:?}",
            buffered(&rt)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    served.stop();
    assert_logged_once(&lake, "flights.service.inference_delays", &answers, 2);
    // The rows that waited on disk have their typed columns too.
    let typed = json(&ok(&tarn(
        &lake,
        &[
            "sql",
            "SELECT count(distance) AS d, count(variable) AS v FROM flights.service.inference_delays",
            "--format",
            "json",
        ],
    )));
    assert_eq!(
        (typed[0]["d"].as_i64(), typed[0]["v"].as_i64()),
        (Some(40), Some(40)),
        "{typed}"
    );
}

/// Sends `body` to endpoint `endpoint` `n` times, one after another, with request ids
/// `PREFIX-K`, once the endpoint is ready.
fn send_each(
    rt: &tokio::runtime::Runtime,
    base: &str,
    endpoint: &str,
    body: &str,
    n: usize,
    prefix: &str,
) -> Vec<Answer> {
    let url = format!("{base}/endpoints/{endpoint}/invocations");
    rt.block_on(async {
        let client = reqwest::Client::new();
        ready(&client, &format!("{base}/endpoints/{endpoint}/ping")).await;
        let mut answers = Vec::new();
        for k in 0..n {
            let id = format!("{prefix}-{k}");
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-request-id", &id)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            answers.push(Answer {
                status: r.status().as_u16(),
                version: r.headers()["x-tarn-model-version"].to_str().unwrap().into(),
                request_id: id,
                took: Duration::ZERO,
            });
        }
        answers
    })
}

/// Answers `query` (JSON rows) once it runs and `ready` accepts them, within 20 s (the log
/// commits every second; its table exists after the first commit).
fn sql_until(
    lake: &Path,
    query: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = tarn(lake, &["sql", query, "--format", "json"]);
        let got = match out.status.success() {
            true => json(&String::from_utf8_lossy(&out.stdout)),
            false => serde_json::Value::String(String::from_utf8_lossy(&out.stderr).into()),
        };
        if ready(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "{query}: {got}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The inference table has a typed column per input field and per output beside the JSON
/// text; a version with another signature adds its columns (a new catalog version) and
/// keeps every row already logged.
#[test]
fn the_inference_table_types_every_field_and_evolves_with_the_signature() {
    let (_dir, lake, served) = deployed("");
    let rt = runtime();
    let table = "flights.service.inference_delays";
    let first = send_each(&rt, &served.url, "delays", &records(2), 5, "v1");
    assert!(first.iter().all(|a| a.status == 200 && a.version == "1"));
    let rows = sql_until(
        &lake,
        &format!("SELECT dep_delay, distance, hour, variable, prediction FROM {table} ORDER BY request_id, \"row\""),
        |g| g.as_array().is_some_and(|a| a.len() == 10),
    );
    for r in rows.as_array().unwrap() {
        assert_eq!(r["distance"], 1400.0, "{r}");
        assert_eq!(r["dep_delay"], 12.0, "{r}");
        // The typed prediction is the one the JSON column keeps.
        let logged = json(r["prediction"].as_str().unwrap());
        assert_eq!(r["variable"].as_f64(), logged["variable"].as_f64(), "{r}");
        assert!(r["variable"].as_f64().is_some(), "{r}");
    }
    let shown = json(&ok(&tarn(
        &lake,
        &["table", "show", table, "--format", "json"],
    )));
    let text = shown.to_string();
    assert!(
        text.contains(r#""name":"distance""#) && !text.contains(r#""name":"month""#),
        "{shown}"
    );
    // Version 2 also reads the month: the table gains a column and a catalog version.
    let spec = lake.join("models/delays/train.yml");
    let yml = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        yml.replace("day, arr_delay", "day, month, arr_delay"),
    )
    .unwrap();
    let trained = json(&ok(&tarn(&lake, &["train", "delays", "--format", "json"])));
    assert_eq!(trained["registered"]["version"], "2", "{trained}");
    ok(&tarn(
        &lake,
        &[
            "models",
            "approve",
            "delays",
            "2",
            "--reason",
            "reads the month",
        ],
    ));
    ok(&tarn(
        &lake,
        &["models", "alias", "delays", "champion", "2"],
    ));
    let with_month = records(2).replace(r#""day": 3}"#, r#""day": 3, "month": 7}"#);
    let deadline = Instant::now() + Duration::from_secs(20);
    while send_each(&rt, &served.url, "delays", &with_month, 1, "probe")[0].version != "2" {
        assert!(Instant::now() < deadline, "version 2 is never served");
        std::thread::sleep(Duration::from_millis(200));
    }
    let second = send_each(&rt, &served.url, "delays", &with_month, 5, "v2");
    assert!(second.iter().all(|a| a.status == 200 && a.version == "2"));
    let by_version = sql_until(
        &lake,
        &format!("SELECT model_version, count(*) AS n, count(month) AS m, max(month) AS top, count(variable) AS v FROM {table} WHERE request_id LIKE 'v%' GROUP BY model_version ORDER BY model_version"),
        |g| g.as_array().is_some_and(|a| a.len() == 2 && a[1]["n"] == 10),
    );
    assert_eq!(by_version[0]["n"], 10, "{by_version}");
    assert_eq!(
        by_version[0]["m"], 0,
        "version 1's rows have no month: {by_version}"
    );
    assert_eq!(by_version[0]["v"], 10, "{by_version}");
    assert_eq!(by_version[1]["m"], 10, "{by_version}");
    assert_eq!(by_version[1]["top"], 7.0, "{by_version}");
    served.stop();
    let shown = json(&ok(&tarn(
        &lake,
        &["table", "show", table, "--format", "json"],
    )));
    let versions = shown["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{shown}");
    assert_eq!(
        versions[1]["reason"], "the schema gained columns",
        "{shown}"
    );
    let named = |v: &serde_json::Value, c: &str| {
        v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == c)
    };
    assert!(
        !named(&versions[0], "month") && named(&versions[1], "month"),
        "{shown}"
    );
    assert!(
        named(&versions[1], "variable") && named(&versions[1], "features"),
        "{shown}"
    );
}

/// A canary takes its share of the traffic; both versions answer and are told apart.
#[test]
fn a_canary_takes_its_share() {
    let (_dir, lake, served) = deployed_with(
        "",
        &["--canary", "models:/delays/2", "--canary-percent", "25"],
        true,
    );
    let shown = json(&ok(&tarn(
        &lake,
        &["endpoints", "show", "delays", "--format", "json"],
    )));
    assert_eq!(shown["serves"], "delays v1 + delays v2", "{shown}");
    let rt = runtime();
    let (answers, _) = rt.block_on(load_during(&served.url, "delays", 1, 2, async {
        tokio::time::sleep(Duration::from_millis(1500)).await
    }));
    assert!(answers.iter().all(|a| a.status == 200));
    // The quickstart's tarn.yml declares one more endpoint, served from the start.
    let listed = json(&ok(&tarn(
        &lake,
        &["endpoints", "list", "--format", "json"],
    )));
    assert_eq!(listed[0]["name"], "arrival_delay", "{listed}");
    assert_eq!(listed[0]["source"], "tarn.yml", "{listed}");
    assert_eq!(listed[0]["serves"], "delays v1", "{listed}");
    let share = answers.iter().filter(|a| a.version == "2").count() as f64 / answers.len() as f64;
    assert!(
        (0.2..0.3).contains(&share),
        "canary share {share} of {}",
        answers.len()
    );
    served.stop();
}

/// A `python_function` model (scikit-learn logged with mlflow.sklearn, no ONNX) is served
/// behind MLflow's scoring server: same predictions as the model, logged like any other.
#[test]
fn a_python_function_model_runs_behind_mlflow_s_scoring_server() {
    let (dir, csv, served) = empty_lake();
    let got = check(&["register-pyfunc", &served.url, csv.to_str().unwrap()]);
    let version = got["version"].as_str().unwrap();
    ok(&tarn(
        dir.path(),
        &[
            "models",
            "approve",
            "sk_linear",
            version,
            "--reason",
            "checked",
        ],
    ));
    ok(&tarn(
        dir.path(),
        &[
            "endpoints",
            "deploy",
            "linear",
            "--model",
            &format!("models:/sk_linear/{version}"),
        ],
    ));
    let rt = runtime();
    let (status, model_version, answer, listed) = rt.block_on(async {
        let client = reqwest::Client::new();
        ready(&client, &format!("{}/endpoints/linear/ping", served.url)).await;
        let r = client
            .post(format!("{}/endpoints/linear/invocations", served.url))
            .header("content-type", "application/json")
            .header("x-request-id", "load-0-1")
            .body(serde_json::json!({"dataframe_records": got["rows"]}).to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v = r.headers()["x-tarn-model-version"]
            .to_str()
            .unwrap()
            .to_string();
        let answer: serde_json::Value = r.json().await.unwrap();
        let listed: serde_json::Value = client
            .get(format!("{}/api/v1/endpoints", served.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (status, v, answer, listed)
    });
    assert_eq!(status, 200, "{answer}");
    assert_eq!(model_version, version);
    assert_eq!(listed[0]["runtime"], "process", "{listed}");
    let want = got["predictions"].as_array().unwrap();
    let have = answer["predictions"].as_array().unwrap();
    assert_eq!(have.len(), want.len(), "{answer}");
    for (h, w) in have.iter().zip(want) {
        assert!(
            (h.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-9,
            "{answer}"
        );
    }
    served.stop();
    let answers = [Answer {
        status: 200,
        request_id: "load-0-1".into(),
        version: version.to_string(),
        took: Duration::ZERO,
    }];
    assert_logged_once(dir.path(), "ml.service.inference_linear", &answers, 3);
}

/// Limits: a body over max_body is a 413, and a full queue answers 503 at once (with
/// Retry-After) instead of making requests wait without bound.
#[test]
fn limits_refuse_at_once_instead_of_waiting() {
    let (_dir, _lake, served) = deployed_with(
        "",
        &["--max-body", "2KiB", "--max-queue", "1", "--max-batch", "1"],
        false,
    );
    let rt = runtime();
    let url = format!("{}/endpoints/delays/invocations", served.url);
    let (big, answers) = rt.block_on(async {
        let client = reqwest::Client::new();
        ready(&client, &format!("{}/endpoints/delays/ping", served.url)).await;
        let big = client
            .post(&url)
            .header("content-type", "application/json")
            .body(records(100))
            .send()
            .await
            .unwrap();
        let big = (big.status().as_u16(), big.text().await.unwrap());
        let sleep = tokio::time::sleep(Duration::from_millis(1500));
        (
            big,
            load_during(&served.url, "delays", 20, 32, sleep).await.0,
        )
    });
    assert_eq!(big.0, 413, "{}", big.1);
    assert!(big.1.contains("max_body"), "{}", big.1);
    let shed = answers.iter().filter(|a| a.status == 503).count();
    let good = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(shed + good, answers.len());
    assert!(shed > 0 && good > 0, "shed {shed}, answered {good}");
    let slowest = answers.iter().map(|a| a.took).max().unwrap();
    assert!(
        slowest < Duration::from_secs(2),
        "a request waited {slowest:?}"
    );
    served.stop();
}
