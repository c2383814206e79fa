//! Where queries run: a runtime of their own, off the threads that answer `/health`, model
//! endpoints and the MLflow API, so a heavy query slows other queries and nothing else. Its
//! threads have large stacks (planning recurses once per level of an expression, within the
//! `sql_depth` limit, and dropping a refused query's syntax tree recurses once per level of
//! what was sent, within the `sql_length` limit). Its threads run at a lower CPU priority
//! (nice 10 on Linux), so on a busy machine the cores go first to `/health`, endpoints and
//! the API, and queries take what is left. The runtime lives as long as the process.

use std::sync::OnceLock;

/// Stack of each query thread: reserved address space, touched only as deep as a query goes.
const STACK_BYTES: usize = 256 * 1024 * 1024;

/// The cores queries run on: the query runtime's threads, and an engine's target partitions.
pub(crate) fn parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// The process's query runtime, started on first use with one thread per core.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(parallelism())
            .thread_name("tarn-query")
            .thread_stack_size(STACK_BYTES)
            .on_thread_start(yield_cpu_to_requests)
            .enable_all()
            .build()
            .expect("the query runtime starts (threads and timers are available)")
    })
}

/// Stops a spawned query when the caller stops waiting for it (a timeout, a dropped stream,
/// a client that went away): its scans refuse their next batch and its tasks are aborted at
/// their next yield.
pub(crate) struct AbortOnDrop(
    pub tokio::task::AbortHandle,
    pub std::sync::Arc<crate::cancel::Cancelled>,
);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.1.cancel();
        self.0.abort();
    }
}

/// Lowers the calling thread's CPU priority (Linux keeps a nice value per thread).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn yield_cpu_to_requests() {
    // SAFETY: setpriority takes no pointers; `who = 0` names the calling thread, whose nice
    // value it raises (never lowers: no privilege needed). A failure leaves it as it was.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

#[cfg(not(target_os = "linux"))]
fn yield_cpu_to_requests() {}
