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
