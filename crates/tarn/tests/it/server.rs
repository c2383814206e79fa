//! `tarn serve` and the CLI as its client, over real loopback HTTP, on both deployments; and
//! two `tarn load` processes racing into one table.

use crate::{ok, tarn};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use tarn_lake::testing::{fresh_yml, Deployment};

const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart");

/// A fresh lake folder on `deployment`, with the quickstart's contract.
pub(crate) fn lake_dir(deployment: Deployment) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let place = rt.block_on(fresh_yml(deployment, dir.path()));
    std::fs::write(
        dir.path().join("tarn.yml"),
        format!("lake: api\ndomains: [flights]\n{place}"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("contracts")).unwrap();
    std::fs::copy(
        Path::new(QUICKSTART).join("contracts/flights.trusted.flights.yml"),
        dir.path().join("contracts/flights.trusted.flights.yml"),
    )
    .unwrap();
    dir
}

/// A `tarn serve` child on a free loopback port. Its log is drained by a thread from the
/// start (a full stderr pipe would stall the server mid-request).
pub(crate) struct Served {
    child: Child,
    pub url: String,
    log: std::thread::JoinHandle<String>,
}

impl Served {
    pub fn start(dir: &Path, extra: &[&str]) -> Served {
        Served::start_until(dir, extra, false)
    }

    /// Starts as [`Served::start`] does and also waits until the start-up check of the lake
    /// (which records objects found without their event anywhere in a zone) has finished.
    pub fn start_checked(dir: &Path, extra: &[&str]) -> Served {
        Served::start_until(dir, extra, true)
    }

    fn start_until(dir: &Path, extra: &[&str], checked: bool) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tarn"))
            .arg("--dir")
            .arg(dir)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .env_remove("TARN_SERVER")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let mut addr = None;
        while addr.is_none() || checked {
            line.clear();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "tarn serve ended early"
            );
            if let Some(rest) = line.split("listening on http://").nth(1) {
                addr = Some(rest.split_whitespace().next().unwrap().to_string());
            }
            if line.contains("checked the lake at start") && addr.is_some() {
                break;
            }
        }
        let addr = addr.unwrap();
        let log = std::thread::spawn(move || {
            let mut rest = String::new();
            err.read_to_string(&mut rest).ok();
            rest
        });
        Served {
            child,
            url: format!("http://{addr}"),
            log,
        }
    }

    /// SIGKILL, as a crash would; the process is reaped (so its pid is gone).
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, a clean exit, and everything it logged after starting.
    pub fn stop(mut self) -> String {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        let log = std::mem::replace(&mut self.log, std::thread::spawn(String::new));
        log.join().unwrap()
    }
}

/// A test that fails midway still takes its server down (an orphan would hold the test
/// runner's output open).
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tarn --server URL --token TOKEN ARGS...`, run from an empty folder (no lake there).
pub(crate) fn client(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let nowhere = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_tarn"));
    c.arg("--dir").arg(nowhere.path()).args(["--server", url]);
    if let Some(t) = token {
        c.args(["--token", t]);
    }
    c.args(args)
        .env_remove("TARN_TOKEN")
        .output()
        .expect("tarn runs")
}

fn cli_through_the_server(deployment: Deployment) {
    let dir = lake_dir(deployment);
    let writer = ok(&tarn(dir.path(), &["token", "create", "--name", "etl"]));
    let writer = writer.trim().to_string();
    let reader = ok(&tarn(
        dir.path(),
        &["token", "create", "--name", "bi", "--read-only"],
    ));
    let reader = reader.trim().to_string();
    let listed = ok(&tarn(dir.path(), &["token", "list"]));
    assert!(
        listed.contains("etl") && listed.contains("read-only"),
        "{listed}"
    );
    assert!(!listed.contains(&writer), "tokens are never shown again");

    let served = Served::start(dir.path(), &["--auth"]);
    let url = served.url.clone();
    let data = Path::new(QUICKSTART).join("data");
    let w = Some(writer.as_str());

    // Without a token, or with a wrong one: refused, and the message says what to do.
    let refused = client(&url, None, &["ls", "flights/raw"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--token"));
    let bogus = "tarn_0123456789abcdef0123456789abcdef-wrong";
    assert!(!client(&url, Some(bogus), &["tables"]).status.success());

    // The lake core's commands, through the server.
    let landed = ok(&client(
        &url,
        w,
        &[
            "land",
            data.to_str().unwrap(),
            "flights/raw/qs",
            "--format",
            "json",
        ],
    ));
    let landed: serde_json::Value = serde_json::from_str(&landed).unwrap();
    // The quickstart's data folder: airlines, a sample of flights, one more day of flights.
    assert_eq!(landed.as_array().unwrap().len(), 3, "{landed}");
    let ls = ok(&client(&url, w, &["ls", "flights/raw/qs"]));
    assert!(
        ls.contains("qs/airlines.csv") && ls.contains("qs/flights.csv"),
        "{ls}"
    );
    let events = ok(&client(&url, w, &["events", "--format", "json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&events)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let crawl = ok(&client(&url, w, &["crawl", "flights/raw"]));
    assert!(crawl.contains("created   flights.raw.qs"), "{crawl}");
    let tables = ok(&client(&url, w, &["tables", "flights.raw"]));
    assert!(tables.contains("flights.raw.qs"), "{tables}");

    // A local file is sent to the server; an object is loaded where it is.
    let load = ok(&client(
        &url,
        w,
        &[
            "load",
            "flights.trusted.flights",
            data.join("flights.csv").to_str().unwrap(),
            "--format",
            "json",
        ],
    ));
    let load: serde_json::Value = serde_json::from_str(&load).unwrap();
    assert_eq!(
        load["rows_written"].as_u64().unwrap() + load["rows_rejected"].as_u64().unwrap(),
        3000,
        "{load}"
    );
    assert_eq!(load["source"], "flights.csv");
    let again = ok(&client(
        &url,
        w,
        &[
            "load",
            "flights.trusted.airlines",
            "flights/raw/qs/airlines.csv",
            "--format",
            "json",
        ],
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&again).unwrap()["rows_written"],
        16
    );
    let show = ok(&client(
        &url,
        w,
        &["table", "show", "flights.trusted.flights"],
    ));
    assert!(show.contains("dep_delay"), "{show}");
    let history = ok(&client(
        &url,
        w,
        &[
            "table",
            "history",
            "flights.trusted.flights",
            "--format",
            "json",
        ],
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&history)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let csv = ok(&client(
        &url,
        w,
        &[
            "sql",
            "SELECT count(*) AS n FROM flights.trusted.flights",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(csv.trim(), format!("n\n{}", load["rows_written"]));
    let out_file = dir.path().join("by_carrier.parquet");
    ok(&client(
        &url,
        w,
        &[
            "sql",
            "SELECT carrier, count(*) AS n FROM flights.trusted.flights GROUP BY carrier",
            "--format",
            "parquet",
            "--output",
            out_file.to_str().unwrap(),
        ],
    ));
    assert!(std::fs::read(&out_file).unwrap().starts_with(b"PAR1"));
    let into = ok(&client(
        &url,
        w,
        &[
            "sql",
            "SELECT origin, count(*) AS n FROM flights.trusted.flights GROUP BY origin",
            "--into",
            "flights.service.by_origin",
        ],
    ));
    assert!(into.contains("materialised 3 rows"), "{into}");

    // The read-only token queries but cannot write.
    let r = Some(reader.as_str());
    ok(&client(&url, r, &["sql", "SELECT 1"]));
    let denied = client(
        &url,
        r,
        &[
            "land",
            data.join("airlines.csv").to_str().unwrap(),
            "flights/raw/x.csv",
        ],
    );
    assert!(String::from_utf8_lossy(&denied.stderr).contains("read-only"));
    let denied = client(&url, r, &["crawl"]);
    assert!(!denied.status.success());

    // Failed auth is in the log, the token is not.
    let log = served.stop();
    assert!(log.contains("auth failed"), "{log}");
    assert!(!log.contains(bogus) && !log.contains(&writer) && !log.contains(&reader));
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let dir = lake_dir(Deployment::Embedded);
    let token = ok(&tarn(dir.path(), &["token", "create", "--name", "fuzz"]));
    let token = token.trim().to_string();
    let served = Served::start(dir.path(), &["--auth"]);
    let url = served.url.clone();
    let t = Some(token.as_str());
    let airlines = Path::new(QUICKSTART).join("data/airlines.csv");
    ok(&client(
        &url,
        t,
        &[
            "land",
            airlines.to_str().unwrap(),
            "flights/raw/airlines/airlines.csv",
        ],
    ));
    ok(&client(&url, t, &["crawl"]));
    ok(&client(
        &url,
        t,
        &[
            "load",
            "flights.trusted.airlines",
            "flights/raw/airlines/airlines.csv",
        ],
    ));
    let report = Command::new("schemathesis")
        .args(["run", &format!("{url}/openapi.json")])
        .args(["--checks", "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance"])
        .args(["--phases", "coverage,fuzzing,stateful", "--max-examples", "25", "--seed", "7", "--no-color"])
        .args(["--request-timeout", "30"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .output()
        .expect("schemathesis runs (scripts/test installs requirements-test.txt)");
    assert!(
        report.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr)
    );
    served.stop();
}

#[test]
fn the_cli_works_through_the_server_embedded() {
    cli_through_the_server(Deployment::Embedded);
}

#[test]
fn the_cli_works_through_the_server_shared() {
    cli_through_the_server(Deployment::Shared);
}

fn two_loads_at_once(deployment: Deployment) {
    let dir = lake_dir(deployment);
    let flights: PathBuf = crate::flights_csv(dir.path());
    let load = || {
        Command::new(env!("CARGO_BIN_EXE_tarn"))
            .arg("--dir")
            .arg(dir.path())
            .args([
                "load",
                "flights.trusted.flights",
                flights.to_str().unwrap(),
                "--again",
                "--format",
                "json",
            ])
            .env_remove("TARN_SERVER")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (load(), load());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let reports: Vec<serde_json::Value> = [ok(&a), ok(&b)]
        .iter()
        .map(|o| serde_json::from_str(o).unwrap())
        .collect();
    // Both landed, one after the other: versions 0 and 1, every row of both kept.
    let mut versions: Vec<i64> = reports
        .iter()
        .map(|r| r["table_version"].as_i64().unwrap())
        .collect();
    versions.sort();
    assert!(versions[1] > versions[0], "{reports:?}");
    let written: u64 = reports
        .iter()
        .map(|r| r["rows_written"].as_u64().unwrap())
        .sum();
    let count = ok(&tarn(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) AS n FROM flights.trusted.flights",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(count.trim(), format!("n\n{written}"));
    let history = ok(&tarn(
        dir.path(),
        &[
            "table",
            "history",
            "flights.trusted.flights",
            "--format",
            "json",
        ],
    ));
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let loads: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["load_id"].as_str())
        .collect();
    for r in &reports {
        assert!(loads.contains(&r["load_id"].as_str().unwrap()), "{history}");
    }
}

#[test]
fn two_loads_into_one_table_both_land_embedded() {
    two_loads_at_once(Deployment::Embedded);
}

#[test]
fn two_loads_into_one_table_both_land_shared() {
    two_loads_at_once(Deployment::Shared);
}
