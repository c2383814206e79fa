//! The results table `DOMAIN.service.monitor_NAME`: one row per window x check x field of
//! every run (value, threshold, method, status, rows compared, model version), appended
//! exactly once per run, a Delta table any engine reads.

use crate::error::MonitorError;
use crate::run::WindowReport;
use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tarn_config::MonitorSpec;
use tarn_lake::Lake;

/// How a check came out in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Alert,
    /// Too little data to judge (an empty window, an all-missing field, no actual yet): never
    /// an alert.
    NotEnoughData,
    /// The check could not run (a query that failed, a method that does not apply).
    Error,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Alert => "alert",
            Status::NotEnoughData => "not_enough_data",
            Status::Error => "error",
        }
    }

    /// The status a results table's `status` column names.
    pub fn parse(name: &str) -> Option<Status> {
        [
            Status::Ok,
            Status::Alert,
            Status::NotEnoughData,
            Status::Error,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// One check's figure for one field in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckResult {
    pub check: String,
    pub field: String,
    pub method: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub status: Status,
    /// Values of the window compared.
    pub rows_compared: u64,
    /// Values of the reference compared.
    pub reference_rows: u64,
    /// The model versions seen in the window, comma-separated.
    pub model_version: String,
    pub detail: String,
}

/// The columns of a results table.
pub fn schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("monitor", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, true),
        Field::new("model_version", DataType::Utf8, true),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("check", DataType::Utf8, false),
        Field::new("field", DataType::Utf8, false),
        Field::new("method", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
        Field::new("threshold", DataType::Float64, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows_compared", DataType::Int64, false),
        Field::new("reference_rows", DataType::Int64, false),
        Field::new("detail", DataType::Utf8, true),
        Field::new("evaluated_at", ts(), false),
    ]))
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp_micros())
        .unwrap_or(0)
}

/// Appends one run's rows (nothing when the run evaluated no check).
pub async fn append(
    lake: &Lake,
    spec: &MonitorSpec,
    run_id: &str,
    windows: &[WindowReport],
) -> Result<(), MonitorError> {
    let rows: Vec<(&WindowReport, &CheckResult)> = windows
        .iter()
        .flat_map(|w| w.results.iter().map(move |r| (w, r)))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now().timestamp_micros();
    let model = spec.model.as_ref().map(|m| m.name.clone());
    let text = |f: &dyn Fn(&(&WindowReport, &CheckResult)) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let ts = |f: &dyn Fn(&(&WindowReport, &CheckResult)) -> i64| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC"),
        )
    };
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            text(&|_| run_id.to_string()),
            text(&|_| spec.name.clone()),
            Arc::new(StringArray::from_iter(rows.iter().map(|_| model.clone()))),
            text(&|(_, r)| r.model_version.clone()),
            ts(&|(w, _)| micros(&w.start)),
            ts(&|(w, _)| micros(&w.end)),
            text(&|(_, r)| r.check.clone()),
            text(&|(_, r)| r.field.clone()),
            text(&|(_, r)| r.method.clone()),
            Arc::new(Float64Array::from_iter(rows.iter().map(|(_, r)| r.value))),
            Arc::new(Float64Array::from_iter(
                rows.iter().map(|(_, r)| r.threshold),
            )),
            text(&|(_, r)| r.status.name().to_string()),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, r)| r.rows_compared as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, r)| r.reference_rows as i64),
            )),
            text(&|(_, r)| r.detail.clone()),
            ts(&|_| now),
        ],
    )?;
    // Each run is its own application transaction: a retried append never doubles it.
    let version = now.max(1);
    lake.append_service(
        &spec.results_table(),
        vec![batch],
        &schema(),
        &format!("tarn-monitor-{}", spec.name),
        version,
        "figures of tarn monitor runs",
    )
    .await?;
    Ok(())
}
