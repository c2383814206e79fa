//! A closed-loop HTTP load generator for the serving bench (bench/serve_bench.py): C clients
//! each send the same POST, one after the other, for S seconds over kept-alive loopback
//! connections, after a warm-up second. Prints one JSON line: requests, errors (non-2xx or
//! broken), requests per second, p50/p90/p99/max latency in ms.
//!
//! ```text
//! httpload --url http://127.0.0.1:8080/endpoints/delays/invocations --body body.json \
//!          [--content-type application/json] [--clients 16] [--seconds 10]
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::percentile;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").ok_or_else(|| anyhow::anyhow!("--url URL is required"))?;
    let body = std::fs::read(
        arg(&args, "--body").ok_or_else(|| anyhow::anyhow!("--body FILE is required"))?,
    )?;
    let content_type = arg(&args, "--content-type").unwrap_or_else(|| "application/json".into());
    let clients: usize = arg(&args, "--clients")
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(16);
    let seconds: f64 = arg(&args, "--seconds")
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(10.0);
    // One thread for the clients: on a small machine the server gets the other cores.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .timeout(Duration::from_secs(30))
            .build()?;
        let body = Arc::new(body);
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, url, body, ct) = (
                client.clone(),
                url.clone(),
                body.clone(),
                content_type.clone(),
            );
            let (measuring, stop) = (measuring.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = match client
                        .post(&url)
                        .header("content-type", &ct)
                        .body(body.as_ref().clone())
                        .send()
                        .await
                    {
                        Ok(r) => {
                            let good = r.status().is_success();
                            r.bytes().await.is_ok() && good
                        }
                        Err(_) => false,
                    };
                    if measuring.load(Ordering::Relaxed) {
                        lat.push(t.elapsed());
                        if !ok {
                            errors += 1;
                        }
                    }
                }
                (lat, errors)
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        measuring.store(false, Ordering::Relaxed);
        let took = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await?;
            all.extend(l);
            errors += e;
        }
        all.sort();
        println!(
            "{}",
            serde_json::json!({
                "requests": all.len(),
                "errors": errors,
                "rps": all.len() as f64 / took,
                "p50_ms": percentile(&all, 50),
                "p90_ms": percentile(&all, 90),
                "p99_ms": percentile(&all, 99),
                "max_ms": all.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
            })
        );
        anyhow::Ok(())
    })
}
