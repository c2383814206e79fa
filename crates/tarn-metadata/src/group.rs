//! Group commit on SQLite: log-batch writes that arrive while the one writing connection is
//! busy wait in a queue, and the next writer commits all of them in one transaction.
//!
//! SQLite has one writer at a time, so a store's writes queue anyway (`Store::write_tx`);
//! what grouping saves is the per-transaction cost (the lock, the WAL frames of the same
//! index pages written once per group instead of once per batch, and the checkpoints they
//! bring, and the hand-overs to SQLite's thread). Each batch stays all or nothing: a batch
//! checks everything before it writes, so a refused one (an unknown run, a param changing
//! value) has written nothing and the others of its group are committed; if the
//! transaction fails as a whole, each batch is tried again alone. A caller is answered only
//! after the commit that holds its batch: an acknowledged batch is stored.
//!
//! Whoever takes the leader's lock first runs the queue's batches (up to [`GROUP_MAX`]) on a
//! task of its own, so a caller that goes away (a client hanging up) cannot cut a group short.

use crate::store::Store;
use crate::tracking::{write_batch, write_batches, Prepared};
use crate::MetadataError;
#[cfg(test)]
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The most batches one transaction commits (each holds at most 1,000 metrics).
pub const GROUP_MAX: usize = 64;

struct Job {
    run_id: String,
    batch: Prepared,
    done: oneshot::Sender<Result<(), MetadataError>>,
}

/// The queue of batches waiting for the writer, and the lock its leader holds.
#[derive(Default)]
pub(crate) struct Group {
    queue: Mutex<Vec<Job>>,
    leader: Arc<tokio::sync::Mutex<()>>,
    /// Groups written so far (what the tests count).
    #[cfg(test)]
    groups: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

impl Group {
    /// Writes `batch` to run `run_id`, with whatever other batches are waiting, and answers
    /// once the transaction that holds it has committed (or why it was not written).
    pub(crate) async fn commit(
        &self,
        store: &Store,
        run_id: &str,
        batch: Prepared,
    ) -> Result<(), MetadataError> {
        let (done, mut answer) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Job {
                run_id: run_id.to_string(),
                batch,
                done,
            });
        // Until this batch is answered: wait for the answer or the leader's lock, whichever
        // comes first. The leader takes the oldest batches waiting (this one among them, unless
        // more than a group's worth are ahead of it; then it leads again later).
        loop {
            let leader = tokio::select! {
                biased;
                answered = &mut answer => return answered.unwrap_or_else(|_| Err(lost())),
                leader = self.leader.clone().lock_owned() => leader,
            };
            let jobs = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let n = queue.len().min(GROUP_MAX);
                queue.drain(..n).collect::<Vec<_>>()
            };
            if jobs.is_empty() {
                // An earlier group took this batch and has answered it.
                continue;
            }
            // On a task of its own (sqlx runs on tokio, so there is a runtime): the group
            // finishes even if this caller's future is dropped.
            let store = store.clone();
            tokio::spawn(async move {
                run(&store, jobs).await;
                #[cfg(test)]
                store.group.groups.fetch_add(1, Ordering::Relaxed);
                drop(leader);
            });
        }
    }
}

/// The answer of a batch whose group ended without answering it (a panic in the writer).
fn lost() -> MetadataError {
    MetadataError::Group("the transaction holding this batch ended without an answer".into())
}

/// One transaction for `jobs`; every job is answered. A batch refused by MLflow's rules has
/// written nothing ([`write_batches`] checks each before it writes), so it is answered with
/// its reason and the others go on. If the transaction itself fails (the store could not
/// begin, a statement or the commit failed), each batch is tried again alone, so each gets
/// the answer it would have had without the others.
async fn run(store: &Store, jobs: Vec<Job>) {
    if jobs.len() > 1 {
        let together = async {
            let mut tx = store.write_tx().await?;
            let batches: Vec<(&str, &Prepared)> = jobs
                .iter()
                .map(|job| (job.run_id.as_str(), &job.batch))
                .collect();
            let answers = write_batches(&mut tx, &batches).await?;
            if answers.iter().any(Result::is_ok) {
                tx.commit().await?;
            }
            Ok::<_, MetadataError>(answers)
        }
        .await;
        if let Ok(answers) = together {
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.done.send(answer);
            }
            return;
        }
    }
    for job in jobs {
        let answer = async {
            let mut tx = store.write_tx().await?;
            write_batch(&mut tx, &job.run_id, &job.batch).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        let _ = job.done.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use crate::kv::KeyValue;
    use crate::testing::{fresh_store, BACKENDS};
    use crate::tracking::{Batch, Metric};
    use crate::MetadataError;
    use std::sync::atomic::Ordering;

    fn point(key: &str, step: i64) -> Metric {
        Metric {
            key: key.into(),
            value: step as f64 / 2.0,
            timestamp: 1_700_000_000_000 + step,
            step,
            ..Default::default()
        }
    }

    /// Forty log-batches at once while the writer is held: on SQLite they are committed in a
    /// few transactions, not forty, and still each batch is answered on its own merits. The
    /// one changing a param's value and the one naming no run are refused with their reasons
    /// and leave nothing behind; every other batch's points and params are all there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_waiting_for_the_writer_share_a_commit_and_keep_their_own_answers() {
        for backend in BACKENDS {
            let dir = tempfile::tempdir().unwrap();
            let store = fresh_store(backend, dir.path()).await.unwrap();
            let t = store.tracking();
            let exp = t.create_experiment("group", None, &[]).await.unwrap();
            let mut runs = Vec::new();
            for i in 0..40 {
                let run = t
                    .create_run(&exp, "u", Some(&format!("r{i}")), None, &[])
                    .await
                    .unwrap();
                runs.push(run.info.run_id);
            }
            let fixed = Batch {
                params: vec![KeyValue {
                    key: "lr".into(),
                    value: "0.1".into(),
                }],
                ..Default::default()
            };
            t.log_batch(&runs[7], &fixed).await.unwrap();
            let before = store.group.groups.load(Ordering::Relaxed);
            // Hold the one writing connection so the batches queue behind it.
            let held = store.write_tx().await.unwrap();
            let mut calls = Vec::new();
            for (i, run) in runs.iter().enumerate() {
                let store = store.clone();
                let run = if i == 13 { "0".repeat(32) } else { run.clone() };
                let batch = Batch {
                    metrics: (0..10).map(|s| point(&format!("m{}", s % 3), s)).collect(),
                    params: vec![KeyValue {
                        key: "lr".into(),
                        value: if i == 7 { "0.2" } else { "0.1" }.into(),
                    }],
                    tags: vec![KeyValue {
                        key: "i".into(),
                        value: i.to_string(),
                    }],
                };
                calls.push(tokio::spawn(async move {
                    store.tracking().log_batch(&run, &batch).await
                }));
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            drop(held);
            let mut answers = Vec::new();
            for call in calls {
                answers.push(call.await.unwrap());
            }
            for (i, answer) in answers.iter().enumerate() {
                match i {
                    7 => assert!(
                        matches!(answer, Err(MetadataError::Refused(why)) if why.contains("Changing param values is not allowed")),
                        "{backend:?}: {answer:?}"
                    ),
                    13 => assert!(
                        matches!(answer, Err(MetadataError::NotFound(_))),
                        "{backend:?}: {answer:?}"
                    ),
                    _ => assert!(answer.is_ok(), "{backend:?} batch {i}: {answer:?}"),
                }
            }
            for (i, run) in runs.iter().enumerate() {
                let stored = t.run(run).await.unwrap().unwrap();
                let points: usize = {
                    let mut n = 0;
                    for k in ["m0", "m1", "m2"] {
                        n += t.metric_history(run, k).await.unwrap().len();
                    }
                    n
                };
                let tag = stored.data.tags.iter().find(|kv| kv.key == "i");
                if i == 7 || i == 13 {
                    // Refused (a param changing value), or sent to a run that does not exist.
                    assert_eq!(points, 0, "{backend:?}: run {i} got points");
                    assert!(tag.is_none(), "{backend:?}: run {i} got a tag");
                    let params = if i == 7 { fixed.params.clone() } else { vec![] };
                    assert_eq!(stored.data.params, params, "{backend:?}: run {i}");
                } else {
                    assert_eq!(points, 10, "{backend:?}: run {i}");
                    assert_eq!(
                        tag.map(|kv| kv.value.as_str()),
                        Some(i.to_string().as_str())
                    );
                    assert_eq!(stored.data.params.len(), 1);
                }
            }
            if backend == crate::testing::Backend::Sqlite {
                let groups = store.group.groups.load(Ordering::Relaxed) - before;
                assert!(
                    groups < 10,
                    "40 batches queued behind the writer took {groups} transactions"
                );
            }
        }
    }

    /// More batches waiting than one group takes (150 against 64): every one is answered
    /// and stored, the newest callers leading again until their own batch is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_batches_than_a_group_holds_are_all_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = fresh_store(crate::testing::Backend::Sqlite, dir.path())
            .await
            .unwrap();
        let t = store.tracking();
        let exp = t.create_experiment("many", None, &[]).await.unwrap();
        let run = t
            .create_run(&exp, "u", None, None, &[])
            .await
            .unwrap()
            .info
            .run_id;
        let held = store.write_tx().await.unwrap();
        let mut calls = Vec::new();
        for step in 0..150 {
            let (store, run) = (store.clone(), run.clone());
            calls.push(tokio::spawn(async move {
                let batch = Batch {
                    metrics: vec![point("loss", step)],
                    ..Default::default()
                };
                store.tracking().log_batch(&run, &batch).await
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        drop(held);
        let all = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            for call in calls {
                call.await.unwrap().unwrap();
            }
        })
        .await;
        assert!(all.is_ok(), "some batches were never answered");
        assert_eq!(t.metric_history(&run, "loss").await.unwrap().len(), 150);
        // Batches of one group logging the same key: the latest is the greatest step of all.
        let stored = t.run(&run).await.unwrap().unwrap();
        let loss = stored.data.metrics.iter().find(|m| m.key == "loss");
        assert_eq!(loss.map(|m| m.step), Some(149), "{:?}", stored.data.metrics);
    }
}
