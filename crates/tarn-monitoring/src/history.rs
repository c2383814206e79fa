//! A monitor's past, read back from its results table: the monitor found by name among the
//! lake's monitor files, its runs newest first, and the figures of one run (the latest by
//! default), for `tarn monitors history|report` and the HTTP API alike.

use crate::error::MonitorError;
use crate::results::{CheckResult, Status};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use tarn_config::{LakeConfig, MonitorSpec, Window};
use tarn_lake::{Lake, LakeError, QueryOptions};

/// Runs `history` answers at most, whatever is asked.
pub const MAX_RUNS: usize = 1000;

/// The monitor `name` among the lake's monitor files.
pub fn find(config: &LakeConfig, name: &str) -> Result<MonitorSpec, MonitorError> {
    let specs = tarn_config::load_monitors(config)?;
    let known: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    specs
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| MonitorError::NoSuchMonitor {
            name: name.to_string(),
            known: if known.is_empty() {
                format!(
                    "monitors/ holds none; write monitors/{name}.yml (see `tarn help monitors`)"
                )
            } else {
                format!("monitors: {}", known.join(", "))
            },
        })
}

/// Every monitor of the lake, as people and programs read it.
pub fn summaries(config: &LakeConfig) -> Result<Vec<crate::MonitorSummary>, MonitorError> {
    Ok(tarn_config::load_monitors(config)?
        .iter()
        .map(crate::summary)
        .collect())
}

/// A window as `--window` or the API's `window` writes it.
pub fn window(text: &str) -> Result<Window, MonitorError> {
    tarn_config::parse_window(text).ok_or_else(|| MonitorError::BadWindow(text.to_string()))
}

/// One past run of a monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub run_id: String,
    /// RFC 3339, when its figures were written.
    pub evaluated_at: String,
    pub windows: u64,
    pub figures: u64,
    pub alerts: u64,
}

/// One figure of a run: a check of a field in a window, as the results table holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Figure {
    pub run_id: String,
    /// RFC 3339, inclusive.
    pub window_start: String,
    /// RFC 3339, exclusive.
    pub window_end: String,
    #[serde(flatten)]
    pub result: CheckResult,
}

/// Whether the results table exists yet (a monitor never run has none).
async fn has_results(lake: &Lake, spec: &MonitorSpec) -> Result<bool, MonitorError> {
    match lake.table(&spec.results_table()).await {
        Ok(_) => Ok(true),
        Err(LakeError::NoSuchTable(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The newest `limit` runs (1 to [`MAX_RUNS`]), newest first; none for a monitor never run.
pub async fn runs(
    lake: &Lake,
    spec: &MonitorSpec,
    limit: usize,
) -> Result<Vec<RunSummary>, MonitorError> {
    if limit == 0 || limit > MAX_RUNS {
        return Err(MonitorError::BadLimit(limit));
    }
    if !has_results(lake, spec).await? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT run_id, max(evaluated_at) AS evaluated_at, count(DISTINCT window_start) AS windows, \
         count(*) AS figures, sum(CASE WHEN status = 'alert' THEN 1 ELSE 0 END) AS alerts \
         FROM {} GROUP BY run_id ORDER BY evaluated_at DESC, run_id DESC LIMIT {}",
        spec.results_table(),
        limit
    );
    let mut out = Vec::new();
    for b in &lake.sql(&sql, &QueryOptions::default()).await?.batches {
        let c = Columns::of(b, &[TEXT, TIME, COUNT, COUNT, COUNT])?;
        for i in 0..b.num_rows() {
            out.push(RunSummary {
                run_id: c.text(0, i),
                evaluated_at: c.time(1, i),
                windows: c.count(2, i),
                figures: c.count(3, i),
                alerts: c.count(4, i),
            });
        }
    }
    Ok(out)
}

/// The figures of run `run` (by default the latest), by window, check and field; with
/// `alerting_only`, only the windows where something alerted. No figure for a monitor never
/// run; a run id that is not one of its runs is an error.
pub async fn figures(
    lake: &Lake,
    spec: &MonitorSpec,
    run: Option<&str>,
    alerting_only: bool,
) -> Result<Vec<Figure>, MonitorError> {
    if !has_results(lake, spec).await? {
        return match run {
            Some(r) => Err(no_such_run(spec, r)),
            None => Ok(Vec::new()),
        };
    }
    let table = spec.results_table();
    let which = match run {
        Some(r) => format!("'{}'", r.replace('\'', "''")),
        None => {
            format!("(SELECT run_id FROM {table} ORDER BY evaluated_at DESC, run_id DESC LIMIT 1)")
        }
    };
    let sql = format!(
        "SELECT run_id, window_start, window_end, \"check\", field, method, value, threshold, status, \
         rows_compared, reference_rows, model_version, detail FROM {table} \
         WHERE run_id = {which} ORDER BY window_start, \"check\", field"
    );
    let mut out = Vec::new();
    for b in &lake.sql(&sql, &QueryOptions::default()).await?.batches {
        let c = Columns::of(
            b,
            &[
                TEXT, TIME, TIME, TEXT, TEXT, TEXT, NUMBER, NUMBER, TEXT, COUNT, COUNT, TEXT, TEXT,
            ],
        )?;
        for i in 0..b.num_rows() {
            let status = c.text(8, i);
            out.push(Figure {
                run_id: c.text(0, i),
                window_start: c.time(1, i),
                window_end: c.time(2, i),
                result: CheckResult {
                    check: c.text(3, i),
                    field: c.text(4, i),
                    method: c.text(5, i),
                    value: c.number(6, i),
                    threshold: c.number(7, i),
                    status: Status::parse(&status).ok_or_else(|| MonitorError::UnknownStatus {
                        table: spec.results_table(),
                        status: status.clone(),
                    })?,
                    rows_compared: c.count(9, i),
                    reference_rows: c.count(10, i),
                    model_version: c.text(11, i),
                    detail: c.text(12, i),
                },
            });
        }
    }
    if let (Some(r), true) = (run, out.is_empty()) {
        return Err(no_such_run(spec, r));
    }
    if alerting_only {
        let alerting: std::collections::BTreeSet<String> = out
            .iter()
            .filter(|f| f.result.status == Status::Alert)
            .map(|f| f.window_start.clone())
            .collect();
        out.retain(|f| alerting.contains(&f.window_start));
    }
    Ok(out)
}

fn no_such_run(spec: &MonitorSpec, run: &str) -> MonitorError {
    MonitorError::NoSuchRun {
        monitor: spec.name.clone(),
        run: run.to_string(),
    }
}

/// The columns of a results query, each cast once to what a figure holds, read by position.
struct Columns(Vec<ArrayRef>);

impl Columns {
    /// `b`'s columns cast to `types`, in order.
    fn of(b: &RecordBatch, types: &[DataType]) -> Result<Self, MonitorError> {
        let cast = types
            .iter()
            .enumerate()
            .map(|(i, t)| arrow::compute::cast(b.column(i), t))
            .collect::<Result<_, _>>()?;
        Ok(Columns(cast))
    }

    fn text(&self, i: usize, row: usize) -> String {
        let a = self.0[i].as_string::<i32>();
        if a.is_null(row) {
            String::new()
        } else {
            a.value(row).to_string()
        }
    }

    fn number(&self, i: usize, row: usize) -> Option<f64> {
        let a = self.0[i].as_primitive::<Float64Type>();
        (!a.is_null(row)).then(|| a.value(row))
    }

    fn count(&self, i: usize, row: usize) -> u64 {
        let a = self.0[i].as_primitive::<Int64Type>();
        if a.is_null(row) {
            0
        } else {
            a.value(row).max(0) as u64
        }
    }

    fn time(&self, i: usize, row: usize) -> String {
        let a = self.0[i].as_primitive::<TimestampMicrosecondType>();
        if a.is_null(row) {
            String::new()
        } else {
            crate::run::rfc3339(a.value(row))
        }
    }
}

const TEXT: DataType = DataType::Utf8;
const NUMBER: DataType = DataType::Float64;
const COUNT: DataType = DataType::Int64;
const TIME: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);
