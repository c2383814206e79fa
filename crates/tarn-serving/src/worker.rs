//! CPU-bound inference off the async runtime: a pool of threads per endpoint takes requests
//! from a bounded queue (full: 503 at once instead of growing latency) and micro-batches
//! them: a thread that finds several requests waiting runs them through the model as one
//! batch (up to the endpoint's `max_batch` rows) and splits the answers. Requests are only
//! batched with others bound to the same loaded version, so a swap never mixes versions.

use crate::error::ServingError;
use crate::onnx::Feeds;
use crate::Loaded;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tarn_onnx::Value;

/// One request waiting for the model.
pub(crate) struct Job {
    pub loaded: Arc<Loaded>,
    pub feeds: Feeds,
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<Value>, ServingError>>,
}

/// The queue and threads of one endpoint; the threads stop when it is dropped.
pub(crate) struct Pool {
    tx: crossbeam_channel::Sender<Job>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
}

impl Pool {
    pub fn new(name: &str, threads: usize, max_queue: usize, max_batch: usize) -> Pool {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(max_queue);
        let depth = Arc::new(AtomicUsize::new(0));
        for k in 0..threads.max(1) {
            let rx = rx.clone();
            let depth = depth.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tarn-endpoint-{name}-{k}"))
                .spawn(move || work(rx, depth, max_batch));
            if let Err(e) = spawned {
                tracing::error!("cannot start a worker thread for endpoint {name}: {e}");
            }
        }
        Pool {
            tx,
            depth,
            capacity: max_queue,
        }
    }

    /// Queues a request; a full queue is a 503 now rather than a long wait.
    pub fn submit(&self, job: Job) -> Result<(), ServingError> {
        match self.tx.try_send(job) {
            Ok(()) => {
                self.depth.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(crossbeam_channel::TrySendError::Full(_)) => Err(ServingError::Unavailable(
                format!(
                    "the endpoint's queue is full ({} requests waiting); retry shortly or raise max_queue",
                    self.capacity
                ),
            )),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(
                ServingError::Unavailable("the endpoint is shutting down".into()),
            ),
        }
    }

    /// Requests waiting.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

fn work(rx: crossbeam_channel::Receiver<Job>, depth: Arc<AtomicUsize>, max_batch: usize) {
    while let Ok(first) = rx.recv() {
        let mut rows = first.feeds.rows;
        let mut jobs = vec![first];
        while rows < max_batch {
            match rx.try_recv() {
                Ok(j) => {
                    rows += j.feeds.rows;
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        depth.fetch_sub(jobs.len(), Ordering::Relaxed);
        // Callers that gave up (timeout, closed connection) are not scored.
        jobs.retain(|j| !j.reply.is_closed());
        while !jobs.is_empty() {
            let lead = jobs[0].loaded.clone();
            let (mine, rest): (Vec<Job>, Vec<Job>) = jobs
                .into_iter()
                .partition(|j| Arc::ptr_eq(&j.loaded, &lead));
            jobs = rest;
            let Some(model) = lead.onnx() else {
                for j in mine {
                    let _ = j.reply.send(Err(ServingError::Internal(
                        "this version does not run in process".into(),
                    )));
                }
                continue;
            };
            let feeds: Vec<&Feeds> = mine.iter().map(|j| &j.feeds).collect();
            let started = std::time::Instant::now();
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.run(&feeds)))
                    .unwrap_or_else(|_| {
                        Err(ServingError::Internal(
                            "the model panicked on this input".into(),
                        ))
                    });
            lead.busy_micros
                .fetch_add(started.elapsed().as_micros() as usize, Ordering::Relaxed);
            match result {
                Ok(answers) => {
                    for (j, a) in mine.into_iter().zip(answers) {
                        let _ = j.reply.send(Ok(a));
                    }
                }
                Err(e) if feeds.len() == 1 => {
                    for j in mine {
                        let _ = j.reply.send(Err(ServingError::BadRequest(e.to_string())));
                    }
                }
                Err(_) => {
                    // One bad request must not fail its neighbours: run each alone.
                    for j in mine {
                        let r = model.run(&[&j.feeds]).map(|mut a| a.remove(0));
                        let _ = j.reply.send(r);
                    }
                }
            }
        }
    }
}
