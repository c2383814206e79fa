//! Running a process: input on stdin, stdout and stderr captured (size-capped) and
//! streamed line by line, a timeout that kills the whole process group.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Most bytes of logs kept per attempt: the first half and the last half of what was written.
pub const LOG_CAP: usize = 256 * 1024;

/// What a finished process left.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub code: Option<i32>,
    /// The signal that ended the process, when one did (9 for SIGKILL).
    pub signal: Option<i32>,
    pub stdout: String,
    /// stdout and stderr interleaved as they came, capped at [`LOG_CAP`].
    pub logs: String,
    pub timed_out: bool,
}

impl Finished {
    /// How the process ended, for an error message: `code 3`, or `signal 9 (SIGKILL: killed
    /// from outside, by an operator or the kernel's out-of-memory killer)`.
    pub fn how(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("code {c}"),
            (None, Some(s)) => format!("signal {s} ({})", signal_name(s)),
            (None, None) => "an unknown status".into(),
        }
    }
}

/// What a signal that ended a process says to a person.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        9 => "SIGKILL: killed from outside, by an operator or the kernel's out-of-memory killer",
        15 => "SIGTERM: asked to stop",
        2 => "SIGINT: interrupted",
        6 => "SIGABRT: the program aborted",
        11 => "SIGSEGV: the program crashed",
        _ => "a signal",
    }
}

/// A sink for live output lines (`tarn pipelines run` prints them).
pub type LineSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Runs `cmd` in `cwd` with `env`, feeding `stdin`; kills its process group after `timeout`.
pub async fn run(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: &[(String, String)],
    stdin: &[u8],
    timeout: Option<Duration>,
    sink: Option<LineSink>,
) -> std::io::Result<Finished> {
    run_limited(program, args, cwd, env, stdin, timeout, None, sink).await
}

/// [`run`], with the process's address space capped at `max_memory` bytes (an allocation
/// beyond it fails inside the process, which usually exits with a MemoryError).
#[allow(clippy::too_many_arguments)]
pub async fn run_limited(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: &[(String, String)],
    stdin: &[u8],
    timeout: Option<Duration>,
    max_memory: Option<u64>,
    sink: Option<LineSink>,
) -> std::io::Result<Finished> {
    let mut cmd = command(program, args, cwd, env, max_memory);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    if let Some(mut input) = child.stdin.take() {
        let data = stdin.to_vec();
        tokio::spawn(async move {
            let _ = input.write_all(&data).await;
        });
    }
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Capped::default()));
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let (l1, s1) = (logs.clone(), sink.clone());
    let out_task = tokio::spawn(async move {
        let mut all = String::new();
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(s) = &s1 {
                s(&line);
            }
            l1.lock().expect("log lock").push(&line);
            if all.len() < 16 * 1024 * 1024 {
                all.push_str(&line);
                all.push('\n');
            }
        }
        all
    });
    let (l2, s2) = (logs.clone(), sink);
    let err_task = tokio::spawn(async move {
        let mut lines = BufReader::new(err).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(s) = &s2 {
                s(&line);
            }
            l2.lock().expect("log lock").push(&line);
        }
    });
    let pid = pid.and_then(|p| i32::try_from(p).ok());
    let waited = match timeout {
        Some(t) => tokio::time::timeout(t, child.wait()).await,
        None => Ok(child.wait().await),
    };
    let (status, timed_out) = match waited {
        Ok(s) => (Some(s?), false),
        Err(_) => {
            kill_group(pid);
            let _ = child.wait().await;
            (None, true)
        }
    };
    // A child's own children may still hold the pipes: they go with the group.
    kill_group(pid);
    let stdout = out_task.await.unwrap_or_default();
    let _ = err_task.await;
    let logs = logs.lock().expect("log lock").text();
    Ok(Finished {
        success: status.map(|s| s.success()).unwrap_or(false),
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)),
        stdout,
        logs,
        timed_out,
    })
}

/// The command every child of tarn starts from: a cleared environment (what programs need,
/// and what the caller gives on purpose), piped stdio, a process group of its own, killed
/// when tarn dies, its address space capped at `max_memory` bytes when given.
#[allow(unsafe_code)]
fn command(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: &[(String, String)],
    max_memory: Option<u64>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    // Never the server's whole environment (its secrets among it): what programs need to
    // run, and what the step is given on purpose.
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(tarn_config::inherited_env())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    // SAFETY: prctl and setrlimit are async-signal-safe and touch only the child.
    unsafe {
        cmd.pre_exec(move || {
            // The kernel SIGKILLs the step when the thread that started it dies, so a killed
            // `tarn serve` leaves no step running (Linux only; elsewhere the group kill on
            // drop does what it can).
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if let Some(bytes) = max_memory {
                let limit = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                libc::setrlimit(libc::RLIMIT_AS, &limit);
            }
            Ok(())
        });
    }
    cmd
}

/// A child whose stdout the caller reads as it comes (a Singer tap's messages); its stderr is
/// kept as logs (capped at [`LOG_CAP`]) and streamed to a sink.
pub struct Streaming {
    child: tokio::process::Child,
    /// The child's stdout, to read line by line.
    pub stdout: Option<tokio::process::ChildStdout>,
    pid: Option<i32>,
    logs: std::sync::Arc<std::sync::Mutex<Capped>>,
    err_task: tokio::task::JoinHandle<()>,
}

impl Streaming {
    /// Starts `program` with stdin closed.
    pub fn start(
        program: &Path,
        args: &[String],
        cwd: &Path,
        env: &[(String, String)],
        sink: Option<LineSink>,
    ) -> std::io::Result<Streaming> {
        let mut cmd = command(program, args, cwd, env, None);
        cmd.stdin(Stdio::null());
        let mut child = cmd.spawn()?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Capped::default()));
        let err = child.stderr.take().expect("piped");
        let l = logs.clone();
        let err_task = tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(s) = &sink {
                    s(&line);
                }
                l.lock().expect("log lock").push(&line);
            }
        });
        Ok(Streaming {
            stdout: child.stdout.take(),
            child,
            pid,
            logs,
            err_task,
        })
    }

    /// Kills the child and its group now.
    pub fn kill(&self) {
        kill_group(self.pid);
    }

    /// Waits for the child to end (at most `within`, then kills it) and answers how it ended,
    /// with its stderr as logs (`stdout` is empty: the caller read it).
    pub async fn finish(mut self, within: Duration) -> std::io::Result<Finished> {
        let waited = tokio::time::timeout(within, self.child.wait()).await;
        let (status, timed_out) = match waited {
            Ok(s) => (Some(s?), false),
            Err(_) => {
                kill_group(self.pid);
                let _ = self.child.wait().await;
                (None, true)
            }
        };
        kill_group(self.pid);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.err_task).await;
        let logs = self.logs.lock().expect("log lock").text();
        Ok(Finished {
            success: status.map(|s| s.success()).unwrap_or(false),
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)),
            stdout: String::new(),
            logs,
            timed_out,
        })
    }
}

/// Kills the process group `pgid` (a child started in a group of its own leads it, with its
/// pid as the group's id); nothing when there is none.
#[allow(unsafe_code)]
pub fn kill_group(pgid: Option<i32>) {
    if let Some(pgid) = pgid.filter(|g| *g > 0) {
        // SAFETY: killpg(2) only sends a signal to the group the child leads.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// Keeps the head and the tail of a long log.
#[derive(Default)]
struct Capped {
    head: String,
    tail: std::collections::VecDeque<String>,
    tail_len: usize,
    dropped: usize,
}

impl Capped {
    fn push(&mut self, line: &str) {
        if self.head.len() + line.len() < LOG_CAP / 2 {
            self.head.push_str(line);
            self.head.push('\n');
            return;
        }
        self.tail.push_back(format!("{line}\n"));
        self.tail_len += line.len() + 1;
        while self.tail_len > LOG_CAP / 2 {
            let gone = self.tail.pop_front().unwrap_or_default();
            self.tail_len -= gone.len();
            self.dropped += 1;
        }
    }

    fn text(&self) -> String {
        let mut s = self.head.clone();
        if self.dropped > 0 {
            s.push_str(&format!("... {} lines left out ...\n", self.dropped));
        }
        s.extend(self.tail.iter().cloned());
        s
    }
}
