//! Crashes and concurrent writers, as a user meets them: real `tarn` processes killed with
//! SIGKILL at random points of their work, and several run at once, on both deployments.
//! Afterwards the catalog and the Delta logs agree, a re-run never doubles a load, every
//! object has exactly one `object.created` event, and no temporary file is left.
//!
//! Each crash test prints its counts (tries, kills that landed mid-write, violations); run
//! with `--no-capture` to see them.

use super::{json_of, ok, tarn};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tarn_lake::testing::{fresh_yml, Deployment};

/// A small deterministic generator: the same kill points on every run of the suite.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// Uniform in `[lo, hi)`.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi.as_micros() - lo.as_micros()).max(1) as u64;
        lo + Duration::from_micros(self.next() % span)
    }
}

fn lake_on(deployment: Deployment, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let place = rt.block_on(fresh_yml(deployment, dir.path()));
    std::fs::write(
        dir.path().join("tarn.yml"),
        format!("lake: integrity\ndomains: [flights]\n{extra}{place}"),
    )
    .unwrap();
    dir
}

fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tarn"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill_after(mut child: std::process::Child, wait: Duration) -> bool {
    std::thread::sleep(wait);
    let finished = child.try_wait().unwrap().is_some();
    child.kill().ok();
    child.wait().unwrap();
    !finished
}

/// `rows` rows with ids from `first`, as CSV.
fn rows_csv(path: &Path, first: usize, rows: usize) -> PathBuf {
    let mut text = String::from("id,origin,temp,time_hour\n");
    for i in first..first + rows {
        text.push_str(&format!(
            "{i},{},{}.5,2013-01-{:02}T{:02}:00:00Z\n",
            ["EWR", "JFK", "LGA"][i % 3],
            i % 97,
            1 + i % 28,
            i % 24
        ));
    }
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn scalar(dir: &Path, sql: &str) -> String {
    let out = ok(&tarn(dir, &["sql", sql, "--format", "csv"]));
    out.lines().nth(1).unwrap_or_default().to_string()
}

/// The catalog's facts about a table: (row count, loads' Delta versions).
fn catalog_of(dir: &Path, table: &str) -> (i64, Vec<i64>) {
    let v = json_of(&ok(&tarn(
        dir,
        &["table", "show", table, "--format", "json"],
    )));
    let rows = v["row_count"].as_i64().unwrap_or(-1);
    let loads = v["loads"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|l| l["table_version"].as_i64().unwrap())
                .collect()
        })
        .unwrap_or_default();
    (rows, loads)
}

const CONTRACT: &str = "table: flights.trusted.readings\nkey: [id]\ncolumns:\n  - { name: id, type: bigint }\n  - { name: origin, type: string }\n  - { name: temp, type: double }\n  - { name: time_hour, type: timestamp }\n";

fn killed_loads_never_lose_or_double_rows(deployment: Deployment, kills: usize) {
    let dir = lake_on(deployment, "");
    std::fs::create_dir_all(dir.path().join("contracts")).unwrap();
    std::fs::write(dir.path().join("contracts/readings.yml"), CONTRACT).unwrap();
    let d = dir.path();
    let per_file = 5000;
    let file = |i: usize| rows_csv(&d.join(format!("part{i}.csv")), i * per_file, per_file);
    let table = "flights.trusted.readings";
    // One load unkilled: how long a load takes here, so kills fall inside one.
    let f0 = file(0);
    let start = Instant::now();
    ok(&tarn(d, &["load", table, f0.to_str().unwrap()]));
    let mut took = start.elapsed();
    let mut rng = Lcg(17 + deployment as u64);
    let (mut tries, mut killed, mut mid_write, mut already) = (0, 0, 0, 0);
    for i in 1..=kills {
        let f = file(i);
        let f = f.to_str().unwrap();
        tries += 1;
        // Late in the load, where its commits are: the window follows how long the last
        // whole load took (loads slow down as the table and its keys grow).
        if kill_after(
            spawn(d, &["load", table, f]),
            rng.between(took * 3 / 5, took + took / 10),
        ) {
            killed += 1;
        }
        // Killed between its Delta commit and the catalog: `doctor --check` sees it.
        let check = tarn(d, &["doctor", "--check", "--format", "json"]);
        let report = json_of(&String::from_utf8_lossy(&check.stdout));
        if report["findings"].as_array().is_some_and(|f| !f.is_empty()) {
            mid_write += 1;
        }
        // Every tenth crash is repaired by `tarn doctor`; the others by loading again,
        // as a user re-runs what failed.
        if i % 10 == 0 {
            ok(&tarn(d, &["doctor"]));
        }
        let start = Instant::now();
        let rerun = json_of(&ok(&tarn(d, &["load", table, f, "--format", "json"])));
        if rerun["already_loaded"] == true {
            already += 1;
        } else {
            took = start.elapsed();
        }
    }
    let total = (kills + 1) * per_file;
    let count = scalar(d, &format!("SELECT count(*) FROM {table}"));
    let distinct = scalar(d, &format!("SELECT count(DISTINCT id) FROM {table}"));
    let (rows, versions) = catalog_of(d, table);
    let rejected = tarn(
        d,
        &[
            "sql",
            "SELECT count(*) FROM flights.trusted.readings_rejected",
            "--format",
            "csv",
        ],
    );
    let rejected = String::from_utf8_lossy(&rejected.stdout)
        .lines()
        .nth(1)
        .unwrap_or("0")
        .to_string();
    let mut sorted = versions.clone();
    sorted.dedup();
    let violations = [
        count != total.to_string(),
        distinct != total.to_string(),
        rows != total as i64,
        versions.len() != kills + 1,
        sorted.len() != versions.len() || !versions.windows(2).all(|w| w[0] < w[1]),
        rejected != "0",
    ]
    .iter()
    .filter(|v| **v)
    .count();
    eprintln!(
        "killed loads ({deployment:?}): {tries} tries, {killed} killed before finishing, {already} had committed, {mid_write} killed between Delta and catalog, {violations} violations"
    );
    assert_eq!(count, total.to_string(), "rows in the table");
    assert_eq!(distinct, total.to_string(), "no row twice");
    assert_eq!(rows, total as i64, "the catalog's row count");
    assert_eq!(
        versions.len(),
        kills + 1,
        "one load recorded per file: {versions:?}"
    );
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "loads in version order: {versions:?}"
    );
    assert_eq!(rejected, "0", "a re-run rejects nothing as a duplicate");
    let check = tarn(d, &["doctor", "--check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(
        killed * 3 >= kills,
        "kills must land inside loads ({killed} of {kills})"
    );
}

#[test]
fn killed_loads_never_lose_or_double_rows_embedded() {
    killed_loads_never_lose_or_double_rows(Deployment::Embedded, 100);
}

#[test]
fn killed_loads_never_lose_or_double_rows_shared() {
    killed_loads_never_lose_or_double_rows(Deployment::Shared, 100);
}

/// How many objects a `tarn doctor --format json` report gave their missing event.
fn objects_given_events(report: &serde_json::Value) -> usize {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "object_without_event")
        .map(|f| {
            let detail = f["detail"].as_str().unwrap();
            detail.split(' ').next().unwrap().parse::<usize>().unwrap()
        })
        .sum()
}

/// Every `object.created` event by key.
fn events_by_key(dir: &Path) -> std::collections::BTreeMap<String, usize> {
    let v = json_of(&ok(&tarn(
        dir,
        &[
            "events",
            "--kind",
            "object.created",
            "--limit",
            "100000",
            "--format",
            "json",
        ],
    )));
    let mut out = std::collections::BTreeMap::new();
    for e in v.as_array().unwrap() {
        *out.entry(format!(
            "{}/{}",
            e["zone"].as_str().unwrap(),
            e["key"].as_str().unwrap()
        ))
        .or_default() += 1;
    }
    out
}

/// The content hash each object's event records, by key.
fn etags_by_key(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let v = json_of(&ok(&tarn(
        dir,
        &[
            "events",
            "--kind",
            "object.created",
            "--limit",
            "100000",
            "--format",
            "json",
        ],
    )));
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                format!(
                    "{}/{}",
                    e["zone"].as_str().unwrap(),
                    e["key"].as_str().unwrap()
                ),
                e["etag"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Files a writer leaves while writing (`KEY#N`, Delta's `_commit_*.json.tmp`) under `dir`.
fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if name
                    .rsplit_once('#')
                    .is_some_and(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
                    || name.ends_with(".json.tmp")
                {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Multipart uploads S3 holds open under the lake's stage (0 for a local lake), as boto3
/// lists them.
fn open_uploads(dir: &Path) -> usize {
    let yml = std::fs::read_to_string(dir.join("tarn.yml")).unwrap();
    let Some(storage) = yml.lines().find_map(|l| l.strip_prefix("storage: s3://")) else {
        return 0;
    };
    let (bucket, prefix) = storage.split_once('/').unwrap();
    let script = "import boto3, os, sys\ns3 = boto3.client('s3', endpoint_url=os.environ['TARN_TEST_S3'])\nr = s3.list_multipart_uploads(Bucket=sys.argv[1], Prefix=sys.argv[2])\nprint(len(r.get('Uploads', [])))";
    python(script, &[bucket, prefix]).trim().parse().unwrap()
}

/// Runs a Python script (with boto3 for S3) and answers what it printed.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn killed_lands_leave_one_event_per_object(deployment: Deployment, kills: usize) {
    let dir = lake_on(deployment, "");
    let d = dir.path();
    let src = d.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut rng = Lcg(99 + deployment as u64);
    // Every fifth file is above the 8 MiB part size, so it goes up as a multipart upload.
    let file = |i: usize, rng: &mut Lcg| -> PathBuf {
        let p = src.join(format!("drop{i}.csv"));
        let rows = if i % 5 == 4 {
            320_000
        } else {
            20_000 + (rng.next() % 60_000) as usize
        };
        rows_csv(&p, i * 1_000_000, rows)
    };
    let f0 = file(0, &mut rng);
    let start = Instant::now();
    ok(&tarn(
        d,
        &["land", f0.to_str().unwrap(), "flights/raw/drops/drop0.csv"],
    ));
    // How long a land takes here, from the faster of two: the first also pays for a cold
    // start (the binary and the store read from disk), which would put kills after the end.
    let mut took = start.elapsed();
    let warm = rows_csv(&src.join("warm.csv"), 800_000_000, 50_000);
    let start = Instant::now();
    ok(&tarn(
        d,
        &["land", warm.to_str().unwrap(), "flights/raw/warm.csv"],
    ));
    took = took.min(start.elapsed());
    // And one above the part size: how long a multipart land takes here.
    let big = rows_csv(&src.join("big.csv"), 900_000_000, 320_000);
    let start = Instant::now();
    ok(&tarn(
        d,
        &["land", big.to_str().unwrap(), "flights/raw/big.csv"],
    ));
    let took_big = start.elapsed();
    let mut killed = 0;
    let mut files = vec![f0];
    for i in 1..=kills {
        let f = file(i, &mut rng);
        let key = format!("flights/raw/drops/drop{i}.csv");
        let window = if i % 5 == 4 {
            rng.between(took_big / 3, took_big + took_big / 10)
        } else {
            rng.between(Duration::ZERO, took + took / 4)
        };
        if kill_after(spawn(d, &["land", f.to_str().unwrap(), &key]), window) {
            killed += 1;
        }
        files.push(f);
    }
    std::thread::sleep(Duration::from_millis(1000)); // past the watcher's settling time
                                                     // What the kills left: objects without events are found and given theirs, temporary
                                                     // files and open uploads removed (every writer is gone: nothing is too recent).
    let open_before = open_uploads(d);
    let repair = json_of(&ok(&tarn(
        d,
        &["doctor", "--stale-after", "0", "--format", "json"],
    )));
    let repaired = repair["findings"].as_array().unwrap();
    let without_event = objects_given_events(&repair);
    let temporary = repaired
        .iter()
        .filter(|f| f["kind"] == "temporary_file")
        .count();
    let aborted = repaired
        .iter()
        .filter(|f| f["kind"] == "open_upload" && f["fixed"] == true)
        .count();
    let open_after = open_uploads(d);
    // The user lands again what failed: every file, every key once.
    for (i, f) in files.iter().enumerate() {
        ok(&tarn(
            d,
            &[
                "land",
                f.to_str().unwrap(),
                &format!("flights/raw/drops/drop{i}.csv"),
            ],
        ));
    }
    let events = events_by_key(d);
    let etags = etags_by_key(d);
    let mut violations = 0;
    for (i, f) in files.iter().enumerate() {
        let key = format!("flights/raw/drops/drop{i}.csv");
        if events.get(&key) != Some(&1) {
            violations += 1;
            eprintln!("{key}: {:?} events", events.get(&key));
        }
        // The event names the content landed: its SHA-256 is the file's.
        if etags.get(&key) != Some(&sha256_of(f)) {
            violations += 1;
            eprintln!("{key}: the event's etag is not the file's SHA-256");
        }
    }
    let left = temporary_files(d);
    eprintln!(
        "killed lands ({deployment:?}): {kills} tries, {killed} killed before finishing, {without_event} objects left without an event, {temporary} temporary files removed, {} left, {open_before} open uploads, {aborted} aborted, {open_after} left, {violations} violations",
        left.len()
    );
    assert_eq!(violations, 0);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(open_after, 0, "open multipart uploads remain");
    assert!(
        killed * 3 >= kills,
        "kills must land inside lands ({killed} of {kills})"
    );
}

#[test]
fn killed_lands_leave_one_event_per_object_embedded() {
    killed_lands_leave_one_event_per_object(Deployment::Embedded, 50);
}

#[test]
fn killed_lands_leave_one_event_per_object_shared() {
    killed_lands_leave_one_event_per_object(Deployment::Shared, 50);
}

/// Runs `n` copies of `args` at once; answers each one's output.
fn at_once(dir: &Path, runs: Vec<Vec<String>>) -> Vec<std::process::Output> {
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            Command::new(env!("CARGO_BIN_EXE_tarn"))
                .arg("--dir")
                .arg(dir)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// The `metaData` actions of a table's Delta log, and their table ids (local or S3).
fn metadata_ids(table_url: &str) -> Vec<String> {
    let script = r#"
import json, os, sys, urllib.parse
url = sys.argv[1]
texts = []
if url.startswith("file://"):
    log = os.path.join(url[len("file://"):], "_delta_log")
    for n in sorted(os.listdir(log)):
        if n.endswith(".json"):
            texts.append(open(os.path.join(log, n)).read())
else:
    import boto3
    u = urllib.parse.urlparse(url)
    s3 = boto3.client("s3", endpoint_url=os.environ["TARN_TEST_S3"])
    prefix = u.path.lstrip("/") + "/_delta_log/"
    for o in s3.list_objects_v2(Bucket=u.netloc, Prefix=prefix).get("Contents", []):
        if o["Key"].endswith(".json"):
            texts.append(s3.get_object(Bucket=u.netloc, Key=o["Key"])["Body"].read().decode())
ids = [json.loads(l)["metaData"]["id"] for t in texts for l in t.splitlines() if '"metaData"' in l]
print(json.dumps(ids))
"#;
    serde_json::from_str(&python(script, &[table_url])).unwrap()
}

fn concurrent_writers_all_succeed(deployment: Deployment) {
    let dir = lake_on(deployment, "");
    let d = dir.path();
    // 8 processes appending to one new table.
    let per = 3000;
    let runs = (0..8)
        .map(|i| {
            let f = rows_csv(&d.join(format!("a{i}.csv")), i * per, per);
            vec![
                "load".into(),
                "flights.trusted.appended".into(),
                f.display().to_string(),
            ]
        })
        .collect();
    for out in at_once(d, runs) {
        ok(&out);
    }
    assert_eq!(
        scalar(d, "SELECT count(*) FROM flights.trusted.appended"),
        (8 * per).to_string()
    );
    assert_eq!(
        scalar(d, "SELECT count(DISTINCT id) FROM flights.trusted.appended"),
        (8 * per).to_string()
    );
    let show = json_of(&ok(&tarn(
        d,
        &[
            "table",
            "show",
            "flights.trusted.appended",
            "--format",
            "json",
        ],
    )));
    assert_eq!(show["row_count"], 8 * per);
    assert_eq!(show["loads"].as_array().unwrap().len(), 8);
    let ids = metadata_ids(show["location"].as_str().unwrap());
    assert_eq!(ids.len(), 1, "one metaData action, one table id: {ids:?}");

    // 4 merges of overlapping keys into one table: each key once, every process succeeds.
    let runs = (0..4)
        .map(|i| {
            let f = rows_csv(&d.join(format!("m{i}.csv")), i * 1000, 2000);
            vec![
                "load".into(),
                "flights.trusted.merged".into(),
                f.display().to_string(),
                "--mode".into(),
                "merge".into(),
                "--key".into(),
                "id".into(),
            ]
        })
        .collect();
    for out in at_once(d, runs) {
        ok(&out);
    }
    assert_eq!(
        scalar(d, "SELECT count(*) FROM flights.trusted.merged"),
        "5000"
    );
    assert_eq!(
        scalar(d, "SELECT count(DISTINCT id) FROM flights.trusted.merged"),
        "5000"
    );
    let show = json_of(&ok(&tarn(
        d,
        &[
            "table",
            "show",
            "flights.trusted.merged",
            "--format",
            "json",
        ],
    )));
    assert_eq!(show["row_count"], 5000);
    assert_eq!(metadata_ids(show["location"].as_str().unwrap()).len(), 1);

    // 16 landings to one raw key: 8 of the same bytes, 8 of other bytes each.
    let same = d.join("same.csv");
    std::fs::write(&same, "a\n1\n").unwrap();
    let runs = (0..16)
        .map(|i| {
            let f = if i % 2 == 0 {
                same.clone()
            } else {
                let p = d.join(format!("other{i}.csv"));
                std::fs::write(&p, format!("other\n{i}\n")).unwrap();
                p
            };
            vec![
                "land".into(),
                f.display().to_string(),
                "flights/raw/one/key.csv".into(),
                "--format".into(),
                "json".into(),
            ]
        })
        .collect();
    let outs = at_once(d, runs);
    let seen: Vec<String> = outs
        .iter()
        .map(|o| {
            if o.status.success() {
                json_of(&String::from_utf8_lossy(&o.stdout))[0]["outcome"].to_string()
            } else {
                String::from_utf8_lossy(&o.stderr)
                    .chars()
                    .take(60)
                    .collect()
            }
        })
        .collect();
    eprintln!("16 landings to one key ({deployment:?}): {seen:#?}");
    let mut created = 0;
    for (i, out) in outs.iter().enumerate() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            let v = json_of(&String::from_utf8_lossy(&out.stdout));
            let outcome = v[0]["outcome"].as_str().unwrap().to_string();
            if outcome == "created" {
                created += 1;
            } else {
                assert_eq!(outcome, "unchanged", "landing {i}");
                assert_eq!(i % 2, 0, "only the same bytes are unchanged");
            }
        } else {
            assert!(stderr.contains("append-only"), "landing {i}: {stderr}");
        }
    }
    assert_eq!(created, 1, "one landing creates the key");
    assert_eq!(events_by_key(d).get("flights/raw/one/key.csv"), Some(&1));
}

#[test]
fn concurrent_writers_all_succeed_embedded() {
    concurrent_writers_all_succeed(Deployment::Embedded);
}

#[test]
fn concurrent_writers_all_succeed_shared() {
    concurrent_writers_all_succeed(Deployment::Shared);
}

/// PUTs objects one after another until the server stops answering; answers the keys it
/// acknowledged (201).
fn put_until_refused(url: String, dir: PathBuf, round: usize) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for n in 0.. {
        let key = format!("puts/r{round}-{n}.csv");
        let body = dir.join(format!("put-{round}-{n}.csv"));
        rows_csv(&body, n * 1000, 2000 + (n * 7919) % 30_000);
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "20",
                "-T",
            ])
            .arg(&body)
            .arg(format!("{url}/api/v1/zones/flights/raw/objects/{key}"))
            .output()
            .unwrap();
        match String::from_utf8_lossy(&out.stdout).as_ref() {
            "201" | "200" => acknowledged.push(format!("flights/raw/{key}")),
            _ => break,
        }
    }
    acknowledged
}

fn killed_servers_leave_one_event_per_object(deployment: Deployment, kills: usize) {
    let dir = lake_on(deployment, "");
    let d = dir.path().to_path_buf();
    let src = d.join("bodies");
    std::fs::create_dir_all(&src).unwrap();
    let mut rng = Lcg(7 + deployment as u64);
    let mut acknowledged = Vec::new();
    for round in 0..kills {
        let served = crate::server::Served::start(&d, &[]);
        let (url, bodies) = (served.url.clone(), src.clone());
        // Two clients at once, so kills meet requests in every stage.
        let clients: Vec<_> = (0..2)
            .map(|c| {
                let (url, bodies) = (url.clone(), bodies.clone());
                std::thread::spawn(move || put_until_refused(url, bodies, round * 2 + c))
            })
            .collect();
        std::thread::sleep(rng.between(Duration::from_millis(300), Duration::from_millis(1500)));
        served.kill();
        for c in clients {
            acknowledged.extend(c.join().unwrap());
        }
    }
    // An object written in the last moments is left for the next look (it may still be being
    // written): wait past that before asking.
    std::thread::sleep(Duration::from_millis(1000));
    // Bodies the killed servers were still receiving, kept under the lake folder.
    let incoming = d.join(".tarn/incoming");
    let half_received = std::fs::read_dir(&incoming).map(|r| r.count()).unwrap_or(0);
    let repair = json_of(&ok(&tarn(
        &d,
        &["doctor", "--stale-after", "0", "--format", "json"],
    )));
    let without_event = objects_given_events(&repair);
    let listed = json_of(&ok(&tarn(
        &d,
        &["ls", "flights/raw/puts", "--format", "json"],
    )));
    let keys: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("flights/raw/{}", o["key"].as_str().unwrap()))
        .collect();
    let events = events_by_key(&d);
    let mut violations = 0;
    for k in &keys {
        if events.get(k) != Some(&1) {
            violations += 1;
            eprintln!("{k}: {:?} events", events.get(k));
        }
    }
    for k in &acknowledged {
        if !keys.contains(k) {
            violations += 1;
            eprintln!("{k} was acknowledged but is gone");
        }
    }
    let half_received_after = std::fs::read_dir(&incoming).map(|r| r.count()).unwrap_or(0);
    let left = temporary_files(&d);
    eprintln!(
        "killed servers ({deployment:?}): {kills} kills, {} objects acknowledged, {} stored, {without_event} left without an event (repaired), {half_received} half-received bodies ({half_received_after} left), {} temporary files left, {violations} violations",
        acknowledged.len(),
        keys.len(),
        left.len()
    );
    assert_eq!(violations, 0);
    assert_eq!(half_received_after, 0, "half-received bodies remain");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn killed_servers_leave_one_event_per_object_embedded() {
    killed_servers_leave_one_event_per_object(Deployment::Embedded, 20);
}

#[test]
fn killed_servers_leave_one_event_per_object_shared() {
    killed_servers_leave_one_event_per_object(Deployment::Shared, 20);
}

/// `tarn doctor --server URL` checks and repairs the lake a server serves, through its API.
#[test]
fn doctor_through_a_server_checks_and_repairs() {
    let dir = lake_on(Deployment::Embedded, "");
    let d = dir.path();
    let served = crate::server::Served::start(d, &[]);
    let remote = |args: &[&str]| {
        let mut all = vec!["--server", served.url.as_str()];
        all.extend_from_slice(args);
        tarn(d, &all)
    };
    let clean = json_of(&ok(&remote(&["doctor", "--check", "--format", "json"])));
    assert_eq!(clean["findings"].as_array().unwrap().len(), 0, "{clean}");
    // A file copied straight into the zone's folder, older than the watcher's settling time.
    let raw = d.join("lake/dev/flights/raw");
    std::fs::create_dir_all(&raw).unwrap();
    std::fs::write(raw.join("copied.csv"), "a\n1\n").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let check = remote(&["doctor", "--check"]);
    assert!(
        !check.status.success(),
        "--check fails when something is wrong"
    );
    let fixed = json_of(&ok(&remote(&["doctor", "--format", "json"])));
    let findings = fixed["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["kind"] == "object_without_event" && f["fixed"] == true),
        "{fixed}"
    );
    assert_eq!(events_by_key(d).get("flights/raw/copied.csv"), Some(&1));
    served.stop();
}
