//! A closed-loop HTTP load generator for the serving and tracking benches
//! (bench/serve_bench.py, bench/mlflow_bench.py): C clients each send a POST, one after the
//! other, for S seconds over kept-alive loopback connections, after a warm-up second. Prints
//! one JSON line: requests, errors (non-2xx or broken), requests per second, p50/p90/p99/max
//! latency in ms.
//!
//! ```text
//! httpload --url http://127.0.0.1:8080/endpoints/delays/invocations --body body.json \
//!          [--content-type application/json] [--clients 16] [--seconds 10]
//! httpload --url http://127.0.0.1:5000 --mlflow-log-batch EXPERIMENT_ID [--metrics 10] ...
//! ```
//!
//! `--mlflow-log-batch` speaks MLflow's REST API as `MlflowClient.log_batch` does: each client
//! creates its own run in the experiment (`POST /api/2.0/mlflow/runs/create`), then logs
//! `--metrics` metrics `m0`, `m1`, ... at a new step per request
//! (`POST /api/2.0/mlflow/runs/log-batch`). The JSON line then also lists `runs`: each run's id
//! and how many batches the server acknowledged (warm-up included), for the caller to check
//! that every value is there.

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

/// What each request of a client sends.
#[derive(Clone)]
enum Work {
    /// The same body to `--url` every time.
    Same(Arc<Vec<u8>>),
    /// MLflow log-batch requests into a run of this experiment.
    LogBatch { experiment: String, metrics: usize },
}

/// What one client sends: the same body, or log-batches into its own run.
enum ClientWork {
    Same(Arc<Vec<u8>>),
    Run { id: String, metrics: usize },
}

/// Creates a run in `experiment` through MLflow's REST API, answering its id.
async fn create_run(
    client: &reqwest::Client,
    url: &str,
    experiment: &str,
) -> anyhow::Result<String> {
    let answer: serde_json::Value = client
        .post(format!("{url}/api/2.0/mlflow/runs/create"))
        .json(&serde_json::json!({"experiment_id": experiment, "start_time": now_ms()}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["run"]["info"]["run_id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("runs/create answered no run id: {answer}"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One log-batch body: `metrics` values at `step`.
fn log_batch(run: &str, metrics: usize, step: u64) -> Vec<u8> {
    let ts = now_ms();
    let metrics: Vec<_> = (0..metrics)
        .map(|j| {
            serde_json::json!({"key": format!("m{j}"), "value": (step as f64 * 0.37 + j as f64).sin(), "timestamp": ts, "step": step})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"run_id": run, "metrics": metrics}))
        .expect("a JSON value serialises")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").ok_or_else(|| anyhow::anyhow!("--url URL is required"))?;
    let work = match arg(&args, "--mlflow-log-batch") {
        Some(experiment) => Work::LogBatch {
            experiment,
            metrics: arg(&args, "--metrics")
                .map(|c| c.parse())
                .transpose()?
                .unwrap_or(10),
        },
        None => Work::Same(Arc::new(std::fs::read(arg(&args, "--body").ok_or_else(
            || anyhow::anyhow!("--body FILE (or --mlflow-log-batch EXPERIMENT_ID) is required"),
        )?)?)),
    };
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
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, url, work, ct) = (
                client.clone(),
                url.clone(),
                work.clone(),
                content_type.clone(),
            );
            // A log-batch client's run, made before the clock starts.
            let client_work = match &work {
                Work::LogBatch {
                    experiment,
                    metrics,
                } => ClientWork::Run {
                    id: create_run(&client, &url, experiment).await?,
                    metrics: *metrics,
                },
                Work::Same(body) => ClientWork::Same(body.clone()),
            };
            let (measuring, stop) = (measuring.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                let mut acknowledged = 0u64;
                let target = match &client_work {
                    ClientWork::Run { .. } => format!("{url}/api/2.0/mlflow/runs/log-batch"),
                    ClientWork::Same(_) => url.clone(),
                };
                while !stop.load(Ordering::Relaxed) {
                    let body = match &client_work {
                        ClientWork::Run { id, metrics } => log_batch(id, *metrics, acknowledged),
                        ClientWork::Same(body) => body.as_ref().clone(),
                    };
                    let t = Instant::now();
                    let ok = match client
                        .post(&target)
                        .header("content-type", &ct)
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(r) => {
                            let good = r.status().is_success();
                            r.bytes().await.is_ok() && good
                        }
                        Err(_) => false,
                    };
                    if ok {
                        acknowledged += 1;
                    }
                    if measuring.load(Ordering::Relaxed) {
                        lat.push(t.elapsed());
                        if !ok {
                            errors += 1;
                        }
                    }
                }
                let run = match client_work {
                    ClientWork::Run { id, .. } => Some((id, acknowledged)),
                    ClientWork::Same(_) => None,
                };
                (lat, errors, run)
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
        let mut runs = Vec::new();
        for t in tasks {
            let (l, e, run) = t.await?;
            all.extend(l);
            errors += e;
            runs.extend(run.map(|(id, n)| serde_json::json!({"run_id": id, "batches": n})));
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
                "runs": runs,
            })
        );
        anyhow::Ok(())
    })
}
