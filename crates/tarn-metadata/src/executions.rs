//! Pipeline executions and step attempts: created once per (pipeline, event), leased by
//! workers, moved step by step, so an execution survives the process that ran it.

use crate::columns::JsonText;
use crate::{Event, MetadataError, Store};
use serde::Serialize;
use std::time::Duration;

/// Pipeline executions: dispatch of events, claims and leases, step attempts. Reached with [`Store::executions`].
#[derive(Clone, Copy, Debug)]
pub struct Executions<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// Pipeline executions: dispatch of events, claims and leases, step attempts.
    pub fn executions(&self) -> Executions<'_> {
        Executions { store: self }
    }
}

/// Execution states.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const RUNNING: &str = "running";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
    /// A step attempt whose worker died before it ended.
    pub const ABANDONED: &str = "abandoned";
}

/// One execution of a pipeline.
#[derive(
    Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct ExecutionRecord {
    pub id: String,
    pub pipeline: String,
    /// The event that started it.
    pub event_id: String,
    pub status: String,
    #[sqlx(try_from = "JsonText")]
    pub input: serde_json::Value,
    /// The step running, or to run next (none once ended well).
    pub step: Option<String>,
    #[sqlx(try_from = "JsonText")]
    pub step_input: Option<serde_json::Value>,
    /// Failed attempts of `step` so far.
    pub failures: i64,
    #[sqlx(try_from = "JsonText")]
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// One attempt at one step of an execution.
#[derive(
    Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct StepAttempt {
    pub id: String,
    pub execution_id: String,
    pub step: String,
    pub attempt: i64,
    pub status: String,
    #[sqlx(try_from = "JsonText")]
    pub input: serde_json::Value,
    #[sqlx(try_from = "JsonText")]
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    /// The step's stdout and stderr, size-capped.
    pub logs: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The node (`HOST:PID`) that ran the attempt; empty for attempts recorded before tarn
    /// kept it.
    #[serde(default)]
    pub node: String,
}

/// An execution a trigger asks for.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub pipeline: String,
    pub input: serde_json::Value,
    pub first_step: String,
}

/// The execution id for (pipeline, event): derived, so a replayed event finds its execution.
pub fn execution_id(pipeline: &str, event_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{pipeline}\0{event_id}").as_bytes());
    hex::encode(&digest[..12])
}

fn at(d: Duration) -> String {
    (chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default())
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

const EXECUTION_COLUMNS: &str = "id, pipeline, event_id, status, input, step, step_input, failures, output, error, created_at, started_at, finished_at";

impl Executions<'_> {
    /// Events no trigger has looked at yet, oldest first.
    pub async fn undispatched_events(&self, limit: i64) -> Result<Vec<Event>, MetadataError> {
        let rows = sqlx::query_as::<_, Event>(
            "SELECT id, kind, zone, object_key, etag, size, detail, created_at FROM events
             WHERE dispatched_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows)
    }

    /// Creates the executions `event` starts (none twice) and marks the event dispatched, in
    /// one transaction. Returns the ids of the executions this call created.
    pub async fn dispatch(
        &self,
        event_id: &str,
        wanted: &[NewExecution],
    ) -> Result<Vec<String>, MetadataError> {
        Ok(self.dispatch_marking(event_id, wanted).await?.0)
    }

    /// [`Store::dispatch`], also answering whether this call was the one that marked the event
    /// dispatched (so what follows an event, such as notifying topics, happens once).
    pub async fn dispatch_marking(
        &self,
        event_id: &str,
        wanted: &[NewExecution],
    ) -> Result<(Vec<String>, bool), MetadataError> {
        let mut tx = self.store.write_tx().await?;
        let now = crate::now();
        let mut created = Vec::new();
        for w in wanted {
            let id = execution_id(&w.pipeline, event_id);
            let input = w.input.to_string();
            let res = sqlx::query(
                "INSERT INTO executions (id, pipeline, event_id, status, input, step, step_input, failures, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(&w.pipeline)
            .bind(event_id)
            .bind(status::PENDING)
            .bind(&input)
            .bind(&w.first_step)
            .bind(&input)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            if res.rows_affected() == 1 {
                created.push(id);
            }
        }
        let marked = sqlx::query(
            "UPDATE events SET dispatched_at = $1 WHERE id = $2 AND dispatched_at IS NULL",
        )
        .bind(&now)
        .bind(event_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok((created, marked))
    }

    /// Leases the oldest execution that is due and not leased by a live worker.
    pub async fn claim_execution(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<ExecutionRecord>, MetadataError> {
        let now = crate::now();
        for _ in 0..5 {
            let candidate: Option<String> = sqlx::query_scalar(
                "SELECT id FROM executions
                 WHERE status IN ('pending', 'running')
                   AND (lease_until IS NULL OR lease_until < $1)
                   AND (not_before IS NULL OR not_before <= $1)
                 ORDER BY created_at LIMIT 1",
            )
            .bind(&now)
            .fetch_optional(&self.store.pool)
            .await?;
            let Some(id) = candidate else { return Ok(None) };
            let res = sqlx::query(
                "UPDATE executions SET lease_owner = $1, lease_until = $2, status = 'running',
                        started_at = COALESCE(started_at, $3), not_before = NULL
                 WHERE id = $4 AND status IN ('pending', 'running')
                   AND (lease_until IS NULL OR lease_until < $3)",
            )
            .bind(owner)
            .bind(at(lease))
            .bind(&now)
            .bind(&id)
            .execute(&self.store.pool)
            .await?;
            if res.rows_affected() == 1 {
                return self.execution(&id).await;
            }
        }
        Ok(None)
    }

    /// Leases the execution `id` when it is open and not leased by a live worker.
    pub async fn claim_execution_id(
        &self,
        id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<ExecutionRecord>, MetadataError> {
        let now = crate::now();
        let res = sqlx::query(
            "UPDATE executions SET lease_owner = $1, lease_until = $2, status = 'running',
                    started_at = COALESCE(started_at, $3), not_before = NULL
             WHERE id = $4 AND status IN ('pending', 'running')
               AND (lease_until IS NULL OR lease_until < $3)
               AND (not_before IS NULL OR not_before <= $3)",
        )
        .bind(owner)
        .bind(at(lease))
        .bind(&now)
        .bind(id)
        .execute(&self.store.pool)
        .await?;
        if res.rows_affected() == 1 {
            self.execution(id).await
        } else {
            Ok(None)
        }
    }

    /// Extends a lease; false when the lease is no longer this owner's (or it was cancelled).
    pub async fn renew_lease(
        &self,
        id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, MetadataError> {
        let res = sqlx::query(
            "UPDATE executions SET lease_until = $1
             WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
        )
        .bind(at(lease))
        .bind(id)
        .bind(owner)
        .execute(&self.store.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Gives up leases held by `owner` (a worker that stopped or died), so others take them now.
    pub async fn release_leases(&self, owner_prefix: &str) -> Result<u64, MetadataError> {
        let res = sqlx::query(
            "UPDATE executions SET lease_until = NULL, lease_owner = NULL
             WHERE lease_owner LIKE $1 AND status IN ('pending', 'running')",
        )
        .bind(format!("{owner_prefix}%"))
        .execute(&self.store.pool)
        .await?;
        Ok(res.rows_affected())
    }

    /// Owners holding leases on open executions.
    pub async fn lease_owners(&self) -> Result<Vec<String>, MetadataError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT lease_owner FROM executions
             WHERE lease_owner IS NOT NULL AND status IN ('pending', 'running')",
        )
        .fetch_all(&self.store.pool)
        .await?)
    }

    /// Starts an attempt of the execution's current step; attempts left `running` by a
    /// worker that died are marked abandoned first. `node` is the running node's `HOST:PID`.
    /// Returns the attempt's id and number.
    pub async fn start_attempt(
        &self,
        exec: &ExecutionRecord,
        step: &str,
        input: &serde_json::Value,
        node: &str,
    ) -> Result<(String, i64), MetadataError> {
        let mut tx = self.store.write_tx().await?;
        sqlx::query(
            "UPDATE step_attempts SET status = $1, finished_at = $2,
                    error = 'the worker running this attempt stopped; the step was started again'
             WHERE execution_id = $3 AND status = 'running'",
        )
        .bind(status::ABANDONED)
        .bind(crate::now())
        .bind(&exec.id)
        .execute(&mut *tx)
        .await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM step_attempts WHERE execution_id = $1 AND step = $2",
        )
        .bind(&exec.id)
        .bind(step)
        .fetch_one(&mut *tx)
        .await?;
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO step_attempts (id, execution_id, pipeline, step, attempt, status, input, logs, started_at, node)
             VALUES ($1, $2, $3, $4, $5, 'running', $6, '', $7, $8)",
        )
        .bind(&id)
        .bind(&exec.id)
        .bind(&exec.pipeline)
        .bind(step)
        .bind(n + 1)
        .bind(input.to_string())
        .bind(crate::now())
        .bind(node)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((id, n + 1))
    }

    /// What a running attempt has written so far (its logs while it runs: the page of a
    /// running step reads them). Only ever grows the logs, so a late write of older lines
    /// never hides newer ones, and never touches an attempt that has ended.
    pub async fn running_logs(&self, attempt_id: &str, logs: &str) -> Result<(), MetadataError> {
        sqlx::query(
            "UPDATE step_attempts SET logs = $1
             WHERE id = $2 AND status = 'running' AND length(logs) <= $3",
        )
        .bind(logs)
        .bind(attempt_id)
        .bind(logs.len() as i64)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Ends an attempt.
    pub async fn finish_attempt(
        &self,
        attempt_id: &str,
        status: &str,
        output: Option<&serde_json::Value>,
        error: Option<&str>,
        logs: &str,
    ) -> Result<(), MetadataError> {
        sqlx::query(
            "UPDATE step_attempts SET status = $1, output = $2, error = $3, logs = $4, finished_at = $5
             WHERE id = $6",
        )
        .bind(status)
        .bind(output.map(|o| o.to_string()))
        .bind(error)
        .bind(logs)
        .bind(crate::now())
        .bind(attempt_id)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Attempts of `pipeline`'s `step` running now under a live lease.
    pub async fn running_attempts(&self, pipeline: &str, step: &str) -> Result<i64, MetadataError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM step_attempts a JOIN executions e ON e.id = a.execution_id
             WHERE a.pipeline = $1 AND a.step = $2 AND a.status = 'running'
               AND e.lease_until IS NOT NULL AND e.lease_until >= $3",
        )
        .bind(pipeline)
        .bind(step)
        .bind(crate::now())
        .fetch_one(&self.store.pool)
        .await?)
    }

    /// Records `attempt_id` as succeeded with `output` and `logs` and moves the execution on,
    /// in one transaction (a crash leaves both or neither): to `next` with `output` as its
    /// input, or, with no next step, to its end. Returns false when the execution was not
    /// moved (the lease is gone or it was cancelled).
    pub async fn advance(
        &self,
        id: &str,
        owner: &str,
        attempt_id: &str,
        logs: &str,
        next: Option<&str>,
        output: &serde_json::Value,
    ) -> Result<bool, MetadataError> {
        let mut tx = self.store.write_tx().await?;
        let now = crate::now();
        let out = output.to_string();
        sqlx::query(
            "UPDATE step_attempts SET status = 'succeeded', output = $1, error = NULL, logs = $2,
                    finished_at = $3
             WHERE id = $4",
        )
        .bind(&out)
        .bind(logs)
        .bind(&now)
        .bind(attempt_id)
        .execute(&mut *tx)
        .await?;
        let res =
            match next {
                Some(step) => {
                    sqlx::query(
                        "UPDATE executions SET step = $1, step_input = $2, failures = 0
                     WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
                    )
                    .bind(step)
                    .bind(&out)
                    .bind(id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?
                }
                None => sqlx::query(
                    "UPDATE executions SET step = NULL, step_input = NULL, status = 'succeeded',
                        output = $1, finished_at = $2, lease_owner = NULL, lease_until = NULL
                     WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
                )
                .bind(&out)
                .bind(&now)
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?,
            };
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    /// A failed attempt that will be tried again after `wait`: the lease is let go meanwhile.
    pub async fn retry_later(
        &self,
        id: &str,
        owner: &str,
        failures: i64,
        wait: Duration,
    ) -> Result<bool, MetadataError> {
        let res = sqlx::query(
            "UPDATE executions SET failures = $1, not_before = $2, lease_owner = NULL, lease_until = NULL
             WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
        )
        .bind(failures)
        .bind(at(wait))
        .bind(id)
        .bind(owner)
        .execute(&self.store.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Lets an execution go without moving it (a step at its concurrency limit waits `wait`).
    pub async fn postpone(
        &self,
        id: &str,
        owner: &str,
        wait: Duration,
    ) -> Result<(), MetadataError> {
        sqlx::query(
            "UPDATE executions SET not_before = $1, lease_owner = NULL, lease_until = NULL
             WHERE id = $2 AND lease_owner = $3",
        )
        .bind(at(wait))
        .bind(id)
        .bind(owner)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Ends an execution as failed, keeping the step it failed at.
    pub async fn fail_execution(
        &self,
        id: &str,
        owner: &str,
        failures: i64,
        error: &str,
    ) -> Result<bool, MetadataError> {
        let res = sqlx::query(
            "UPDATE executions SET status = 'failed', failures = $1, error = $2, finished_at = $3,
                    lease_owner = NULL, lease_until = NULL
             WHERE id = $4 AND lease_owner = $5 AND status = 'running'",
        )
        .bind(failures)
        .bind(error)
        .bind(crate::now())
        .bind(id)
        .bind(owner)
        .execute(&self.store.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Cancels an open execution; a worker running it stops at its next lease renewal.
    pub async fn cancel_execution(&self, id: &str) -> Result<bool, MetadataError> {
        let res = sqlx::query(
            "UPDATE executions SET status = 'cancelled', finished_at = $1, error = 'cancelled'
             WHERE id = $2 AND status IN ('pending', 'running')",
        )
        .bind(crate::now())
        .bind(id)
        .execute(&self.store.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Starts a failed or cancelled execution again, from the step it stopped at.
    pub async fn retry_execution(&self, id: &str) -> Result<bool, MetadataError> {
        let res = sqlx::query(
            "UPDATE executions SET status = 'pending', failures = 0, error = NULL, finished_at = NULL,
                    lease_owner = NULL, lease_until = NULL, not_before = NULL
             WHERE id = $1 AND status IN ('failed', 'cancelled') AND step IS NOT NULL",
        )
        .bind(id)
        .execute(&self.store.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// One execution.
    pub async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, MetadataError> {
        let row = sqlx::query_as::<_, ExecutionRecord>(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.store.pool)
        .await?;
        Ok(row)
    }

    /// Executions, newest first, optionally of one pipeline and one status, and only those
    /// older than `before` (a `(created_at, id)` of a previous page's last).
    pub async fn list(
        &self,
        pipeline: Option<&str>,
        status: Option<&str>,
        before: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<ExecutionRecord>, MetadataError> {
        let (at, id) = before.unwrap_or(("", ""));
        let rows = sqlx::query_as::<_, ExecutionRecord>(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions
             WHERE ($1 = '' OR pipeline = $1) AND ($2 = '' OR status = $2)
               AND ($3 = '' OR created_at < $3 OR (created_at = $3 AND id < $4))
             ORDER BY created_at DESC, id DESC LIMIT $5"
        ))
        .bind(pipeline.unwrap_or(""))
        .bind(status.unwrap_or(""))
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows)
    }

    /// The attempts of an execution, in the order they started.
    pub async fn attempts(&self, execution_id: &str) -> Result<Vec<StepAttempt>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT id, execution_id, step, attempt, status, input, output, error, logs, started_at, finished_at, node
             FROM step_attempts WHERE execution_id = $1 ORDER BY started_at, id",
        )
        .bind(execution_id)
        .fetch_all(&self.store.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fresh_store, BACKENDS};

    #[tokio::test]
    async fn executions_and_attempts_read_back_with_their_json() {
        for backend in BACKENDS {
            let dir = tempfile::tempdir().unwrap();
            let store = fresh_store(backend, dir.path()).await.unwrap();
            let event = crate::NewEvent::object_created("flights/raw", "in/a.csv", "e1", 10);
            assert!(store.events().record_event(&event).await.unwrap());
            let event_id = store.executions().undispatched_events(10).await.unwrap()[0]
                .id
                .clone();
            let input = serde_json::json!({"key": "in/a.csv", "n": 1});
            let wanted = [NewExecution {
                pipeline: "clean".into(),
                input: input.clone(),
                first_step: "first".into(),
            }];
            let ids = store
                .executions()
                .dispatch(&event_id, &wanted)
                .await
                .unwrap();
            assert_eq!(ids, vec![execution_id("clean", &event_id)]);
            let exec = store
                .executions()
                .execution(&ids[0])
                .await
                .unwrap()
                .unwrap();
            assert_eq!(exec.input, input);
            assert_eq!(exec.output, None);
            let (attempt, n) = store
                .executions()
                .start_attempt(&exec, "first", &input, "host:1")
                .await
                .unwrap();
            assert_eq!(n, 1);
            let out = serde_json::json!({"rows": 3});
            store
                .executions()
                .finish_attempt(&attempt, status::SUCCEEDED, Some(&out), None, "done\n")
                .await
                .unwrap();
            let attempts = store.executions().attempts(&exec.id).await.unwrap();
            assert_eq!(attempts.len(), 1);
            assert_eq!(attempts[0].input, input);
            assert_eq!(attempts[0].output, Some(out));
            assert_eq!(attempts[0].logs, "done\n");
            assert_eq!(attempts[0].status, status::SUCCEEDED);
            assert_eq!(attempts[0].node, "host:1");
        }
    }
}
