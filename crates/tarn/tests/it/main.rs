//! The `tarn` command as a user runs it: a real process, real files, its output read back.

mod glue;
mod glue_etl;
mod integrity;
mod monitoring;
mod nodes;
mod parity;
mod pipelines;
mod server;
mod serving;
mod taps;
mod tracking;
mod training;
mod ui;

use std::path::Path;
use std::process::{Command, Output};

/// A process group killed (and reaped) when dropped, also when a test fails.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

fn tarn(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tarn"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("TARN_ENV")
        .env_remove("TARN_WORKSPACE")
        .output()
        .expect("tarn runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Runs `tarn --server URL ARGS` from `cwd` (a folder without a lake).
fn through(url: &str, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tarn"))
        .current_dir(cwd)
        .arg("--server")
        .arg(url)
        .args(args)
        .output()
        .expect("tarn runs")
}

/// Parses JSON a test read back, showing the text when it is not JSON.
fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Runs `tests/it/SCRIPT ARGS` with python3 (and `MLFLOW_TRACKING_URI` when given), requires
/// success, and answers its last line of output as JSON.
fn python_check(script: &str, args: &[&str], tracking: Option<&str>) -> serde_json::Value {
    let mut cmd = Command::new("python3");
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it")
            .join(script),
    )
    .args(args)
    .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0");
    if let Some(url) = tracking {
        cmd.env("MLFLOW_TRACKING_URI", url);
    }
    let out = cmd
        .output()
        .expect("python3 runs (scripts/test installs the packages)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    json_of(String::from_utf8_lossy(&out.stdout).lines().last().unwrap())
}

#[test]
fn help_reads_like_a_table_of_contents() {
    let dir = tempfile::tempdir().unwrap();
    let help = ok(&tarn(dir.path(), &["--help"]));
    for section in [
        "Set up a lake:",
        "Catalog:",
        "Tables and SQL:",
        "quickstart",
        "crawl",
        "sql",
    ] {
        assert!(help.contains(section), "{section} missing from:\n{help}");
    }
    let load = ok(&tarn(dir.path(), &["help", "load"]));
    assert!(
        load.contains("Examples:") && load.contains("--mode merge"),
        "{load}"
    );
}

#[test]
fn quickstart_builds_a_lake_a_user_can_explore() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("qs");
    let out = ok(&tarn(dir.path(), &["quickstart", lake.to_str().unwrap()]));
    assert!(out.contains("rows written"), "{out}");
    assert!(out.contains("flights.service.delays_by_carrier"), "{out}");
    // A delay model trained (tuned, gated), registered, approved, and January scored with it.
    assert!(
        out.contains("registered and approved delays version 1 (alias champion)"),
        "{out}"
    );
    assert!(
        out.contains("flights of January into flights.service.delay_scores (onnx)"),
        "{out}"
    );

    // JSON a program can read: the tables it made.
    let tables: serde_json::Value =
        serde_json::from_str(&ok(&tarn(&lake, &["tables", "--format", "json"]))).unwrap();
    let names: Vec<&str> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "flights.raw.airlines",
            "flights.raw.flights",
            "flights.service.delay_scores",
            "flights.service.delays_by_carrier",
            "flights.trusted.flights",
            "flights.trusted.flights_rejected"
        ]
    );
    // The sample holds 3000 flights; 40 were cancelled (no air_time) and rejected. Then a day
    // of 720 flights landed, and the daily_flights pipeline (a Python lambda step, a SQL step)
    // merged its 717 flown flights into trusted and rejected its 3 cancelled ones.
    let counts = || -> serde_json::Value {
        serde_json::from_str(&ok(&tarn(
            &lake,
            &["sql", "SELECT (SELECT count(*) FROM flights.trusted.flights) AS ok, (SELECT count(*) FROM flights.trusted.flights WHERE day = 5) AS day5, (SELECT count(*) FROM flights.trusted.flights_rejected) AS bad", "--format", "json"],
        )))
        .unwrap()
    };
    let rows = counts();
    assert_eq!(rows[0]["ok"], 2960 + 717);
    assert_eq!(rows[0]["day5"], 717);
    assert_eq!(rows[0]["bad"], 40 + 3);
    assert!(out.contains("CheckFile (succeeded)"), "{out}");
    assert!(out.contains("717 rows of that day merged"), "{out}");
    let execs: serde_json::Value = serde_json::from_str(&ok(&tarn(
        &lake,
        &["executions", "list", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(execs[0]["pipeline"], "daily_flights");
    assert_eq!(execs[0]["status"], "succeeded");

    // A failing run goes through catch/ to the `failures` topic, a file.
    let event = dir.path().join("bad.json");
    std::fs::write(&event, r#"{"key": "flights/2013-01-06.csv"}"#).unwrap();
    let failed = tarn(
        &lake,
        &[
            "pipelines",
            "run",
            "daily_flights",
            "--event",
            event.to_str().unwrap(),
        ],
    );
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("daily_flights failed at CheckFile"),
        "catch/ ran: {err}"
    );
    let topic = std::fs::read_to_string(lake.join(".tarn/failures.log")).unwrap();
    assert!(
        topic.contains("pipeline daily_flights failed at step CheckFile"),
        "{topic}"
    );
    assert!(topic.contains("No such file or directory"), "{topic}");

    // Running it again is safe: same lake, nothing duplicated in raw or trusted.
    ok(&tarn(dir.path(), &["quickstart", lake.to_str().unwrap()]));
    let events: serde_json::Value = serde_json::from_str(&ok(&tarn(
        &lake,
        &["events", "--kind", "object.created", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(events.as_array().unwrap().len(), 3);
    assert_eq!(counts()[0]["ok"], 2960 + 717);
    assert_eq!(
        counts()[0]["bad"],
        40 + 3,
        "the rejected rows are not doubled"
    );

    // `tarn events` shows the newest, and says when there are more.
    let newest = tarn(&lake, &["events", "--limit", "1", "--format", "json"]);
    let all: serde_json::Value = serde_json::from_str(&ok(&tarn(
        &lake,
        &["events", "--limit", "10000", "--format", "json"],
    )))
    .unwrap();
    let last = all.as_array().unwrap().last().unwrap().clone();
    assert_eq!(json_of(&ok(&newest)), serde_json::json!([last]));
    let people = tarn(&lake, &["events", "--limit", "1"]);
    assert!(String::from_utf8_lossy(&people.stderr).contains("there are more"));
    let oldest = json_of(&ok(&tarn(
        &lake,
        &["events", "--oldest", "--limit", "1", "--format", "json"],
    )));
    assert_eq!(oldest[0], all[0]);

    // The endpoint tarn.yml declares is listed before any server has started.
    let endpoints = json_of(&ok(&tarn(
        &lake,
        &["endpoints", "list", "--format", "json"],
    )));
    assert_eq!(endpoints[0]["name"], "arrival_delay", "{endpoints}");

    // CSV and Parquet output.
    let csv = ok(&tarn(
        &lake,
        &[
            "sql",
            "SELECT carrier FROM flights.raw.airlines ORDER BY carrier LIMIT 2",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(csv, "carrier\n9E\nAA\n");
    let pq = dir.path().join("out.parquet");
    ok(&tarn(
        &lake,
        &[
            "sql",
            "SELECT * FROM flights.trusted.flights",
            "--format",
            "parquet",
            "--output",
            pq.to_str().unwrap(),
        ],
    ));
    assert_eq!(&std::fs::read(&pq).unwrap()[..4], b"PAR1");
}

#[test]
fn errors_exit_non_zero_and_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    ok(&tarn(dir.path(), &["init"]));
    let yml = std::fs::read_to_string(dir.path().join("tarn.yml")).unwrap();
    assert!(yml.contains("# tarn.yml"));
    let out = tarn(dir.path(), &["init"]);
    assert!(!out.status.success());

    let f = dir.path().join("a.csv");
    std::fs::write(&f, "a,b\n1,2\n").unwrap();
    let out = tarn(
        dir.path(),
        &["land", f.to_str().unwrap(), "flights/raw/../../x.csv"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error:") && err.contains("escape the zone"),
        "{err}"
    );

    let out = tarn(dir.path(), &["sql", "SELEC 1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1, column"), "{err}");

    std::fs::write(
        dir.path().join("tarn.yml"),
        "lake: x\ndomains: [flights]\ntopics:\n  - name: a\n    domian: flights\n",
    )
    .unwrap();
    let out = tarn(dir.path(), &["tables"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tarn.yml:5") && err.contains("did you mean `domain`"),
        "{err}"
    );
}

#[test]
fn land_and_ls_over_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tarn.yml"), "lake: x\ndomains: [flights]\n").unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("2013")).unwrap();
    std::fs::write(src.join("2013/a.csv"), "a\n1\n").unwrap();
    std::fs::write(src.join("b.csv"), "a\n2\n").unwrap();
    let out = ok(&tarn(
        dir.path(),
        &[
            "land",
            src.to_str().unwrap(),
            "flights/raw/drop",
            "--format",
            "json",
        ],
    ));
    let landed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(landed.as_array().unwrap().len(), 2);
    let ls = ok(&tarn(dir.path(), &["ls", "flights/raw/drop/2013"]));
    assert!(
        ls.contains("drop/2013/a.csv") && !ls.contains("b.csv"),
        "{ls}"
    );
}

/// `../shared/data/nycflights13`, or `TARN_SHARED_DATA`.
fn shared_data() -> std::path::PathBuf {
    std::env::var("TARN_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nycflights13")
        })
}

/// The full flights.csv from ../shared (or TARN_SHARED_DATA), unzipped into `dir`.
fn flights_csv(dir: &Path) -> std::path::PathBuf {
    let data = shared_data();
    let out = dir.join("flights.csv");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('flights.csv', sys.argv[2])",
        ])
        .arg(data.join("flights.csv.zip"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn a_load_killed_midway_leaves_the_table_at_its_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tarn.yml"), "lake: x\ndomains: [flights]\n").unwrap();
    let csv = flights_csv(dir.path());
    let csv = csv.to_str().unwrap();
    ok(&tarn(dir.path(), &["load", "flights.trusted.flights", csv]));
    let count = || -> String {
        ok(&tarn(
            dir.path(),
            &[
                "sql",
                "SELECT count(*) AS n FROM flights.trusted.flights",
                "--format",
                "csv",
            ],
        ))
    };
    assert_eq!(count(), "n\n336776\n");

    // Kill a second load at several points; the table is always whole: the old rows, or
    // (had the commit already happened) old and new, never a part.
    for delay_ms in [50, 400, 1200] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tarn"))
            .arg("--dir")
            .arg(dir.path())
            .args(["load", "flights.trusted.flights", csv, "--again"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let n = count();
        assert!(
            n == "n\n336776\n" || n == "n\n673552\n",
            "after a kill at {delay_ms} ms: {n}"
        );
        if n != "n\n336776\n" {
            break;
        }
    }
}

#[test]
fn serve_answers_over_http_and_stops_cleanly_on_sigterm() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tarn.yml"), "lake: x\ndomains: [flights]\n").unwrap();
    let refused = tarn(dir.path(), &["serve", "--addr", "0.0.0.0:0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("loopback"));

    let served = server::Served::start(dir.path(), &[]);
    let addr = served.url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"PUT /api/v1/zones/flights/raw/objects/a.csv HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\na,b\n1,2\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    let rest = served.stop();
    assert!(
        rest.contains("status=201"),
        "one log line per request with its status: {rest}"
    );
    // What landed over HTTP is in the lake.
    let ls = ok(&tarn(dir.path(), &["ls", "flights/raw"]));
    assert!(ls.contains("a.csv"), "{ls}");
}

/// A lake with `flights.trusted.n`: `rows` rows of `id,flight`.
fn lake_with_numbers(rows: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tarn.yml"), "lake: x\ndomains: [flights]\n").unwrap();
    let mut csv = String::from("id,flight\n");
    for i in 1..=rows {
        csv.push_str(&format!("{i},{}\n", i % 100));
    }
    let file = dir.path().join("n.csv");
    std::fs::write(&file, csv).unwrap();
    ok(&tarn(
        dir.path(),
        &["load", "flights.trusted.n", file.to_str().unwrap()],
    ));
    dir
}

#[test]
fn big_results_stream_and_a_closed_stdout_ends_quietly() {
    let dir = lake_with_numbers(5000);
    // The table for people shows a preview and says how many rows it left out.
    let table = ok(&tarn(
        dir.path(),
        &["sql", "SELECT * FROM flights.trusted.n"],
    ));
    assert!(
        table.contains("5000 rows; the first 1000 are shown and 4000 more are not"),
        "{}",
        &table[table.len().saturating_sub(300)..]
    );
    assert_eq!(table.lines().filter(|l| l.starts_with("│")).count(), 1001);
    let csv = ok(&tarn(
        dir.path(),
        &["sql", "SELECT * FROM flights.trusted.n", "--format", "csv"],
    ));
    assert_eq!(csv.lines().count(), 5001, "a header and every row");
    // `tarn ... | head -1`: the reader goes away, tarn ends quietly (it panicked before).
    for args in [
        vec!["sql", "SELECT * FROM flights.trusted.n", "--format", "csv"],
        vec!["table", "show", "flights.trusted.n"],
        vec!["sql", "SELECT * FROM flights.trusted.n"],
    ] {
        for _ in 0..3 {
            use std::io::BufRead;
            let mut child = Command::new(env!("CARGO_BIN_EXE_tarn"))
                .arg("--dir")
                .arg(dir.path())
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut first = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut first)
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && !err.contains("panicked"),
                "{args:?}: {:?} {err}",
                out.status
            );
        }
    }
    // A query past its timeout stops at it.
    let slow = tarn(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) FROM flights.trusted.n a, flights.trusted.n b, flights.trusted.n c WHERE a.id + b.id + c.id = 7",
            "--timeout",
            "1",
        ],
    );
    assert!(!slow.status.success());
    assert!(
        String::from_utf8_lossy(&slow.stderr).contains("timeout of 1 s"),
        "{}",
        String::from_utf8_lossy(&slow.stderr)
    );
}

#[test]
fn endpoints_through_a_server_read_the_server_or_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tarn.yml"),
        "lake: x\ndomains: [flights, ml]\n",
    )
    .unwrap();
    let served = server::Served::start(dir.path(), &[]);
    // From a folder with no lake at all: the answer comes from the server.
    let elsewhere = tempfile::tempdir().unwrap();
    let remote = |args: &[&str]| through(&served.url, elsewhere.path(), args);
    let list = ok(&remote(&["endpoints", "list", "--format", "json"]));
    assert_eq!(json_of(&list), serde_json::json!([]));
    // A big answer streams through the server as it does from a folder.
    let mut csv = String::from("id\n");
    for i in 1..=20_000 {
        csv.push_str(&format!("{i}\n"));
    }
    let file = elsewhere.path().join("ids.csv");
    std::fs::write(&file, csv).unwrap();
    ok(&remote(&[
        "load",
        "flights.trusted.ids",
        file.to_str().unwrap(),
    ]));
    let rows = ok(&remote(&[
        "sql",
        "SELECT id FROM flights.trusted.ids ORDER BY id",
        "--format",
        "csv",
    ]));
    assert_eq!(rows.lines().count(), 20_001);
    assert_eq!(rows.lines().last(), Some("20000"));
    let refused = remote(&["endpoints", "deploy", "d", "--model", "models:/m/1"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("`tarn endpoints deploy` does not work through --server"),
        "{err}"
    );
    let missing = remote(&["endpoints", "show", "nope"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("hosts no endpoint called `nope`"));
    served.stop();
}

#[test]
fn every_command_works_through_a_server_or_refuses_it_by_name() {
    let dir = lake_with_numbers(50);
    std::fs::write(dir.path().join("more.csv"), "id,flight\n900,9\n901,1\n").unwrap();
    let served = server::Served::start(dir.path(), &[]);
    let elsewhere = tempfile::tempdir().unwrap();
    let remote = |args: &[&str]| through(&served.url, elsewhere.path(), args);
    let more = dir.path().join("more.csv");
    let more = more.to_str().unwrap();
    // Changes made through the server, each seen by the server's own lake.
    ok(&remote(&["land", more, "flights/raw/more.csv"]));
    ok(&remote(&[
        "events",
        "put",
        "--source",
        "billing",
        "--detail-type",
        "closed",
    ]));
    ok(&remote(&["crawl", "flights/raw"]));
    ok(&remote(&[
        "load",
        "flights.trusted.more",
        more,
        "--format",
        "json",
    ]));
    ok(&remote(&[
        "sql",
        "SELECT id FROM flights.trusted.n WHERE id <= 3",
        "--into",
        "flights.service.three",
    ]));
    // Reads answer through the server exactly what the lake folder answers.
    for args in [
        vec!["ls", "flights/raw", "--format", "json"],
        vec!["events", "--oldest", "--format", "json"],
        vec!["tables", "--format", "json"],
        vec!["table", "show", "flights.trusted.more", "--format", "json"],
        vec![
            "table",
            "history",
            "flights.service.three",
            "--format",
            "json",
        ],
        vec![
            "sql",
            "SELECT count(*) AS n FROM flights.service.three",
            "--format",
            "json",
        ],
        vec!["executions", "list", "--format", "json"],
        vec!["models", "list", "--format", "json"],
        vec!["monitors", "list", "--format", "json"],
        vec!["doctor", "--check", "--format", "json"],
    ] {
        let here = json_of(&ok(&tarn(dir.path(), &args)));
        let there = json_of(&ok(&remote(&args)));
        assert_eq!(here, there, "{args:?}");
    }
    assert_eq!(
        json_of(&ok(&remote(&[
            "sql",
            "SELECT count(*) AS n FROM flights.service.three",
            "--format",
            "json"
        ])))[0]["n"],
        3
    );
    // The rest work where the lake folder is, and say so by name.
    for (args, name) in [
        (vec!["init"], "init"),
        (vec!["quickstart"], "quickstart"),
        (vec!["serve"], "serve"),
        (vec!["token", "list"], "token"),
        (
            vec!["endpoints", "deploy", "d", "--model", "models:/m/1"],
            "endpoints deploy",
        ),
        (vec!["endpoints", "delete", "d"], "endpoints delete"),
        (vec!["pipelines", "list"], "pipelines"),
        (vec!["notify", "deliveries"], "notify"),
        (vec!["experiments", "list"], "experiments"),
        (vec!["runs", "list", "--experiment", "x"], "runs"),
        (vec!["train"], "train"),
        (
            vec!["transform", "models:/m/1", "--input", "x", "--output", "y"],
            "transform",
        ),
    ] {
        let out = remote(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran through --server");
        assert!(
            err.contains(&format!("`tarn {name}` does not work through --server")),
            "{args:?}: {err}"
        );
    }
    served.stop();
}

#[test]
fn errors_say_each_cause_once_and_routine_work_logs_nothing() {
    let dir = lake_with_numbers(10);
    let missing = tarn(
        dir.path(),
        &["land", "/no/such/file.csv", "flights/raw/x.csv"],
    );
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    // A merge and a load into a new table are routine: no WARN or ERROR lines.
    let file = dir.path().join("n.csv");
    for args in [
        vec![
            "load",
            "flights.trusted.n",
            file.to_str().unwrap(),
            "--mode",
            "merge",
            "--key",
            "id",
        ],
        vec!["load", "flights.trusted.fresh", file.to_str().unwrap()],
    ] {
        let out = tarn(dir.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            !err.contains("WARN") && !err.contains("ERROR"),
            "{args:?}: {err}"
        );
    }
}
