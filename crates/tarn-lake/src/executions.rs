//! Pipeline executions and custom events as the CLI and the API share them: recording a
//! custom event, listing executions page by page, one execution with its attempts, its logs
//! as text, retrying and cancelling. Running them is `tarn-pipelines`' work.

use crate::{Lake, LakeError};
use serde::{Deserialize, Serialize};
use tarn_metadata::{ExecutionRecord, NewEvent, StepAttempt};

/// The kind of events `tarn events put` and `POST /api/v1/events` record.
pub const CUSTOM_EVENT: &str = "custom";

/// An execution and every attempt of its steps, in the order they started.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionDetail {
    pub execution: ExecutionRecord,
    pub attempts: Vec<StepAttempt>,
}

/// One page of executions, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionPage {
    pub items: Vec<ExecutionRecord>,
    /// Pass as `next_token` for the next (older) page; absent on the last one.
    pub next_token: Option<String>,
}

impl Lake {
    /// Records a custom event (`source`, `detail_type`, a JSON object `detail`), as an
    /// EventBridge `PutEvents` would; answers its id. `event_rule` triggers match it.
    pub async fn put_event(
        &self,
        source: &str,
        detail_type: &str,
        detail: serde_json::Value,
    ) -> Result<String, LakeError> {
        if source.trim().is_empty() || detail_type.trim().is_empty() {
            return Err(LakeError::Usage(
                "an event needs a source and a detail type, e.g. source `billing`, detail type `invoice.paid`".into(),
            ));
        }
        if !detail.is_object() {
            return Err(LakeError::Usage(
                "the event's detail must be a JSON object, e.g. {\"id\": 7}".into(),
            ));
        }
        let e = NewEvent {
            kind: CUSTOM_EVENT.into(),
            zone: String::new(),
            key: detail_type.into(),
            etag: uuid::Uuid::new_v4().to_string(),
            size: 0,
            detail: serde_json::json!({"source": source, "detail_type": detail_type, "detail": detail}),
        };
        Ok(self
            .meta
            .events()
            .record_event_id(&e)
            .await?
            .unwrap_or_default())
    }

    /// Executions, newest first, of one pipeline and status when given, `limit` at a time
    /// after `next_token` (a previous page's).
    pub async fn executions_page(
        &self,
        pipeline: Option<&str>,
        status: Option<&str>,
        next_token: Option<&str>,
        limit: usize,
    ) -> Result<ExecutionPage, LakeError> {
        let before = match next_token {
            Some(t) => Some(t.split_once('|').ok_or_else(|| {
                LakeError::Usage(format!(
                    "next_token `{t}` is not one this server gave; start again without it"
                ))
            })?),
            None => None,
        };
        let mut items = self
            .meta
            .executions()
            .list(pipeline, status, before, limit as i64 + 1)
            .await?;
        let next_token = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|e| format!("{}|{}", e.created_at, e.id))
        } else {
            None
        };
        Ok(ExecutionPage { items, next_token })
    }

    /// One execution and its attempts.
    pub async fn execution(&self, id: &str) -> Result<ExecutionDetail, LakeError> {
        let execution = self
            .meta
            .executions()
            .execution(id)
            .await?
            .ok_or_else(|| LakeError::NoSuchExecution(id.to_string()))?;
        let attempts = self.meta.executions().attempts(id).await?;
        Ok(ExecutionDetail {
            execution,
            attempts,
        })
    }

    /// Every attempt's output and error, as text: `== STEP attempt N (STATUS)` then its lines.
    pub async fn execution_logs(&self, id: &str) -> Result<String, LakeError> {
        let d = self.execution(id).await?;
        let mut out = String::new();
        for a in &d.attempts {
            out.push_str(&format!(
                "== {} attempt {} ({})\n",
                a.step, a.attempt, a.status
            ));
            out.push_str(&a.logs);
            if !a.logs.is_empty() && !a.logs.ends_with('\n') {
                out.push('\n');
            }
            if let Some(e) = &a.error {
                out.push_str(&format!("error: {e}\n"));
            }
        }
        Ok(out)
    }

    /// Runs a failed or cancelled execution again from the step it stopped at.
    pub async fn retry_execution(&self, id: &str) -> Result<ExecutionRecord, LakeError> {
        let d = self.execution(id).await?;
        if !self.meta.executions().retry_execution(id).await? {
            return Err(LakeError::ExecutionState(format!(
                "execution `{id}` is {}; only failed or cancelled executions can be retried",
                d.execution.status
            )));
        }
        Ok(self.execution(id).await?.execution)
    }

    /// Cancels a pending or running execution; a running step is stopped within seconds.
    pub async fn cancel_execution(&self, id: &str) -> Result<ExecutionRecord, LakeError> {
        let d = self.execution(id).await?;
        if !self.meta.executions().cancel_execution(id).await? {
            return Err(LakeError::ExecutionState(format!(
                "execution `{id}` is {}; only pending or running executions can be cancelled",
                d.execution.status
            )));
        }
        Ok(self.execution(id).await?.execution)
    }
}
