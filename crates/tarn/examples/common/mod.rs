//! What the benchmarks in `examples/` share: the release `tarn` binary, a `tarn serve` child on
//! loopback, percentiles, and rewriting one section of `bench/RESULTS.md`.
#![allow(dead_code)]

use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tarn_lake::testing::{Deployment, S3_ENV};

/// The release `tarn` beside this example (`target/release/examples/loadtest`).
pub fn tarn_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("tarn"))
        .context("no folder above this example")?;
    ensure!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release -p tarn --bin tarn --examples`",
        bin.display()
    );
    Ok(bin)
}

/// A running `tarn serve`, logging into a file (a pipe nobody reads would stall it).
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn start(tarn: &Path, dir: &Path) -> Result<Server> {
        Server::start_logging(tarn, dir, "serve.log")
    }

    /// One of several nodes on the lake in `dir`, each logging into its own `log` file there.
    pub fn start_logging(tarn: &Path, dir: &Path, log: &str) -> Result<Server> {
        let log = dir.join(log);
        let child = Command::new(tarn)
            .arg("--dir")
            .arg(dir)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .env_remove("TARN_SERVER")
            .stderr(std::fs::File::create(&log)?)
            .stdout(Stdio::null())
            .spawn()?;
        let mut server = Server {
            child,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                server.url = format!("http://{addr}");
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("tarn serve ended ({status}) before listening:\n{text}");
            }
            ensure!(
                Instant::now() < deadline,
                "tarn serve did not listen in 30 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait: the graceful shutdown a deployment sees.
    pub fn stop(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let status = self.child.wait()?;
        ensure!(status.success(), "tarn serve exited with {status}");
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `p`th percentile of sorted latencies, in milliseconds.
pub fn percentile(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1000.0
}

/// `text` with the section headed `heading` (to the next `## ` heading) replaced by `section`.
pub fn replace_section(text: &str, heading: &str, section: &str) -> String {
    let Some(start) = text.find(heading) else {
        return format!("{}\n\n{section}", text.trim_end());
    };
    let rest = &text[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .map(|i| start + heading.len() + i + 1)
        .unwrap_or(text.len());
    let (before, after) = (&text[..start], &text[end..]);
    if after.is_empty() {
        format!("{before}{section}")
    } else {
        format!("{before}{section}\n{after}")
    }
}

/// Prints a benchmark's `section` and, with `file`, replaces its `heading` section there.
pub fn publish(name: &str, file: Option<&Path>, heading: &str, section: &str) -> Result<()> {
    println!("{section}");
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        std::fs::write(file, replace_section(&text, heading, section))?;
        eprintln!("{name}: wrote {}", file.display());
    }
    Ok(())
}

/// Whether the shared deployment's servers are named (as `scripts/test` names them).
pub fn shared_env() -> bool {
    std::env::var_os("TARN_TEST_POSTGRES").is_some() && std::env::var_os(S3_ENV).is_some()
}

/// The deployments `--deployment VALUE` names: embedded, shared or both.
pub fn deployments(value: &str) -> Result<Vec<Deployment>> {
    let chosen = match value {
        "embedded" => vec![Deployment::Embedded],
        "shared" => vec![Deployment::Shared],
        "both" => vec![Deployment::Embedded, Deployment::Shared],
        _ => bail!("--deployment is embedded, shared or both, not {value:?}"),
    };
    ensure!(
        !chosen.contains(&Deployment::Shared) || shared_env(),
        "the shared deployment needs TARN_TEST_POSTGRES and {S3_ENV} (see scripts/test)"
    );
    Ok(chosen)
}
