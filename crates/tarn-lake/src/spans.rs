//! The lake's spans table: every span of every MLflow trace whose spans reached the artifact
//! store (`traces.json`, uploaded by the client through the artifact proxy), one row per span,
//! in the Delta table `DOMAIN.service.mlflow_spans` of the lake's first domain, so
//! `tarn sql` can query traces (latency by span name, error spans, inputs) as mlflow server
//! cannot. Each trace's spans are appended once (a Delta application transaction per trace).

use crate::{Lake, LakeError};
use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt;
use serde_json::Value;
use std::sync::Arc;

/// The spans table's name within its zone.
pub const SPANS_TABLE: &str = "mlflow_spans";

/// The columns of the spans table.
pub fn spans_schema() -> SchemaRef {
    let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let time = |n: &str| {
        Field::new(
            n,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )
    };
    Arc::new(Schema::new(vec![
        text("trace_id", false),
        text("experiment_id", false),
        text("span_id", false),
        text("parent_span_id", true),
        text("name", true),
        text("span_type", true),
        text("status", true),
        time("start_time"),
        time("end_time"),
        Field::new("duration_ms", DataType::Float64, true),
        text("inputs", true),
        text("outputs", true),
        text("attributes", true),
    ]))
}

/// An attribute as MLflow writes it: a JSON document in a string (`"\"CHAIN\""`).
fn attribute(span: &Value, key: &str) -> Option<String> {
    let raw = &span["attributes"][key];
    match raw {
        Value::Null => None,
        Value::String(s) => Some(match serde_json::from_str::<Value>(s) {
            Ok(Value::String(inner)) => inner,
            Ok(_) | Err(_) => s.clone(),
        }),
        other => Some(other.to_string()),
    }
}

fn nanos(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

impl Lake {
    /// The spans table's address: the first domain's service zone (or its last layer).
    pub fn spans_table(&self) -> Option<String> {
        let domain = self.config.domains.first()?;
        let layer = if self.config.layers.iter().any(|l| l == "service") {
            "service".to_string()
        } else {
            self.config.layers.last()?.clone()
        };
        Some(format!("{}.{layer}.{SPANS_TABLE}", domain.name))
    }

    /// Appends the spans of the trace whose `traces.json` is artifact `path` to the spans
    /// table (once per trace). Answers how many spans were written.
    pub async fn record_spans(
        &self,
        experiment_id: &str,
        trace_id: &str,
        path: &str,
    ) -> Result<usize, LakeError> {
        let Some(target) = self.spans_table() else {
            return Ok(0);
        };
        let at = object_store::path::Path::from(format!(
            "{}/{}",
            crate::ARTIFACT_ROOT,
            path.trim_matches('/')
        ));
        let bytes = self
            .zones
            .store()
            .get(&at)
            .await
            .map_err(|e| LakeError::Usage(format!("the object store failed: {e}")))?
            .bytes()
            .await
            .map_err(|e| LakeError::Usage(format!("the object store failed: {e}")))?;
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| LakeError::Usage(format!("{path} is not a trace's spans: {e}")))?;
        let spans = doc["spans"].as_array().cloned().unwrap_or_default();
        if spans.is_empty() {
            return Ok(0);
        }
        let col = |f: &dyn Fn(&Value) -> Option<String>| -> ArrayRef {
            Arc::new(spans.iter().map(f).collect::<StringArray>())
        };
        let micros = |k: &str| -> ArrayRef {
            Arc::new(
                spans
                    .iter()
                    .map(|s| nanos(&s[k]).map(|n| n / 1000))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            )
        };
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let columns: Vec<ArrayRef> = vec![
            col(&|_| Some(trace_id.to_string())),
            col(&|_| Some(experiment_id.to_string())),
            col(&|s| Some(text(&s["span_id"]).unwrap_or_default())),
            col(&|s| text(&s["parent_span_id"])),
            col(&|s| text(&s["name"])),
            col(&|s| attribute(s, "mlflow.spanType")),
            col(&|s| {
                text(&s["status"]["code"]).map(|c| c.trim_start_matches("STATUS_CODE_").to_string())
            }),
            micros("start_time_unix_nano"),
            micros("end_time_unix_nano"),
            Arc::new(
                spans
                    .iter()
                    .map(|s| {
                        Some(
                            (nanos(&s["end_time_unix_nano"])? - nanos(&s["start_time_unix_nano"])?)
                                as f64
                                / 1e6,
                        )
                    })
                    .collect::<Float64Array>(),
            ),
            col(&|s| attribute(s, "mlflow.spanInputs")),
            col(&|s| attribute(s, "mlflow.spanOutputs")),
            col(&|s| (!s["attributes"].is_null()).then(|| s["attributes"].to_string())),
        ];
        let schema = spans_schema();
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| LakeError::Usage(format!("the spans of {trace_id} do not fit: {e}")))?;
        let n = batch.num_rows();
        self.append_service(
            &target,
            vec![batch],
            &schema,
            &format!("tarn.trace:{trace_id}"),
            1,
            "MLflow trace spans, one row per span (tarn serve's tracing API)",
        )
        .await?;
        Ok(n)
    }
}
