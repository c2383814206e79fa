//! Bring-your-own model servers: a process implementing SageMaker's inference contract
//! (`GET /ping`, `POST /invocations`) on a port tarn gives it. tarn starts it in its own
//! process group, waits until `/ping` answers 200, proxies requests to it, and restarts it
//! when it dies (answering 503 meanwhile, never hanging). MLflow `python_function` models run
//! this way behind `mlflow models serve`.

use crate::error::{ModelServerError, ServingError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a server may take to answer its first `/ping`.
const STARTUP: Duration = Duration::from_secs(180);

/// A supervised model server.
pub struct Server {
    port: Arc<std::sync::atomic::AtomicU16>,
    healthy: Arc<AtomicBool>,
    pub restarts: Arc<AtomicU64>,
    client: reqwest::Client,
    supervisor: tokio::task::JoinHandle<()>,
    group: Arc<std::sync::atomic::AtomicI32>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.supervisor.abort();
        kill_group(self.group.load(Ordering::SeqCst));
    }
}

/// Kills the server's process group (`0`: none started yet).
fn kill_group(pgid: i32) {
    tarn_process::kill_group(Some(pgid));
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What to run: the command (with `{port}` and `{model_dir}` replaced), its folder and log.
#[derive(Debug, Clone)]
pub struct Launch {
    pub command: Vec<String>,
    pub dir: PathBuf,
    pub model_dir: PathBuf,
    pub log: PathBuf,
}

fn spawn(launch: &Launch, port: u16) -> std::io::Result<tokio::process::Child> {
    let args: Vec<String> = launch
        .command
        .iter()
        .map(|a| {
            a.replace("{port}", &port.to_string())
                .replace("{model_dir}", &launch.model_dir.display().to_string())
        })
        .collect();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)?;
    let mut cmd = tokio::process::Command::new(&args[0]);
    cmd.args(&args[1..])
        .current_dir(&launch.dir)
        .env_clear()
        .envs(tarn_config::inherited_env())
        .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
        .env("PORT", port.to_string())
        .env("SM_MODEL_DIR", &launch.model_dir)
        .env("MODEL_PATH", &launch.model_dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    cmd.spawn()
}

async fn ping(client: &reqwest::Client, port: u16) -> bool {
    matches!(
        client
            .get(format!("http://127.0.0.1:{port}/ping"))
            .timeout(Duration::from_secs(2))
            .send()
            .await,
        Ok(r) if r.status().is_success()
    )
}

/// Waits until the server answers `/ping`, or it exits, or the startup time is over.
async fn wait_healthy(
    client: &reqwest::Client,
    child: &mut tokio::process::Child,
    port: u16,
    log: &Path,
) -> Result<(), ModelServerError> {
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        if ping(client, port).await {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ModelServerError::Exited {
                status: status.to_string(),
                log: log.display().to_string(),
                tail: tail(log),
            });
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ModelServerError::Silent {
                port,
                seconds: STARTUP.as_secs(),
                log: log.display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Server {
    /// Starts the server and waits until it is healthy.
    pub async fn start(launch: Launch, name: String) -> Result<Server, ModelServerError> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(ModelServerError::Client)?;
        let port = free_port().map_err(ModelServerError::Port)?;
        let mut child = spawn(&launch, port).map_err(|source| ModelServerError::Spawn {
            command: launch.command.join(" "),
            source,
        })?;
        let group = Arc::new(std::sync::atomic::AtomicI32::new(
            child.id().map(|p| p as i32).unwrap_or(0),
        ));
        if let Err(e) = wait_healthy(&client, &mut child, port, &launch.log).await {
            kill_group(group.load(Ordering::SeqCst));
            return Err(e);
        }
        let healthy = Arc::new(AtomicBool::new(true));
        let restarts = Arc::new(AtomicU64::new(0));
        let shared_port = Arc::new(std::sync::atomic::AtomicU16::new(port));
        let (h, r, g, c, p) = (
            healthy.clone(),
            restarts.clone(),
            group.clone(),
            client.clone(),
            shared_port.clone(),
        );
        let supervisor = tokio::spawn(async move {
            let mut child = child;
            loop {
                let mut port;
                let status = child.wait().await;
                h.store(false, Ordering::SeqCst);
                kill_group(g.load(Ordering::SeqCst));
                tracing::warn!(
                    "endpoint {name}: the model server exited ({status:?}); restarting it"
                );
                let mut backoff = Duration::from_millis(200);
                loop {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    port = match free_port() {
                        Ok(p) => p,
                        Err(_) => continue,
                    };
                    let Ok(mut next) = spawn(&launch, port) else {
                        continue;
                    };
                    g.store(next.id().map(|p| p as i32).unwrap_or(0), Ordering::SeqCst);
                    match wait_healthy(&c, &mut next, port, &launch.log).await {
                        Ok(()) => {
                            child = next;
                            break;
                        }
                        Err(e) => {
                            kill_group(g.load(Ordering::SeqCst));
                            tracing::warn!("endpoint {name}: restart failed: {e}");
                        }
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
                p.store(port, Ordering::SeqCst);
                h.store(true, Ordering::SeqCst);
                tracing::info!("endpoint {name}: the model server is back on port {port}");
            }
        });
        Ok(Server {
            port: shared_port,
            healthy,
            restarts,
            client,
            supervisor,
            group,
        })
    }

    /// Whether the server answers (false while it restarts).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// Sends one `/invocations` request; answers the server's status, media type and body.
    pub async fn invoke(
        &self,
        body: bytes::Bytes,
        content_type: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, String, bytes::Bytes), ServingError> {
        if !self.healthy() {
            return Err(ServingError::Unavailable(
                "the model server is restarting; retry shortly".into(),
            ));
        }
        let port = self.port.load(Ordering::SeqCst);
        let mut req = self
            .client
            .post(format!("http://127.0.0.1:{port}/invocations"))
            .timeout(timeout)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                ServingError::Timeout(format!(
                    "the model server took longer than {}s",
                    timeout.as_secs_f64()
                ))
            } else {
                ServingError::Unavailable(format!(
                    "the model server is not answering ({e}); it is being restarted, retry shortly"
                ))
            }
        })?;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let body = resp.bytes().await.map_err(|e| {
            ServingError::Unavailable(format!("the model server broke off its answer: {e}"))
        })?;
        Ok((status, ct, body))
    }
}
