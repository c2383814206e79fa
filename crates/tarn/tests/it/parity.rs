//! MLflow parity: one broad client script (`mlflow_parity.py`: experiments, runs, NaN and
//! infinite metrics, duplicate points, autolog, artifacts, logged models and their metrics,
//! the registry, evaluate, tracing, prompts, datasets, errors and limits) run against a real
//! `mlflow server` 3.17.2 and against `tarn serve`, each on a fresh store, in the same test;
//! the two answers are compared call by call. A difference is either fixed or listed in
//! `DELIBERATE` with the reason.

use crate::server::Served;
use crate::{ok, tarn, Group};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use tarn_lake::testing::{fresh_yml, Deployment};

/// Calls whose answers differ on purpose, and why. Empty: tarn answers every call of the
/// script as mlflow server does.
const DELIBERATE: &[(&str, &str)] = &[];

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/mlflow_parity.py");

/// A `mlflow server` on a fresh SQLite store and artifact folder under `dir`, stopped when
/// dropped.
struct MlflowServer {
    /// Killed with its workers when the test ends, passed or failed.
    _group: Group,
    url: String,
}

impl MlflowServer {
    fn start(dir: &Path) -> MlflowServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("mlflow-server.log")).unwrap();
        let child = Command::new("mlflow")
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--workers", "1"])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .current_dir(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group: the server's workers and job consumers go with it.
            .process_group(0)
            .spawn()
            .expect("mlflow server starts (scripts/test installs mlflow)");
        let url = format!("http://127.0.0.1:{port}");
        let server = MlflowServer {
            _group: Group(child),
            url,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                drop(s);
                if health(&server.url) {
                    return server;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!(
            "mlflow server did not answer /health within 120 s:\n{}",
            std::fs::read_to_string(dir.join("mlflow-server.log")).unwrap_or_default()
        );
    }
}

fn health(url: &str) -> bool {
    Command::new("curl")
        .args(["-sf", &format!("{url}/health")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the script against `url` from `work`; answers call name -> result.
fn answers(url: &str, work: &Path) -> serde_json::Map<String, serde_json::Value> {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .current_dir(work)
        .env("MLFLOW_TRACKING_URI", url)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .output()
        .expect("python3 runs (scripts/test installs mlflow)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the parity script failed against {url}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

fn the_mlflow_client_gets_the_same_answers_from_tarn_as_from_mlflow_server(d: Deployment) {
    let work = tempfile::tempdir().unwrap();
    let mlflow_dir = work.path().join("mlflow");
    let (mlflow_work, tarn_work) = (work.path().join("client-m"), work.path().join("client-t"));
    for p in [&mlflow_dir, &mlflow_work, &tarn_work] {
        std::fs::create_dir_all(p).unwrap();
    }
    let expected = {
        let server = MlflowServer::start(&mlflow_dir);
        answers(&server.url, &mlflow_work)
    };

    let lake = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let place = rt.block_on(fresh_yml(d, lake.path()));
    std::fs::write(
        lake.path().join("tarn.yml"),
        format!("lake: parity\ndomains: [flights]\n{place}"),
    )
    .unwrap();
    let served = Served::start(lake.path(), &[]);
    let got = answers(&served.url, &tarn_work);
    let log = served.stop();

    // The script's calls are the same on both sides, and they did something.
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    assert!(expected.len() >= 50, "{}", expected.len());
    for (call, want) in &expected {
        let have = &got[call];
        if let Some((_, why)) = DELIBERATE.iter().find(|(c, _)| c == call) {
            assert_ne!(
                want, have,
                "{call} is listed as a deliberate difference ({why}) but now agrees: remove it from DELIBERATE"
            );
            continue;
        }
        assert_eq!(
            want, have,
            "{call}: mlflow server answered {want}, tarn {have}\ntarn's log:\n{log}"
        );
    }
    // What mlflow server cannot do: the spans of every trace are rows of a lake table.
    let spans = ok(&tarn(
        lake.path(),
        &[
            "sql",
            "SELECT name, span_type, inputs FROM flights.service.mlflow_spans WHERE name = 'add' ORDER BY inputs",
            "--format",
            "json",
        ],
    ));
    let rows: serde_json::Value = serde_json::from_str(&spans).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([
            {"name": "add", "span_type": "TOOL", "inputs": "{\"a\": 10, \"b\": 1}"},
            {"name": "add", "span_type": "TOOL", "inputs": "{\"a\": 18, \"b\": 1}"},
            {"name": "add", "span_type": "TOOL", "inputs": "{\"a\": 6, \"b\": 1}"}
        ]),
        "{spans}"
    );
}

#[test]
fn the_mlflow_client_gets_the_same_answers_from_tarn_as_from_mlflow_server_embedded() {
    the_mlflow_client_gets_the_same_answers_from_tarn_as_from_mlflow_server(Deployment::Embedded);
}

#[test]
fn the_mlflow_client_gets_the_same_answers_from_tarn_as_from_mlflow_server_shared() {
    the_mlflow_client_gets_the_same_answers_from_tarn_as_from_mlflow_server(Deployment::Shared);
}
