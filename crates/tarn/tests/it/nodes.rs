//! Several tarn nodes on one shared lake (Postgres + S3): three `tarn serve` and a `tarn
//! worker`. Landings spread over the nodes start one execution each, run once; exactly one
//! node coordinates (watches zones, fires schedules) and, when it is killed under load,
//! another takes the role within the lease time while every execution still ends once.

use crate::server::{lake_dir, Served};
use crate::{json_of, ok, tarn};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tarn_lake::testing::Deployment;

/// A pipeline of one cheap `command` step, started by every `.json` under `incoming/`.
fn with_pipeline(dir: &Path) {
    let p = dir.join("pipelines/count");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("config.yml"),
        r#"name: count
domain: flights
layers: {origin: raw, target: trusted}
triggers:
  - s3: {prefix: incoming/, suffix: .json}
steps:
  Count:
    type: command
    properties:
      command: [sh, -c, "cat >/dev/null; echo '{\"counted\": true}'"]
"#,
    )
    .unwrap();
}

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn ready(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client
        .get(format!("{url}/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn roles(client: &reqwest::Client, url: &str) -> Vec<String> {
    ready(client, url).await["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Which of `urls` coordinates, once exactly one does (within `limit`).
async fn coordinator(client: &reqwest::Client, urls: &[&str], limit: Duration) -> usize {
    let start = Instant::now();
    loop {
        let mut holders = Vec::new();
        for (i, u) in urls.iter().enumerate() {
            if roles(client, u).await.iter().any(|r| r == "coordinator") {
                holders.push(i);
            }
        }
        assert!(holders.len() <= 1, "two nodes coordinate at once");
        if let [one] = holders[..] {
            return one;
        }
        if start.elapsed() >= limit {
            let mut seen = Vec::new();
            for u in urls {
                seen.push(ready(client, u).await);
            }
            panic!("no node took the coordinator role within {limit:?}: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn executions(dir: &Path) -> Vec<serde_json::Value> {
    let all = json_of(&ok(&tarn(
        dir,
        &[
            "executions",
            "list",
            "--pipeline",
            "count",
            "--limit",
            "10000",
            "--format",
            "json",
        ],
    )));
    let list = if all.is_array() { &all } else { &all["items"] };
    list.as_array().cloned().unwrap_or_default()
}

/// Every attempt of `ids`, read over HTTP from `url`, eight at a time.
async fn attempts(client: &reqwest::Client, url: &str, ids: &[String]) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for chunk in ids.chunks(8) {
        let mut reads = Vec::new();
        for id in chunk {
            reads.push(tokio::spawn(
                client.get(format!("{url}/api/v1/executions/{id}")).send(),
            ));
        }
        for r in reads {
            let detail: serde_json::Value = r.await.unwrap().unwrap().json().await.unwrap();
            all.extend(detail["attempts"].as_array().cloned().unwrap_or_default());
        }
    }
    all
}

#[test]
fn nodes_share_one_lake_each_execution_runs_once_and_the_coordinator_moves() {
    const LANDINGS: usize = 1000;
    const NODES: usize = 3;
    let dir = lake_dir(Deployment::Shared);
    let d = dir.path();
    with_pipeline(d);
    let mut nodes: Vec<Option<Served>> = (0..NODES).map(|_| Some(Served::start(d, &[]))).collect();
    let worker = Worker(
        Command::new(env!("CARGO_BIN_EXE_tarn"))
            .args(["--dir", d.to_str().unwrap(), "worker", "--workers", "4"])
            .env_remove("TARN_SERVER")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().url.clone())
        .collect();
    let all_urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let (first, names) = rt.block_on(async {
        let mut names = Vec::new();
        for u in &urls {
            let r = roles(&client, u).await;
            assert!(
                r.contains(&"api".to_string()) && r.contains(&"executions".to_string()),
                "{r:?}"
            );
            names.push(
                ready(&client, u).await["node"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let first = coordinator(&client, &all_urls, Duration::from_secs(20)).await;
        (first, names)
    });
    // Landings spread over the nodes alive, eight at a time; the coordinator is killed halfway.
    let killed = first;
    let alive: Vec<usize> = (0..NODES).filter(|&i| i != killed).collect();
    rt.block_on(async {
        let mut sent = 0;
        while sent < LANDINGS {
            let mut batch = Vec::new();
            for _ in 0..8 {
                if sent == LANDINGS {
                    break;
                }
                let url = if nodes[killed].is_some() {
                    &urls[sent % NODES]
                } else {
                    &urls[alive[sent % alive.len()]]
                };
                let req = client
                    .put(format!(
                        "{url}/api/v1/zones/flights/raw/objects/incoming/{sent:05}.json"
                    ))
                    .body(format!("{{\"n\": {sent}}}"))
                    .send();
                batch.push(tokio::spawn(req));
                sent += 1;
            }
            for r in batch {
                let r = r.await.unwrap().unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
            if sent >= LANDINGS / 2 && nodes[killed].is_some() {
                nodes[killed].take().unwrap().kill();
            }
        }
    });
    // One of the two others coordinates within the lease time (15 s) and some slack.
    let survivors: Vec<&str> = alive.iter().map(|&i| urls[i].as_str()).collect();
    let took = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(coordinator(&client, &survivors, Duration::from_secs(30)))
    }));
    if took.is_err() {
        let log = nodes[alive[0]].take().unwrap().stop();
        let lines: Vec<&str> = log.lines().filter(|l| !l.contains("request{")).collect();
        let lines = &lines[lines.len().saturating_sub(30)..];
        panic!("a survivor's log: {lines:#?}");
    }
    // Every landing ends as one succeeded execution.
    let start = Instant::now();
    let done = loop {
        let all = executions(d);
        let ended = all
            .iter()
            .filter(|e| e["status"] == "succeeded" || e["status"] == "failed")
            .count();
        if ended >= LANDINGS || start.elapsed() > Duration::from_secs(240) {
            break all;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(done.len(), LANDINGS, "one execution per landing");
    let failed: Vec<_> = done.iter().filter(|e| e["status"] != "succeeded").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let keys: std::collections::BTreeSet<String> = done
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        keys.len(),
        LANDINGS,
        "each landing started its own execution"
    );
    // Each execution has exactly one succeeded attempt, and the work was spread: the
    // attempts name the node that ran them, and more than one node ran some.
    let ids: Vec<String> = done
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let tried = rt.block_on(attempts(&client, survivors[0], &ids));
    let succeeded = tried.iter().filter(|a| a["status"] == "succeeded").count();
    assert_eq!(succeeded, LANDINGS, "one succeeded attempt per execution");
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for a in &tried {
        let node = a["node"].as_str().unwrap_or_default().to_string();
        assert!(!node.is_empty(), "an attempt without its node: {a}");
        *per_node.entry(node).or_default() += 1;
    }
    assert!(per_node.len() >= 2, "one node ran everything: {per_node:?}");
    let host = names[0].rsplit_once(':').unwrap().0;
    let mut known = names.clone();
    known.push(format!("{host}:{}", worker.0.id()));
    for n in per_node.keys() {
        assert!(known.contains(n), "{n} is no node of this lake: {known:?}");
    }
    eprintln!("attempts per node: {per_node:?}");
    drop(nodes);
    drop(worker);
}
