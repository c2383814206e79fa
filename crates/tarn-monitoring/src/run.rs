//! Running a monitor: the serving data streamed once through the lake's query engine and cut
//! into windows, each field of each window profiled in bounded memory, then every check
//! evaluated per window, the figures appended to `DOMAIN.service.monitor_NAME`, and each
//! breach raised once as an alert. The parts live beside it: [`crate::serving`] (where the
//! rows come from), [`crate::columns`] (a batch read as the fields' types say),
//! [`crate::baseline`], [`crate::labels`] (actuals joined by id), [`crate::evaluate`] and
//! [`crate::alerts`].

use crate::alerts::raise_alerts;
use crate::baseline::{baseline, BaselineProfile};
use crate::columns::{timestamps, Column, Side};
use crate::error::MonitorError;
use crate::evaluate::evaluate;
use crate::labels::{self, PerformanceFields};
use crate::performance::Performance;
use crate::results::{self, CheckResult};
use crate::serving::{
    check_columns, model_versions, no_predictions_yet, probe, query_failed, quote, serving_query,
};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tarn_config::{Field, FieldGroup, MonitorSpec, Window};
use tarn_lake::Lake;

/// The event source of alerts, as pipeline `event_rule` triggers match it.
pub const ALERT_SOURCE: &str = "tarn.monitor";

/// One event per window with new breaches: what pipelines trigger on (retraining).
pub const ALERT: &str = "monitor.alert";

/// One event per breach (monitor, check, field, window): what makes an alert never repeat.
pub const BREACH: &str = "monitor.breach";

pub const RECOVERED: &str = "monitor.recovered";

/// Time windows a run evaluates at most (from the newest back).
pub const MAX_WINDOWS: usize = 10_000;

/// How a run differs from the monitor's file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Another window than the file's.
    pub window: Option<Window>,
    /// The current time (microseconds since the epoch), for staleness and the newest window.
    pub now_micros: Option<i64>,
}

/// What one run found.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunReport {
    pub monitor: String,
    pub run_id: String,
    /// The results table the figures were appended to.
    pub table: String,
    pub window: String,
    /// Rows of serving data read.
    pub rows: u64,
    pub baseline_rows: u64,
    /// Whether the baseline's profile was read from the kept one (not recomputed).
    pub baseline_reused: bool,
    pub windows: Vec<WindowReport>,
    /// Alerts raised by this run (breaches already raised before are not raised again).
    pub alerts: Vec<AlertRecord>,
    pub recovered: Vec<AlertRecord>,
    /// Why there was nothing to compare (an endpoint that has logged no prediction yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WindowReport {
    /// RFC 3339, inclusive.
    pub start: String,
    /// RFC 3339, exclusive.
    pub end: String,
    pub rows: u64,
    pub labelled: u64,
    pub model_versions: Vec<String>,
    pub results: Vec<CheckResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertRecord {
    pub event_id: String,
    pub check: String,
    pub field: String,
    pub window_start: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub severity: String,
}

/// One window being accumulated.
#[derive(Default)]
pub(crate) struct Acc {
    pub(crate) side: Side,
    pub(crate) min_ts: Option<i64>,
    pub(crate) max_ts: Option<i64>,
    pub(crate) versions: BTreeSet<String>,
    pub(crate) performance: Performance,
}

/// The serving rows of one run, cut into windows.
struct Windows {
    by_key: BTreeMap<i64, Acc>,
    rows: u64,
}

/// Runs `spec` over the lake.
pub async fn run(
    lake: &Lake,
    spec: &MonitorSpec,
    opts: &RunOptions,
) -> Result<RunReport, MonitorError> {
    let window = opts.window.clone().unwrap_or_else(|| spec.window.clone());
    let now = opts
        .now_micros
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
    let versions = model_versions(lake, spec).await?;
    let (serving_query, inference_table) = serving_query(lake, spec, versions.as_deref())?;
    let run_id = uuid::Uuid::now_v7().to_string();
    let report = |windows, rows, baseline: Option<&BaselineProfile>, note| RunReport {
        monitor: spec.name.clone(),
        run_id: run_id.clone(),
        table: spec.results_table(),
        window: window.to_string(),
        rows,
        baseline_rows: baseline.map_or(0, |b| b.side.rows),
        baseline_reused: baseline.is_some_and(|b| b.reused),
        windows,
        alerts: Vec::new(),
        recovered: Vec::new(),
        note,
    };
    if let Some(note) = no_predictions_yet(lake, spec, inference_table.as_deref()).await {
        return Ok(report(Vec::new(), 0, None, Some(note)));
    }
    let fields: Vec<&Field> = spec
        .fields
        .iter()
        .filter(|f| f.group != FieldGroup::Actual)
        .collect();

    // The serving data's columns, so that a field naming none fails before any work.
    let columns = probe(lake, &serving_query, "serving").await?;
    check_columns(spec, &fields, &columns)?;
    // Actuals that cannot be read yet (their table not landed) leave predictions unlabelled.
    let actuals = labels::readable(lake, spec).await;
    let baseline = baseline(lake, spec, &fields, versions.as_deref()).await?;
    let labels = PerformanceFields::of(spec, &fields);
    let has_version = columns.iter().any(|c| c == "model_version");
    let estimates_only = labels.estimates() && actuals != Ok(true);
    let Windows {
        by_key: mut windows,
        rows: total_rows,
    } = read_windows(
        lake,
        spec,
        &serving_query,
        &window,
        &fields,
        has_version,
        estimates_only.then_some(&labels),
    )
    .await?;
    if actuals == Ok(true) {
        for (key, performance) in labels::join(lake, spec, &serving_query, &window, &labels).await?
        {
            windows.entry(key).or_default().performance = performance;
        }
    }
    let actuals_error = actuals.err();
    let width = window_micros(&window);

    // Time windows from the first with data to the last, empty ones between included (so
    // that activity checks see them), at most MAX_WINDOWS; `all` is one window even when
    // empty (so that its checks say there was not enough data).
    if let Window::Time(_) = window {
        if let Some((&first, _)) = windows.iter().next() {
            let last = *windows.keys().next_back().unwrap_or(&first);
            let first = first.max(last - MAX_WINDOWS as i64 + 1);
            windows.retain(|k, _| *k >= first);
            for k in first..=last {
                windows.entry(k).or_default();
            }
        }
    }
    if window == Window::All {
        windows.entry(0).or_default();
    }

    let mut reports = Vec::new();
    let keys: Vec<i64> = windows.keys().copied().collect();
    let mut first_window_side: Option<Side> = None;
    for (i, key) in keys.iter().enumerate() {
        let acc = &windows[key];
        let (start, end) = match &window {
            Window::Time(_) => (key * width, (key + 1) * width),
            _ => (
                acc.min_ts.unwrap_or(0),
                acc.max_ts.map(|t| t + 1).unwrap_or(0),
            ),
        };
        let is_last = i + 1 == keys.len();
        let reference_for_predictions = first_window_side.as_ref();
        let results = evaluate(
            lake,
            spec,
            &fields,
            &baseline.side,
            reference_for_predictions,
            acc,
            (start, end),
            &serving_query,
            is_last.then_some(now),
            actuals_error.as_deref(),
        )
        .await;
        if first_window_side.is_none() && acc.side.rows > 0 {
            first_window_side = Some(acc.side.clone());
        }
        reports.push(WindowReport {
            start: rfc3339(start),
            end: rfc3339(end),
            rows: acc.side.rows,
            labelled: acc.performance.labelled(),
            model_versions: acc.versions.iter().cloned().collect(),
            results,
        });
    }

    results::append(lake, spec, &run_id, &reports).await?;
    let (alerts, recovered) = raise_alerts(lake, spec, &reports, &spec.results_table()).await?;
    Ok(RunReport {
        alerts,
        recovered,
        ..report(reports, total_rows, Some(&baseline), None)
    })
}

/// The serving rows read once, projected to the fields, each placed in its window and counted
/// into the window's profiles; `estimates`: the probabilities of each row added to its
/// window's performance too (CBPE before actuals arrive).
async fn read_windows(
    lake: &Lake,
    spec: &MonitorSpec,
    serving_query: &str,
    window: &Window,
    fields: &[&Field],
    has_version: bool,
    estimates: Option<&PerformanceFields<'_>>,
) -> Result<Windows, MonitorError> {
    let mut select = vec![
        format!(
            "CAST(s.{} AS VARCHAR) AS \"__id\"",
            quote(&spec.serving.id_column)
        ),
        format!("s.{} AS \"__ts\"", quote(&spec.serving.timestamp_column)),
    ];
    if has_version {
        select.push("CAST(s.\"model_version\" AS VARCHAR) AS \"__version\"".into());
    }
    for f in fields {
        select.push(format!("{} AS {}", f.expression, quote(&f.name)));
    }
    // Only row-count windows need the rows in time order (ties by id, as the actuals' join
    // ranks them; a sort that spills past the query memory limit); time windows are keyed
    // by each row's own timestamp.
    let order = if matches!(window, Window::Rows(_)) {
        " ORDER BY \"__ts\", \"__id\""
    } else {
        ""
    };
    let sql = format!(
        "SELECT {} FROM ({serving_query}) AS s{order}",
        select.join(", ")
    );
    let (_, mut stream) = lake
        .sql_stream(&sql)
        .await
        .map_err(|e| query_failed(spec, "serving", &e.to_string()))?;
    let width = window_micros(window);
    let mut windows = Windows {
        by_key: BTreeMap::new(),
        rows: 0,
    };
    let mut row_index: u64 = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| query_failed(spec, "serving", &e.to_string()))?;
        let ts = timestamps(spec, batch.column(1))?;
        let version_col = if has_version {
            Some(arrow::compute::cast(batch.column(2), &DataType::Utf8)?)
        } else {
            None
        };
        let first_field = if has_version { 3 } else { 2 };
        let columns: Vec<Column> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| Column::of(spec, f, batch.column(first_field + i)))
            .collect::<Result<_, _>>()?;
        // Rows grouped by window, then each field counted per group (a hash per batch, merged
        // into the window's profile): the cost is per distinct value, not per row.
        let mut groups: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            let t = (!ts.is_null(row)).then(|| ts.value(row));
            if let Some(key) = window_key(window, width, row_index, t) {
                groups.entry(key).or_default().push(row);
            }
            row_index += 1;
        }
        for (key, rows) in groups {
            windows.rows += rows.len() as u64;
            let acc = windows.by_key.entry(key).or_default();
            for &row in &rows {
                if !ts.is_null(row) {
                    let t = ts.value(row);
                    acc.min_ts = Some(acc.min_ts.map_or(t, |m| m.min(t)));
                    acc.max_ts = Some(acc.max_ts.map_or(t, |m| m.max(t)));
                }
            }
            if let Some(v) = &version_col {
                let v = v.as_string::<i32>();
                for &row in &rows {
                    if !v.is_null(row) && !acc.versions.contains(v.value(row)) {
                        acc.versions.insert(v.value(row).to_string());
                    }
                }
            }
            acc.side.add(fields, &columns, &rows);
            if let Some(labels) = estimates {
                for &row in &rows {
                    labels.add_row(&mut acc.performance, &columns, row);
                }
            }
        }
    }
    Ok(windows)
}

/// The window a row falls in: by its rank in time (`row_index`, for row-count windows) or
/// its timestamp; none for a row without a timestamp under time windows.
pub(crate) fn window_key(
    window: &Window,
    width: i64,
    row_index: u64,
    ts: Option<i64>,
) -> Option<i64> {
    match (window, ts) {
        (Window::All, _) => Some(0),
        (Window::Rows(n), _) => Some((row_index / n) as i64),
        (Window::Time(_), Some(t)) => Some(t.div_euclid(width)),
        (Window::Time(_), None) => None,
    }
}

pub(crate) fn window_micros(window: &Window) -> i64 {
    match window {
        Window::Time(d) => (d.as_micros() as i64).max(1),
        _ => 1,
    }
}

pub(crate) fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
