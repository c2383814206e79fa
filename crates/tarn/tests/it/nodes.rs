//! Several tarn nodes on one shared lake (Postgres + S3): two `tarn serve` and a `tarn
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

#[test]
fn nodes_share_one_lake_each_execution_runs_once_and_the_coordinator_moves() {
    const LANDINGS: usize = 1000;
    let dir = lake_dir(Deployment::Shared);
    let d = dir.path();
    with_pipeline(d);
    let a = Served::start(d, &[]);
    let b = Served::start(d, &[]);
    let _worker = Worker(
        Command::new(env!("CARGO_BIN_EXE_tarn"))
            .args(["--dir", d.to_str().unwrap(), "worker", "--workers", "4"])
            .env_remove("TARN_SERVER")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let urls = [a.url.clone(), b.url.clone()];
    let first = rt.block_on(async {
        let r = roles(&client, &urls[0]).await;
        assert!(r.contains(&"api".to_string()) && r.contains(&"executions".to_string()));
        coordinator(&client, &[&urls[0], &urls[1]], Duration::from_secs(20)).await
    });
    // Landings spread over both nodes, eight at a time; the coordinator is killed halfway.
    let (killed, survivor) = (first, 1 - first);
    let mut nodes = vec![Some(a), Some(b)];
    rt.block_on(async {
        let mut sent = 0;
        while sent < LANDINGS {
            let mut batch = Vec::new();
            for _ in 0..8 {
                if sent == LANDINGS {
                    break;
                }
                let url = if nodes[killed].is_some() {
                    &urls[sent % 2]
                } else {
                    &urls[survivor]
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
    // Another node coordinates within the lease time (15 s) and some slack.
    let took = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(coordinator(
            &client,
            &[&urls[survivor]],
            Duration::from_secs(30),
        ))
    }));
    if took.is_err() {
        let log = nodes[survivor].take().unwrap().stop();
        let lines: Vec<&str> = log.lines().filter(|l| !l.contains("request{")).collect();
        let lines = &lines[lines.len().saturating_sub(30)..];
        panic!("the survivor's log: {lines:#?}");
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
    drop(nodes);
}
