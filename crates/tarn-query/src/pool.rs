//! Where queries run: a runtime of their own, off the threads that answer `/health`, model
//! endpoints and the MLflow API, so a heavy query slows other queries and nothing else. Its
//! threads have large stacks (planning recurses once per level of an expression, within the
//! `sql_depth` limit, and dropping a refused query's syntax tree recurses once per level of
//! what was sent, within the `sql_length` limit). The runtime lives as long as the process.

use std::sync::OnceLock;

/// Stack of each query thread: reserved address space, touched only as deep as a query goes.
const STACK_BYTES: usize = 256 * 1024 * 1024;

/// The process's query runtime, started on first use with one thread per core.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            )
            .thread_name("tarn-query")
            .thread_stack_size(STACK_BYTES)
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
