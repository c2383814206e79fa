//! Installing, discovering and running a tap.
//!
//! A tap runs from its own virtualenv (built once per package, cached like pipeline steps'
//! under `.tarn/venvs/`), in the lake's folder (relative paths in its settings start there),
//! started with `--config`, `--state` and `--catalog` (`--properties`
//! for taps that want it) pointing at files in a private folder (mode 0700, the config file
//! 0600) that is removed when the run ends; a run that was killed leaves it, and the next run
//! of the tap removes it. The tap's stderr is its log, kept with every secret hidden under
//! `.tarn/taps/NAME/logs/RUN.log`. Each run ends with a `tap.run.succeeded` or `tap.run.failed`
//! event; a failure is also sent to the lake's error topic.

use crate::catalog;
use crate::singer::{Message, StreamSchema};
use crate::writer::{StreamCount, Writer};
use crate::IngestError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tarn_config::TapSpec;
use tarn_lake::{Lake, NewEvent};

/// The longest records wait for a commit once a STATE covers them.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The longest line a tap may print (a message larger than this fails the run).
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// Progress of a run, as a terminal shows it.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Per stream: records received and records per second since the run began.
    pub streams: Vec<(String, u64, f64)>,
    pub elapsed: Duration,
}

/// A sink for progress reports (about twice a second).
pub type ProgressSink = std::sync::Arc<dyn Fn(&Progress) + Send + Sync>;

/// How a run is done.
#[derive(Default, Clone)]
pub struct RunOptions {
    pub progress: Option<ProgressSink>,
    /// The tap's stderr lines, as they come (secrets hidden).
    pub log_sink: Option<tarn_process::LineSink>,
    /// Run discovery again instead of using the kept catalog.
    pub discover: bool,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub tap: String,
    pub succeeded: bool,
    pub error: Option<String>,
    /// Per stream: its table, records received, rejected, committed.
    pub streams: BTreeMap<String, StreamCount>,
    /// The flush number of the saved state after the run.
    pub state_seq: i64,
    pub seconds: f64,
    pub log_file: PathBuf,
    /// Where the raw messages were kept (`format: jsonl`).
    pub messages: Option<String>,
}

/// The folder tarn keeps a tap's catalog and logs in.
pub fn tap_dir(lake: &Lake, tap: &str) -> PathBuf {
    lake.config.root.join(".tarn").join("taps").join(tap)
}

/// The tap `name` of the lake's config.
pub fn spec<'a>(lake: &'a Lake, name: &str) -> Result<&'a TapSpec, IngestError> {
    lake.config.tap(name).map_err(IngestError::Config)
}

/// A tap's program: the venv's interpreter and the script pip installed (run through the
/// interpreter: a venv built in a scratch folder and moved into place keeps the scratch
/// folder in its scripts' `#!` lines).
#[derive(Debug, Clone)]
pub struct Program {
    pub python: PathBuf,
    pub script: PathBuf,
}

impl Program {
    fn args(&self, rest: Vec<String>) -> Vec<String> {
        let mut a = vec![self.script.display().to_string()];
        a.extend(rest);
        a
    }
}

/// Installs the tap's package into its own virtualenv (once) and answers its program.
pub async fn install(lake: &Lake, tap: &TapSpec) -> Result<Program, IngestError> {
    let index = tarn_config::SingerIndex::load(&lake.config.root)
        .map_err(|e| IngestError::Config(e.to_string()))?;
    let (source, exe) = match (&tap.source, index.find(&tap.id, tap.variant.as_deref())) {
        (Some(s), found) => (
            s.clone(),
            tap.executable.clone().unwrap_or_else(|| {
                found
                    .map(|e| e.executable().to_string())
                    .unwrap_or_else(|_| format!("tap-{}", tap.id.trim_start_matches("tap-")))
            }),
        ),
        (None, Ok(e)) => (
            e.source.clone(),
            tap.executable
                .clone()
                .unwrap_or_else(|| e.executable().to_string()),
        ),
        (None, Err(why)) => return Err(IngestError::Config(format!("tap `{}`: {why}", tap.name))),
    };
    let python = tarn_process::Python::new(&lake.config.root);
    let venv = python
        .venv(std::slice::from_ref(&source))
        .await
        .map_err(|e| IngestError::Install {
            tap: tap.name.clone(),
            problem: format!("installing {source}: {e}"),
        })?;
    let script = venv.join("bin").join(&exe);
    if !script.exists() {
        return Err(IngestError::Install {
            tap: tap.name.clone(),
            problem: format!("{source} installed no program `{exe}`; name the right one with `executable:` on the tap"),
        });
    }
    Ok(Program {
        python: venv.join("bin").join("python"),
        script,
    })
}

/// A private folder for one run's files, removed when dropped.
struct Private {
    dir: PathBuf,
}

impl Private {
    fn new(lake: &Lake, tap: &str, run_id: &str) -> Result<Private, IngestError> {
        use std::os::unix::fs::DirBuilderExt;
        let base = tap_dir(lake, tap);
        std::fs::create_dir_all(&base).map_err(|e| IngestError::io(&base, e))?;
        // What killed runs left behind (their config held secrets).
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".run-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!(".run-{run_id}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| IngestError::io(&dir, e))?;
        Ok(Private { dir })
    }

    fn write(&self, name: &str, value: &Value) -> Result<PathBuf, IngestError> {
        self.write_text(name, &value.to_string())
    }

    fn write_text(&self, name: &str, text: &str) -> Result<PathBuf, IngestError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| IngestError::io(&path, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| IngestError::io(&path, e))?;
        Ok(path)
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The tap's config: its settings with its secrets' values.
async fn config(lake: &Lake, tap: &TapSpec) -> Result<(Value, Vec<String>), IngestError> {
    let values = crate::secrets::resolve(lake, tap).await?;
    let hidden = crate::secrets::texts(&values);
    let mut config = tap.settings.clone();
    for (k, v) in values {
        config.insert(k, v);
    }
    Ok((Value::Object(config), hidden))
}

/// Runs `--discover` and keeps the catalog it prints; answers it.
pub async fn discover(lake: &Lake, tap: &TapSpec) -> Result<Value, IngestError> {
    let program = install(lake, tap).await?;
    let run_id = uuid::Uuid::now_v7().to_string();
    let private = Private::new(lake, &tap.name, &run_id)?;
    let (config, hidden) = config(lake, tap).await?;
    let config_file = private.write("config.json", &config)?;
    let args = program.args(vec![
        "--config".to_string(),
        config_file.display().to_string(),
        "--discover".to_string(),
    ]);
    let done = tarn_process::process::run(
        &program.python,
        &args,
        &lake.config.root,
        &[],
        b"",
        Some(Duration::from_secs(600)),
        None,
    )
    .await
    .map_err(|e| IngestError::Install {
        tap: tap.name.clone(),
        problem: format!("cannot start {}: {e}", program.script.display()),
    })?;
    let redact = |t: &str| tarn_config::redact(t, &hidden);
    if !done.success {
        return Err(IngestError::Discover {
            tap: tap.name.clone(),
            problem: format!(
                "{} {}; what it printed:\n{}",
                program.script.display(),
                if done.timed_out {
                    "ran past 10 minutes".to_string()
                } else {
                    format!("exited with code {}", done.code.unwrap_or(-1))
                },
                redact(tail(&done.logs, 30).as_str())
            ),
        });
    }
    let catalog: Value = serde_json::from_str(&done.stdout).map_err(|e| IngestError::Discover {
        tap: tap.name.clone(),
        problem: format!(
            "its output is not a JSON catalog (line {}, column {}: {e})",
            e.line(),
            e.column()
        ),
    })?;
    if !catalog["streams"].is_array() {
        return Err(IngestError::Discover {
            tap: tap.name.clone(),
            problem: "its catalog has no `streams` list".into(),
        });
    }
    let path = tap_dir(lake, &tap.name).join("catalog.json");
    // Kept as the tap printed it: its schemas' properties stay in the tap's order.
    std::fs::write(&path, done.stdout.as_bytes()).map_err(|e| IngestError::io(&path, e))?;
    Ok(catalog)
}

/// A tap's catalog with its selection applied.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The catalog with `selected` metadata.
    pub catalog: Value,
    /// The selected streams' ids.
    pub streams: Vec<String>,
    /// The catalog as the tap gets it (schemas in the tap's own property order).
    pub text: String,
}

/// The kept catalog of `tap` (discovering it when there is none), with its selection applied.
pub async fn selected_catalog(
    lake: &Lake,
    tap: &TapSpec,
    fresh: bool,
) -> Result<Selected, IngestError> {
    let path = tap_dir(lake, &tap.name).join("catalog.json");
    if fresh || !path.is_file() {
        discover(lake, tap).await?;
    }
    let text = std::fs::read_to_string(&path).map_err(|e| IngestError::io(&path, e))?;
    let raw: Value = {
        {
            serde_json::from_str(&text).map_err(|e| IngestError::Discover {
                tap: tap.name.clone(),
                problem: format!(
                    "the kept catalog {} is not JSON ({e}); run `tarn taps discover {}`",
                    path.display(),
                    tap.name
                ),
            })?
        }
    };
    let (catalog, streams) = catalog::apply(tap, raw);
    let ordered = catalog::ordered_text(&catalog, &text);
    Ok(Selected {
        catalog,
        streams,
        text: ordered,
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs tap `name` once: its records into its tables, its state saved after each commit.
pub async fn run(lake: &Lake, name: &str, opts: &RunOptions) -> Result<RunReport, IngestError> {
    let tap = spec(lake, name)?;
    let started = Instant::now();
    let run_id = uuid::Uuid::now_v7().to_string();
    let logs_dir = tap_dir(lake, name).join("logs");
    std::fs::create_dir_all(&logs_dir).map_err(|e| IngestError::io(&logs_dir, e))?;
    let log_file = logs_dir.join(format!("{run_id}.log"));
    let lease = Lease::take(lake, name, &run_id).await?;
    let outcome = match Writer::start(lake, tap, &run_id).await {
        Ok(mut writer) => {
            let outcome = run_inner(lake, tap, &run_id, &mut writer, opts, started).await;
            Ok((outcome, writer.counts.clone(), writer.seq))
        }
        Err(e) => Err(e),
    };
    lease.release().await;
    let (outcome, counts, seq) = outcome?;
    let (error, logs, hidden, messages) = match outcome {
        Ok((logs, hidden, messages)) => (None, logs, hidden, messages),
        Err((e, logs, hidden)) => (Some(e), logs, hidden, None),
    };
    let _ = std::fs::write(&log_file, tarn_config::redact(&logs, &hidden));
    let report = RunReport {
        run_id: run_id.clone(),
        tap: name.to_string(),
        succeeded: error.is_none(),
        error: error
            .as_ref()
            .map(|e| tarn_config::redact(&e.to_string(), &hidden)),
        streams: counts,
        state_seq: seq,
        seconds: started.elapsed().as_secs_f64(),
        log_file,
        messages,
    };
    announce(lake, tap, &report).await;
    match error {
        // Said once more with the secrets hidden.
        Some(_) => Err(IngestError::Failed {
            message: report.error.clone().unwrap_or_default(),
            log_file: report.log_file.clone(),
        }),
        None => Ok(report),
    }
}

/// One run's hold on its tap: taken at the start (refused while another live run holds it),
/// renewed every 20 s, given up at the end. A holder that was killed on this host is
/// recognised as gone at once; one on another host, once its lease runs out (60 s).
struct Lease {
    lake: Lake,
    tap: String,
    owner: String,
    renewing: tokio::task::JoinHandle<()>,
}

const LEASE: Duration = Duration::from_secs(60);

fn lease_until() -> String {
    (chrono::Utc::now() + LEASE).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

use tarn_lake::this_host;

impl Lease {
    async fn take(lake: &Lake, tap: &str, run_id: &str) -> Result<Lease, IngestError> {
        let host = this_host();
        let owner = format!("{host}:{}:{run_id}", std::process::id());
        let gone = |holder: &str| {
            let mut parts = holder.splitn(3, ':');
            match (
                parts.next(),
                parts.next().and_then(|p| p.parse::<u32>().ok()),
            ) {
                (Some(h), Some(pid)) if h == host => {
                    !std::path::Path::new(&format!("/proc/{pid}")).exists()
                }
                _ => false,
            }
        };
        if let Some((holder, until)) = lake
            .taps()
            .lease(tap, &owner, &lease_until(), &gone)
            .await?
        {
            return Err(IngestError::Busy {
                tap: tap.to_string(),
                holder,
                until,
            });
        }
        let (l, t, o) = (lake.clone(), tap.to_string(), owner.clone());
        let renewing = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                if let Err(e) = l.taps().renew(&t, &o, &lease_until()).await {
                    tracing::warn!(tap = t, "renewing the tap's lease: {e}");
                }
            }
        });
        Ok(Lease {
            lake: lake.clone(),
            tap: tap.to_string(),
            owner,
            renewing,
        })
    }

    async fn release(self) {
        self.renewing.abort();
        if let Err(e) = self.lake.taps().release(&self.tap, &self.owner).await {
            tracing::warn!(tap = self.tap, "giving up the tap's lease: {e}");
        }
    }
}

type Failed = (IngestError, String, Vec<String>);

async fn run_inner(
    lake: &Lake,
    tap: &TapSpec,
    run_id: &str,
    writer: &mut Writer<'_>,
    opts: &RunOptions,
    started: Instant,
) -> Result<(String, Vec<String>, Option<String>), Failed> {
    let program = install(lake, tap)
        .await
        .map_err(|e| (e, String::new(), vec![]))?;
    let (config, hidden) = config(lake, tap)
        .await
        .map_err(|e| (e, String::new(), vec![]))?;
    let fail = |e: IngestError| (e, String::new(), hidden.clone());
    let selected = selected_catalog(lake, tap, opts.discover)
        .await
        .map_err(fail)?;
    if selected.streams.is_empty() {
        return Err(fail(IngestError::Config(format!(
            "tap `{}`: no stream is selected; `tarn taps discover {}` lists the streams, and `select:` names them",
            tap.name, tap.name
        ))));
    }
    let private = Private::new(lake, &tap.name, run_id).map_err(fail)?;
    let mut args = vec![
        "--config".to_string(),
        private
            .write("config.json", &config)
            .map_err(fail)?
            .display()
            .to_string(),
    ];
    if !writer.state().is_null() {
        args.push("--state".into());
        args.push(
            private
                .write("state.json", writer.state())
                .map_err(fail)?
                .display()
                .to_string(),
        );
    }
    args.push(
        if tap.properties {
            "--properties"
        } else {
            "--catalog"
        }
        .into(),
    );
    args.push(
        private
            .write_text("catalog.json", &selected.text)
            .map_err(fail)?
            .display()
            .to_string(),
    );
    let sink = opts.log_sink.clone().map(|s| {
        let hidden = hidden.clone();
        std::sync::Arc::new(move |line: &str| s(&tarn_config::redact(line, &hidden)))
            as tarn_process::LineSink
    });
    let mut child = tarn_process::Streaming::start(
        &program.python,
        &program.args(args),
        &lake.config.root,
        &[],
        sink,
    )
    .map_err(|e| {
        fail(IngestError::Install {
            tap: tap.name.clone(),
            problem: format!("cannot start {}: {e}", program.script.display()),
        })
    })?;
    let mut lines = read_ahead(child.stdout.take().expect("piped"));
    let deadline = tokio::time::Instant::now() + tap.timeout();
    let mut messages = if tap.keeps_messages() {
        let path = private.dir.join("messages.jsonl");
        Some((
            std::fs::File::create(&path).map_err(|e| fail(IngestError::io(&path, e)))?,
            path,
        ))
    } else {
        None
    };
    let read = tokio::time::timeout_at(
        deadline,
        read_messages(tap, &mut lines, writer, opts, started, &mut messages),
    )
    .await;
    let protocol_error = match read {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            child.kill();
            Some(e)
        }
        Err(_) => {
            child.kill();
            Some(IngestError::Tap {
                tap: tap.name.clone(),
                problem: format!(
                    "ran past its timeout of {:?} and was stopped",
                    tap.timeout()
                ),
                logs: String::new(),
            })
        }
    };
    let left = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_secs(1));
    let done = child
        .finish(left)
        .await
        .map_err(|e| fail(IngestError::io(&program.script, e)))?;
    let logs = done.logs.clone();
    let failed = |e: IngestError| (e, logs.clone(), hidden.clone());
    // What a STATE covers is committed even when the run fails after it.
    if let Some(e) = protocol_error {
        writer.flush().await.map_err(failed)?;
        return Err(failed(e));
    }
    if !done.success {
        writer.flush().await.map_err(failed)?;
        let problem = if done.timed_out {
            format!(
                "ran past its timeout of {:?} and was stopped",
                tap.timeout()
            )
        } else {
            format!(
                "exited with code {}",
                done.code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "none (killed by a signal)".into())
            )
        };
        return Err(failed(IngestError::Tap {
            tap: tap.name.clone(),
            problem,
            logs: tarn_config::redact(&tail(&logs, 20), &hidden),
        }));
    }
    writer.cover_all();
    writer.flush().await.map_err(failed)?;
    let kept = match messages {
        Some((file, path)) => {
            drop(file);
            let target = format!("{}/raw/_singer/{}/{run_id}.jsonl", tap.domain, tap.name);
            lake.land(&path, &target, &tarn_lake::LandOptions::default(), &|_| {})
                .await
                .map_err(|e| failed(IngestError::from(e)))?;
            Some(target)
        }
        None => None,
    };
    Ok((logs, hidden, kept))
}

/// What the reading thread passes on: complete lines (each ending in a newline, but for a last
/// line without one), or why it stopped.
enum Chunk {
    Lines(Vec<u8>),
    TooLong,
    Failed(std::io::Error),
}

/// Chunks read ahead of the writer: while a flush commits, the tap goes on printing into this
/// buffer instead of waiting on a full pipe.
const CHUNKS_AHEAD: usize = 256;

/// Reads the tap's output on a thread of its own, in chunks of whole lines. A tap writes (and
/// flushes) one message at a time; after a short read the thread waits a millisecond so the
/// next read takes many lines at once instead of waking for each.
fn read_ahead(stdout: tokio::process::ChildStdout) -> tokio::sync::mpsc::Receiver<Chunk> {
    let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
    let fd = stdout.into_owned_fd();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut file = match fd {
            Ok(fd) => std::fs::File::from(fd),
            Err(e) => {
                let _ = tx.blocking_send(Chunk::Failed(e));
                return;
            }
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut pending: Vec<u8> = Vec::new();
        // The pipe is non-blocking (tokio made it): nothing to read yet means a wait, longer
        // while the tap stays quiet (up to 50 ms), back to nothing once it prints.
        let mut idle = Duration::from_millis(1);
        loop {
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(idle);
                    idle = (idle * 2).min(Duration::from_millis(50));
                    continue;
                }
                Err(e) => {
                    let _ = tx.blocking_send(Chunk::Failed(e));
                    return;
                }
            };
            if n == 0 {
                if !pending.is_empty() {
                    let _ = tx.blocking_send(Chunk::Lines(pending));
                }
                return;
            }
            idle = Duration::from_millis(1);
            pending.extend_from_slice(&buf[..n]);
            if let Some(last) = pending.iter().rposition(|b| *b == b'\n') {
                let rest = pending.split_off(last + 1);
                if tx
                    .blocking_send(Chunk::Lines(std::mem::replace(&mut pending, rest)))
                    .is_err()
                {
                    return;
                }
            }
            if pending.len() > MAX_LINE {
                let _ = tx.blocking_send(Chunk::TooLong);
                return;
            }
            if n < 64 * 1024 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    rx
}

async fn read_messages(
    tap: &TapSpec,
    lines: &mut tokio::sync::mpsc::Receiver<Chunk>,
    writer: &mut Writer<'_>,
    opts: &RunOptions,
    started: Instant,
    messages: &mut Option<(std::fs::File, PathBuf)>,
) -> Result<(), IngestError> {
    let mut line: u64 = 0;
    let mut last_report = Instant::now();
    let mut last_flush = Instant::now();
    let (mut chunk, mut at): (Vec<u8>, usize) = (Vec::new(), 0);
    let batch_rows = tap.batch_rows();
    let protocol = |line: u64, stream: Option<&str>, problem: String| IngestError::Protocol {
        tap: tap.name.clone(),
        stream: stream.map(String::from),
        line,
        problem,
    };
    loop {
        if at >= chunk.len() {
            match lines.recv().await {
                None => break,
                Some(Chunk::Lines(c)) => {
                    chunk = c;
                    at = 0;
                    continue;
                }
                Some(Chunk::Failed(e)) => {
                    return Err(protocol(
                        line + 1,
                        None,
                        format!("reading the tap's output: {e}"),
                    ))
                }
                Some(Chunk::TooLong) => {
                    return Err(protocol(
                        line + 1,
                        None,
                        format!(
                            "a line longer than {} MiB; a Singer message is one line of JSON",
                            MAX_LINE >> 20
                        ),
                    ))
                }
            }
        }
        let end = chunk[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(chunk.len(), |p| at + p);
        let buf = &chunk[at..end];
        at = end + 1;
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Some((file, path)) = messages.as_mut() {
            use std::io::Write;
            file.write_all(buf)
                .and_then(|_| file.write_all(b"\n"))
                .map_err(|e| IngestError::io(path, e))?;
        }
        let msg: Message = serde_json::from_slice(buf).map_err(|e| {
            let text = String::from_utf8_lossy(buf);
            let shown: String = text.chars().take(120).collect();
            protocol(line, None, format!("not a Singer message ({e}): {shown:?}; a tap prints only JSON messages on stdout (logs go to stderr)"))
        })?;
        let stream = msg.stream.clone();
        let need_stream = |s: &Option<String>| {
            s.clone().ok_or_else(|| {
                protocol(
                    line,
                    None,
                    format!("a {} message without `stream`", msg.kind),
                )
            })
        };
        match msg.kind.as_str() {
            "SCHEMA" => {
                let s = need_stream(&stream)?;
                let schema = msg.schema.as_ref().ok_or_else(|| {
                    protocol(line, Some(&s), "a SCHEMA message without `schema`".into())
                })?;
                let compiled =
                    StreamSchema::compile(schema, msg.key_properties.clone().unwrap_or_default())
                        .map_err(|why| protocol(line, Some(&s), why))?;
                writer
                    .schema(&s, compiled)
                    .map_err(|why| protocol(line, Some(&s), why))?;
            }
            "RECORD" => {
                let s = need_stream(&stream)?;
                let record = msg.record.ok_or_else(|| {
                    protocol(line, Some(&s), "a RECORD message without `record`".into())
                })?;
                writer
                    .record(&s, record, msg.version)
                    .map_err(|why| protocol(line, Some(&s), why))?;
                // A tap that sends no STATE for this long: what it sent is committed under the
                // last state (a stream with keys stays exact; one without may see these
                // records again if the run fails before its next STATE).
                if writer.open_rows() >= batch_rows.saturating_mul(10) {
                    writer.cover_all();
                    writer.flush().await?;
                }
            }
            "STATE" => {
                writer.state_message(msg.value.unwrap_or(Value::Null));
                // Committed once a batch is waiting, or what waits is older than a minute
                // (a tap that trickles records still lands them).
                let waiting = writer.covered_rows();
                if waiting >= batch_rows || (waiting > 0 && last_flush.elapsed() >= MAX_WAIT) {
                    writer.flush().await?;
                    last_flush = Instant::now();
                }
            }
            "ACTIVATE_VERSION" => {
                let s = need_stream(&stream)?;
                let v = msg.version.ok_or_else(|| {
                    protocol(
                        line,
                        Some(&s),
                        "an ACTIVATE_VERSION message without `version`".into(),
                    )
                })?;
                writer
                    .activate(&s, v)
                    .map_err(|why| protocol(line, Some(&s), why))?;
            }
            "BATCH" => {
                return Err(protocol(line, stream.as_deref(), "BATCH messages (files written by the tap) are not read; turn the tap's `batch_config` off".into()));
            }
            other => {
                return Err(protocol(line, stream.as_deref(), format!("unknown message type `{other}`; Singer messages are SCHEMA, RECORD, STATE and ACTIVATE_VERSION")));
            }
        }
        if let Some(p) = &opts.progress {
            if last_report.elapsed() >= Duration::from_millis(500) {
                last_report = Instant::now();
                p(&progress(writer, started));
            }
        }
    }
    if let Some(p) = &opts.progress {
        p(&progress(writer, started));
    }
    Ok(())
}

fn progress(writer: &Writer<'_>, started: Instant) -> Progress {
    let elapsed = started.elapsed();
    let secs = elapsed.as_secs_f64().max(1e-3);
    Progress {
        streams: writer
            .counts
            .iter()
            .map(|(s, c)| (s.clone(), c.records, c.records as f64 / secs))
            .collect(),
        elapsed,
    }
}

/// Records the run's event, and sends a failure to the error topic.
async fn announce(lake: &Lake, tap: &TapSpec, report: &RunReport) {
    let kind = if report.succeeded {
        "tap.run.succeeded"
    } else {
        "tap.run.failed"
    };
    let detail = serde_json::json!({
        "source": tarn_lake::taps::EVENT_SOURCE,
        "detail_type": kind,
        "tap": tap.name,
        "run_id": report.run_id,
        "domain": tap.domain,
        "layer": tap.layer(),
        "streams": report.streams,
        "state_seq": report.state_seq,
        "seconds": report.seconds,
        "error": report.error,
    });
    let event = NewEvent {
        kind: kind.into(),
        zone: format!("{}/{}", tap.domain, tap.layer()),
        key: tap.name.clone(),
        etag: report.run_id.clone(),
        size: 0,
        detail: detail.clone(),
    };
    if let Err(e) = lake.events().record_event(&event).await {
        tracing::warn!(tap = tap.name, "recording the run's event: {e}");
    }
    if !report.succeeded {
        let notifier = tarn_notify::Notifier::for_lake(&lake.config);
        let topic = &lake.config.error_topic;
        if notifier.has_topic(topic) {
            let subject = format!("{}: tap {} failed", lake.config.lake, tap.name);
            let msg = tarn_notify::Message::new(subject.clone(), detail);
            match notifier.deliver(topic, &msg).await {
                Ok(report) => lake.record_deliveries(topic, &subject, &report).await,
                Err(e) => tracing::warn!(tap = tap.name, "notifying {topic}: {e}"),
            }
        }
    }
}
