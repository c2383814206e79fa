//! ML tracking as a data scientist does it: the real `mlflow` client (3.17.2) pointed at
//! `tarn serve`, on both deployments.

use crate::server::Served;
use crate::{ok, tarn};
use tarn_lake::testing::{fresh_yml, Deployment};

fn mlflow_client_tracks_runs(deployment: Deployment) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let place = rt.block_on(fresh_yml(deployment, dir.path()));
    std::fs::write(
        dir.path().join("tarn.yml"),
        format!("lake: ml\ndomains: [flights]\n{place}"),
    )
    .unwrap();
    let served = Served::start(dir.path(), &[]);
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/mlflow_tracking.py"
        ))
        .env("MLFLOW_TRACKING_URI", &served.url)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .output()
        .expect("python3 runs (scripts/test installs mlflow)");
    let log = served.stop();
    assert!(
        out.status.success(),
        "{}\n{}\nserver log:\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(got["experiment"], "flight-delays");
    assert_eq!(got["status"], "FINISHED");
    assert_eq!(got["run_name"], "baseline");
    assert_eq!(
        got["params"],
        serde_json::json!({"model": "mean", "features": "carrier,origin", "window": "7"})
    );
    // The latest value of a metric is the one of the highest step.
    assert_eq!(
        got["metrics"],
        serde_json::json!({"rmse": 21.0, "mae": 12.5, "r2": 0.41})
    );
    assert_eq!(
        got["tags"],
        serde_json::json!({"team": "ml-platform", "stage": "dev"})
    );
    assert_eq!(got["best"], serde_json::json!([true]));
    assert_eq!(got["ordered"], serde_json::json!(["tree", "baseline"]));
    assert_eq!(
        got["history"],
        serde_json::json!([[0, 30.5], [1, 25.25], [2, 21.0]])
    );
    assert_eq!(got["changed_param"], "INVALID_PARAMETER_VALUE");
    assert_eq!(got["missing_run"], "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(got["after_delete"], serde_json::json!(["baseline"]));
    assert_eq!(
        got["found"],
        serde_json::json!(["flight-delays", "flight-cancellations"])
    );
    assert_eq!(got["by_tag"], serde_json::json!(["flight-delays"]));
    // Artifacts went through tarn serve into the lake's object store and came back whole.
    assert_eq!(
        got["artifacts"],
        serde_json::json!([["notes.txt", false], ["plots", true]])
    );
    assert_eq!(
        got["deep"],
        serde_json::json!([["plots/by_month/jan.csv", 1048576]])
    );
    assert_eq!(got["same_bytes"], true);
    assert_eq!(got["notes"], "baseline: the mean delay per carrier\n");
    assert_eq!(got["deleted_stage"], "deleted");
    assert_eq!(got["experiment_tags"]["owner"], "data-team");

    // The same runs from the command line.
    let exps = ok(&tarn(dir.path(), &["experiments", "list"]));
    assert!(
        exps.contains("flight-delays") && exps.contains("Default"),
        "{exps}"
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(&tarn(
        dir.path(),
        &[
            "runs",
            "list",
            "--experiment",
            "flight-delays",
            "--filter",
            "metrics.rmse < 25",
            "--order-by",
            "metrics.rmse DESC",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["info"]["run_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["baseline", "tree"]);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["info"]["run_id"].as_str().unwrap())
        .collect();
    let compared = ok(&tarn(dir.path(), &["runs", "compare", ids[0], ids[1]]));
    assert!(
        compared.contains("params.depth") && compared.contains("metrics.rmse"),
        "{compared}"
    );
    let bad = tarn(
        dir.path(),
        &[
            "runs",
            "list",
            "--experiment",
            "flight-delays",
            "--filter",
            "metrics.rmse <",
        ],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("incomplete filter"));
}

#[test]
fn mlflow_client_tracks_runs_embedded() {
    mlflow_client_tracks_runs(Deployment::Embedded);
}

#[test]
fn mlflow_client_tracks_runs_shared() {
    mlflow_client_tracks_runs(Deployment::Shared);
}

/// Runs a phase of `mlflow_registry.py` against `url`; answers what it printed.
fn registry_phase(url: &str, phase: &str, work: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/mlflow_registry.py"
        ))
        .args([phase, work.to_str().unwrap()])
        .env("MLFLOW_TRACKING_URI", url)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("WEATHER_CSV", crate::shared_data().join("weather.csv"))
        .output()
        .expect("python3 runs (scripts/test installs mlflow and scikit-learn)");
    assert!(
        out.status.success(),
        "{phase}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// `log_model(..., registered_model_name=...)`, an approval through `tarn models approve`
/// that reaches a topic's webhook, then an alias and a stage and `pyfunc.load_model` by
/// alias, version and stage predicting what the trained model predicted.
fn registry_with_approvals(deployment: Deployment) {
    let (hook, received) = crate::pipelines::receiver();
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let place = rt.block_on(fresh_yml(deployment, dir.path()));
    std::fs::write(
        dir.path().join("tarn.yml"),
        format!(
            "lake: ml\ndomains: [weather]\n{place}topics:\n  - name: approvals\n    events: [model.version.approved]\n    subscriptions:\n      - protocol: webhook\n        endpoint: {hook}\n"
        ),
    )
    .unwrap();
    // A pipeline that starts when a version is approved (EventBridge-style rule on the
    // registry's events).
    let promote = dir.path().join("pipelines/promote");
    std::fs::create_dir_all(&promote).unwrap();
    std::fs::write(
        promote.join("config.yml"),
        "name: promote\ndomain: weather\nlayers: {origin: raw, target: trusted}\ntriggers:\n  - event_rule: {source: [tarn.registry], detail_type: [model.version.approved]}\nsteps:\n  Announce:\n    type: command\n    properties:\n      command: [cat]\n",
    )
    .unwrap();
    let served = Served::start(dir.path(), &[]);
    let trained = registry_phase(&served.url, "train", work.path());
    assert_eq!(trained["version"], "1", "{trained}");
    assert_eq!(trained["run_matches"], true);
    let model_uri = trained["model_uri"].as_str().unwrap();
    assert!(model_uri.starts_with("models:/m-"), "{model_uri}");
    assert_eq!(trained["source"], model_uri);
    assert_eq!(trained["logged_status"], "READY");
    assert_eq!(
        trained["outputs"],
        serde_json::json!([model_uri.trim_start_matches("models:/")])
    );
    assert_eq!(
        trained["datasets"],
        serde_json::json!([["weather-2013", "training"]])
    );
    assert_eq!(trained["alias_refused"], "INVALID_PARAMETER_VALUE");
    assert_eq!(trained["missing_version"], "RESOURCE_DOES_NOT_EXIST");

    // The new version waits for approval.
    let versions: serde_json::Value = serde_json::from_str(&ok(&tarn(
        dir.path(),
        &["models", "versions", "humidity", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(versions[0]["approval"]["status"], "PendingManualApproval");
    let refused = tarn(
        dir.path(),
        &["models", "alias", "humidity", "champion", "1"],
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("tarn models approve humidity 1"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Approved through the server's API, as a reviewer elsewhere would.
    let approved = ok(&tarn(
        dir.path(),
        &[
            "--server",
            &served.url,
            "models",
            "approve",
            "humidity",
            "1",
            "--reason",
            "r2 holds on the 2013 holdout",
        ],
    ));
    assert!(approved.contains("is Approved"), "{approved}");
    // The approval reaches the topic's subscriber with who, what and why.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(received.join().unwrap()));
    let body = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the approval reaches the topic's webhook within a minute");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["topic"], "approvals", "{body}");
    let subject = body["subject"].as_str().unwrap();
    assert!(
        subject.contains("model.version.approved")
            && subject.contains("humidity version 1")
            && subject.contains("r2 holds on the 2013 holdout"),
        "{subject}"
    );
    assert_eq!(body["detail"]["approval_status"], "Approved");
    assert_eq!(body["detail"]["previous_status"], "PendingManualApproval");
    // ...and starts the pipeline listening for approvals, once, with the event as its input.
    let mut promoted = serde_json::Value::Null;
    for _ in 0..120 {
        let list: serde_json::Value = serde_json::from_str(&ok(&tarn(
            dir.path(),
            &["executions", "list", "--format", "json"],
        )))
        .unwrap();
        if let Some(e) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["pipeline"] == "promote" && e["status"] == "succeeded")
        {
            promoted = e.clone();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(promoted["input"]["name"], "humidity", "{promoted}");
    assert_eq!(promoted["input"]["detail_type"], "model.version.approved");

    let served_phase = registry_phase(&served.url, "serve", work.path());
    for uri in [
        "models:/humidity@champion",
        "models:/humidity/1",
        "models:/humidity/Production",
    ] {
        assert_eq!(
            served_phase[uri], true,
            "{uri} predicts differently: {served_phase}"
        );
    }
    assert_eq!(served_phase["by_alias"], "1");
    assert_eq!(served_phase["latest_production"], serde_json::json!(["1"]));
    assert_eq!(served_phase["second"], "2");
    assert_eq!(served_phase["versions"], serde_json::json!(["1", "2"]));
    assert_eq!(served_phase["registered"], serde_json::json!(["humidity"]));
    assert_eq!(
        served_phase["description"],
        "relative humidity from temp and dew point"
    );
    assert_eq!(served_phase["after_delete"], serde_json::json!(["1"]));
    assert_eq!(served_phase["duplicate"], "RESOURCE_ALREADY_EXISTS");
    let log = served.stop();
    let list: serde_json::Value = serde_json::from_str(&ok(&tarn(
        dir.path(),
        &["executions", "list", "--format", "json"],
    )))
    .unwrap();
    let promotions = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["pipeline"] == "promote")
        .count();
    assert_eq!(promotions, 1, "one approval, one execution: {list}");

    // Who did what, from the command line.
    let shown = ok(&tarn(dir.path(), &["models", "show", "humidity"]));
    assert!(
        shown.contains("champion → version 1")
            && shown.contains("Production")
            && shown.contains("r2 holds on the 2013 holdout"),
        "{shown}\n{log}"
    );
    let listed = ok(&tarn(dir.path(), &["models", "list"]));
    assert!(
        listed.contains("humidity") && listed.contains("1 model(s)"),
        "{listed}"
    );
    let exp = ok(&tarn(dir.path(), &["experiments", "show", "humidity"]));
    assert!(exp.contains("1 run(s)") && exp.contains("READY"), "{exp}");
}

#[test]
fn mlflow_registry_with_approvals_embedded() {
    registry_with_approvals(Deployment::Embedded);
}

#[test]
fn mlflow_registry_with_approvals_shared() {
    registry_with_approvals(Deployment::Shared);
}
