//! Running a monitor: the serving data streamed once through the lake's query engine and cut
//! into windows, each field of each window profiled in bounded memory, the baseline profiled
//! once per model version and kept, delayed actuals joined by id, every check evaluated per
//! window, the figures appended to `DOMAIN.service.monitor_NAME`, and each breach raised once
//! as a `monitor.alert` event (delivered to the alert topic), recovered by a later window that
//! passes.

use crate::drift::{drift, Kind, Method};
use crate::embedding::{embedding_drift, Embedding};
use crate::error::MonitorError;
use crate::performance::{is_positive, Performance};
use crate::profile::{Profile, Value};
use crate::results::{self, CheckResult, Status};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMicrosecondType};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tarn_config::{
    Baseline, Check, Field, FieldGroup, FieldType, ModelType, MonitorSpec, VersionSelector, Window,
};
use tarn_lake::{Lake, NewEvent, QueryOptions, CUSTOM_EVENT};

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

/// The profile of every field of one side (a window or the baseline).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Side {
    pub rows: u64,
    pub fields: BTreeMap<String, Profile>,
    /// Missing values of fields that are not profiled (datetime, text, tensor; a tensor's
    /// misfit vectors too).
    pub missing: BTreeMap<String, u64>,
    /// The summed embeddings of tensor fields.
    #[serde(default)]
    pub embeddings: BTreeMap<String, Embedding>,
}

impl Side {
    /// Adds `rows` of a column that is not profiled: its missing values, and a tensor's
    /// vectors into its embedding sum.
    fn tally(&mut self, name: &str, c: &Column, rows: &[usize]) {
        let missing = match c {
            Column::Unprofiled(a) => rows.iter().filter(|&&r| a.is_null(r)).count() as u64,
            Column::Tensor { list, dimensions } => {
                let e = self.embeddings.entry(name.to_string()).or_default();
                let (mut nulls, misfit_before) = (0, e.misfit);
                for &r in rows {
                    if list.is_null(r) {
                        nulls += 1;
                        continue;
                    }
                    let v = list.value(r);
                    let v = v.as_primitive::<Float64Type>();
                    e.add(*dimensions, v.iter());
                }
                nulls + e.misfit - misfit_before
            }
            _ => return,
        };
        *self.missing.entry(name.to_string()).or_default() += missing;
    }
}

/// One window being accumulated.
#[derive(Default)]
struct Acc {
    side: Side,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
    versions: BTreeSet<String>,
    performance: Performance,
}

/// The kept profile of a baseline.
#[derive(Serialize, Deserialize)]
struct KeptBaseline {
    query: String,
    side: Side,
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
    let probe = probe(lake, &serving_query, "serving").await?;
    let mut missing_columns = Vec::new();
    for c in [&spec.serving.id_column, &spec.serving.timestamp_column] {
        if !probe.iter().any(|p| p == c) {
            missing_columns.push(format!("`{c}`"));
        }
    }
    if !missing_columns.is_empty() {
        return Err(MonitorError::Spec {
            path: spec.path.display().to_string(),
            message: format!(
                "the serving data has no column {} (columns: {}); set `serving: {{id_column: ..., timestamp_column: ...}}`",
                missing_columns.join(" or "),
                listed(&probe)
            ),
        });
    }
    for f in &fields {
        if let Some(col) = &f.column {
            if !probe.iter().any(|p| p == col) {
                return Err(MonitorError::Spec {
                    path: spec.path.display().to_string(),
                    message: format!(
                        "field `{}` names no column of the serving data (columns: {}); add `column:` or `sql:` to map it",
                        f.name,
                        listed(&probe)
                    ),
                });
            }
        }
    }

    // Actuals that cannot be read yet (their table not landed) leave predictions unlabelled.
    let (actuals, actuals_error) = match load_actuals(lake, spec).await {
        Ok(a) => (a, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let baseline = baseline(lake, spec, &fields, versions.as_deref()).await?;

    // The serving rows, in timestamp order, projected to the fields.
    let mut select = vec![
        format!(
            "CAST(s.{} AS VARCHAR) AS \"__id\"",
            quote(&spec.serving.id_column)
        ),
        format!("s.{} AS \"__ts\"", quote(&spec.serving.timestamp_column)),
    ];
    let has_version = probe.iter().any(|c| c == "model_version");
    if has_version {
        select.push("CAST(s.\"model_version\" AS VARCHAR) AS \"__version\"".into());
    }
    for f in &fields {
        select.push(format!("{} AS {}", f.expression, quote(&f.name)));
    }
    // Only row-count windows need the rows in time order (a sort holds them all); time
    // windows are keyed by each row's own timestamp.
    let order = if matches!(window, Window::Rows(_)) {
        " ORDER BY \"__ts\""
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
    let width = window_micros(&window);
    let mut windows: BTreeMap<i64, Acc> = BTreeMap::new();
    let mut row_index: u64 = 0;
    let mut total_rows: u64 = 0;
    let labels = PerformanceFields::of(spec);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| query_failed(spec, "serving", &e.to_string()))?;
        let ids = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let ts = timestamps(batch.column(1)).map_err(|why| MonitorError::Spec {
            path: spec.path.display().to_string(),
            message: format!("timestamp column `{}` {why}", spec.serving.timestamp_column),
        })?;
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
            let t = if ts.is_null(row) {
                None
            } else {
                Some(ts.value(row))
            };
            let key = match (&window, t) {
                (Window::All, _) => 0,
                (Window::Rows(n), _) => (row_index / n) as i64,
                (Window::Time(_), Some(t)) => t.div_euclid(width),
                // A row without a timestamp cannot be placed in a time window.
                (Window::Time(_), None) => {
                    row_index += 1;
                    continue;
                }
            };
            row_index += 1;
            groups.entry(key).or_default().push(row);
        }
        for (key, rows) in groups {
            total_rows += rows.len() as u64;
            let acc = windows.entry(key).or_default();
            acc.side.rows += rows.len() as u64;
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
            for (f, c) in fields.iter().zip(&columns) {
                match c {
                    Column::Unprofiled(_) | Column::Tensor { .. } => {
                        acc.side.tally(&f.name, c, &rows)
                    }
                    _ => c.count_into(
                        acc.side
                            .fields
                            .entry(f.name.clone())
                            .or_insert_with(|| Profile::new(c.integer_typed())),
                        &rows,
                    ),
                }
            }
            if labels.needed(actuals.is_some()) {
                for &row in &rows {
                    let values: Vec<Option<Value>> = columns.iter().map(|c| c.value(row)).collect();
                    let actual = actuals
                        .as_ref()
                        .and_then(|a| (!ids.is_null(row)).then(|| a.get(ids.value(row))).flatten());
                    labels.add(&mut acc.performance, &fields, &values, actual);
                }
            }
        }
    }

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

/// For a monitor reading its endpoint's inference table: why there is nothing to watch when
/// that table does not exist yet (the endpoint has answered no request). Nothing is compared
/// or written then, and nothing alerts.
async fn no_predictions_yet(
    lake: &Lake,
    spec: &MonitorSpec,
    inference_table: Option<&str>,
) -> Option<String> {
    let (name, table) = (spec.endpoint.as_deref()?, inference_table?);
    match lake.table(table).await {
        Err(tarn_lake::LakeError::NoSuchTable(_)) => Some(format!(
            "endpoint `{name}` has logged no prediction yet ({table} does not exist): nothing to watch until it answers requests under `tarn serve`"
        )),
        _ => None,
    }
}

/// The model versions a monitor watches: None for every version (or no model).
async fn model_versions(
    lake: &Lake,
    spec: &MonitorSpec,
) -> Result<Option<Vec<String>>, MonitorError> {
    let Some(model) = &spec.model else {
        return Ok(None);
    };
    match &model.version {
        VersionSelector::All => Ok(None),
        VersionSelector::Number(n) => {
            lake.registry()
                .require_version(&model.name, &n.to_string())
                .await
                .map_err(|e| MonitorError::Model(e.to_string()))?;
            Ok(Some(vec![n.to_string()]))
        }
        VersionSelector::Alias(a) => {
            let v = lake
                .registry()
                .version_by_alias(&model.name, a)
                .await
                .map_err(|e| MonitorError::Model(e.to_string()))?;
            Ok(Some(vec![v.version]))
        }
    }
}

/// The serving query: the file's, or the endpoint's inference table (only the watched
/// versions' rows), with that table's name.
fn serving_query(
    lake: &Lake,
    spec: &MonitorSpec,
    versions: Option<&[String]>,
) -> Result<(String, Option<String>), MonitorError> {
    if let Some(q) = &spec.serving.query {
        return Ok((q.trim().trim_end_matches(';').to_string(), None));
    }
    let name = spec.endpoint.as_deref().unwrap_or_default();
    let endpoint = lake
        .config
        .endpoints
        .get(name)
        .ok_or_else(|| MonitorError::Spec {
            path: spec.path.display().to_string(),
            message: format!("no endpoint `{name}` in tarn.yml"),
        })?;
    let table = endpoint.inference_table(name);
    let query = match versions {
        Some(v) => format!(
            "SELECT * FROM {table} WHERE model_version IN ({})",
            v.iter()
                .map(|v| format!("'{}'", v.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!("SELECT * FROM {table}"),
    };
    Ok((query, Some(table)))
}

/// Column names for a message: the first 20, then how many more.
fn listed(columns: &[String]) -> String {
    let mut s = columns
        .iter()
        .take(20)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if columns.len() > 20 {
        s.push_str(&format!(" and {} more", columns.len() - 20));
    }
    s
}

/// The column names a query answers with.
async fn probe(lake: &Lake, query: &str, what: &'static str) -> Result<Vec<String>, MonitorError> {
    let r = lake
        .sql(
            &format!("SELECT * FROM ({query}) AS s LIMIT 0"),
            &QueryOptions::default(),
        )
        .await
        .map_err(|e| MonitorError::Query {
            what,
            query: query.to_string(),
            message: e.to_string(),
        })?;
    Ok(r.schema.fields().iter().map(|f| f.name().clone()).collect())
}

fn query_failed(spec: &MonitorSpec, what: &'static str, message: &str) -> MonitorError {
    MonitorError::Query {
        what,
        query: spec
            .serving
            .query
            .clone()
            .unwrap_or_else(|| "the endpoint's inference table".into()),
        message: message.to_string(),
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn window_micros(window: &Window) -> i64 {
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

/// The timestamp column as microseconds since the epoch.
fn timestamps(
    a: &ArrayRef,
) -> Result<arrow::array::PrimitiveArray<TimestampMicrosecondType>, String> {
    let target = DataType::Timestamp(TimeUnit::Microsecond, None);
    let cast = match a.data_type() {
        DataType::Timestamp(_, Some(_)) => {
            let plain = arrow::compute::cast(
                a,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )
            .map_err(|e| e.to_string())?;
            arrow::compute::cast(&plain, &DataType::Int64)
                .and_then(|i| arrow::compute::cast(&i, &target))
                .map_err(|e| e.to_string())?
        }
        DataType::Timestamp(_, None)
        | DataType::Date32
        | DataType::Date64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => arrow::compute::cast(a, &target)
            .map_err(|e| format!("cannot be read as a time: {e}"))?,
        other => {
            return Err(format!(
                "is {other}, not a timestamp; cast it in the serving query"
            ))
        }
    };
    Ok(cast.as_primitive::<TimestampMicrosecondType>().clone())
}

/// One field's values in a batch, read as its type says.
enum Column {
    Number {
        values: arrow::array::PrimitiveArray<Float64Type>,
        integer: bool,
    },
    Label(LabelArray),
    /// An embedding: a list of numbers per row, of `dimensions` numbers when it fits.
    Tensor {
        list: arrow::array::ListArray,
        dimensions: usize,
    },
    Unprofiled(ArrayRef),
}

enum LabelArray {
    Number(arrow::array::PrimitiveArray<Float64Type>),
    Bool(arrow::array::BooleanArray),
    Text(arrow::array::StringArray),
}

impl Column {
    fn of(spec: &MonitorSpec, f: &Field, a: &ArrayRef) -> Result<Column, MonitorError> {
        let dt = a.data_type();
        let misfit = |why: String| MonitorError::Spec {
            path: spec.path.display().to_string(),
            message: format!(
                "field `{}` is declared {} but {why}",
                f.name,
                f.field_type.name()
            ),
        };
        match &f.field_type {
            FieldType::Numeric => {
                if !(dt.is_numeric() || *dt == DataType::Boolean || *dt == DataType::Null) {
                    return Err(misfit(format!(
                        "its column holds {dt}; declare it categorical or string, or cast it in `sql:`"
                    )));
                }
                let values = arrow::compute::cast(a, &DataType::Float64)?;
                Ok(Column::Number {
                    values: values.as_primitive::<Float64Type>().clone(),
                    integer: dt.is_integer(),
                })
            }
            t if t.is_label() => Ok(Column::Label(match dt {
                DataType::Boolean => LabelArray::Bool(a.as_boolean().clone()),
                d if d.is_numeric() => LabelArray::Number(
                    arrow::compute::cast(a, &DataType::Float64)?
                        .as_primitive::<Float64Type>()
                        .clone(),
                ),
                _ => LabelArray::Text(
                    arrow::compute::cast(a, &DataType::Utf8)
                        .map_err(|e| misfit(format!("its column cannot be read as text: {e}")))?
                        .as_string::<i32>()
                        .clone(),
                ),
            })),
            FieldType::Tensor { dimensions } => {
                let item = DataType::List(Arc::new(arrow::datatypes::Field::new(
                    "item",
                    DataType::Float64,
                    true,
                )));
                let fits = matches!(
                    dt,
                    DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
                ) || *dt == DataType::Null;
                let list = fits
                    .then(|| arrow::compute::cast(a, &item).ok())
                    .flatten()
                    .ok_or_else(|| {
                        misfit(format!(
                            "its column holds {dt}; a tensor field reads a list of numbers per row (an inference table's array<double> column, or `sql:` building one)"
                        ))
                    })?;
                Ok(Column::Tensor {
                    list: list.as_list::<i32>().clone(),
                    dimensions: dimensions.iter().product(),
                })
            }
            _ => Ok(Column::Unprofiled(a.clone())),
        }
    }

    fn integer_typed(&self) -> bool {
        matches!(self, Column::Number { integer: true, .. })
    }

    /// Counts the values of `rows` into `profile`, through one hash per call.
    fn count_into(&self, profile: &mut Profile, rows: &[usize]) {
        fn numbers(
            a: &arrow::array::PrimitiveArray<Float64Type>,
            rows: &[usize],
            profile: &mut Profile,
        ) {
            let mut counts: HashMap<u64, u64> = HashMap::new();
            let mut missing = 0;
            for &r in rows {
                if a.is_null(r) {
                    missing += 1;
                } else {
                    let x = a.value(r);
                    let x = if x == 0.0 { 0.0 } else { x };
                    *counts.entry(x.to_bits()).or_default() += 1;
                }
            }
            profile.add_n(None, missing);
            for (bits, n) in counts {
                profile.add_n(Some(Value::Number(f64::from_bits(bits))), n);
            }
        }
        match self {
            Column::Number { values, .. } | Column::Label(LabelArray::Number(values)) => {
                numbers(values, rows, profile)
            }
            Column::Label(LabelArray::Bool(a)) => {
                let (mut t, mut f, mut missing) = (0, 0, 0);
                for &r in rows {
                    match (a.is_null(r), a.is_null(r) || a.value(r)) {
                        (true, _) => missing += 1,
                        (false, true) => t += 1,
                        (false, false) => f += 1,
                    }
                }
                profile.add_n(None, missing);
                profile.add_n(Some(Value::Number(1.0)), t);
                profile.add_n(Some(Value::Number(0.0)), f);
            }
            Column::Label(LabelArray::Text(a)) => {
                let mut counts: HashMap<&str, u64> = HashMap::new();
                let mut missing = 0;
                for &r in rows {
                    if a.is_null(r) {
                        missing += 1;
                    } else {
                        *counts.entry(a.value(r)).or_default() += 1;
                    }
                }
                profile.add_n(None, missing);
                for (s, n) in counts {
                    profile.add_n(Some(Value::Text(s.to_string())), n);
                }
            }
            Column::Tensor { .. } | Column::Unprofiled(_) => {}
        }
    }

    fn value(&self, row: usize) -> Option<Value> {
        match self {
            Column::Number { values, .. } => {
                (!values.is_null(row)).then(|| Value::Number(values.value(row)))
            }
            Column::Label(LabelArray::Number(a)) => {
                (!a.is_null(row)).then(|| Value::Number(a.value(row)))
            }
            Column::Label(LabelArray::Bool(a)) => {
                (!a.is_null(row)).then(|| Value::Number(if a.value(row) { 1.0 } else { 0.0 }))
            }
            Column::Label(LabelArray::Text(a)) => {
                (!a.is_null(row)).then(|| Value::Text(a.value(row).to_string()))
            }
            Column::Tensor { list: a, .. } => (!a.is_null(row)).then_some(Value::Number(0.0)),
            Column::Unprofiled(a) => (!a.is_null(row)).then_some(Value::Number(0.0)),
        }
    }
}

/// Which fields performance is computed from.
struct PerformanceFields {
    model_type: Option<ModelType>,
    /// Index among the non-actual fields of the first numeric prediction, and of the first
    /// label prediction.
    score: Option<String>,
    label: Option<String>,
}

impl PerformanceFields {
    fn of(spec: &MonitorSpec) -> Self {
        let preds: Vec<&Field> = spec.fields_of(FieldGroup::Prediction).collect();
        PerformanceFields {
            model_type: spec.model_type,
            score: preds
                .iter()
                .find(|f| f.field_type.is_numeric())
                .map(|f| f.name.clone()),
            label: preds
                .iter()
                .find(|f| f.field_type.is_label())
                .map(|f| f.name.clone()),
        }
    }

    /// Whether rows must be looked at one by one: actuals to join, or probabilities for CBPE.
    fn needed(&self, has_actuals: bool) -> bool {
        has_actuals || (self.model_type == Some(ModelType::Binary) && self.score.is_some())
    }

    fn add(
        &self,
        perf: &mut Performance,
        fields: &[&Field],
        values: &[Option<Value>],
        actual: Option<&Value>,
    ) {
        let get = |name: &Option<String>| -> Option<&Value> {
            let name = name.as_ref()?;
            let i = fields.iter().position(|f| &f.name == name)?;
            values[i].as_ref()
        };
        let text = |v: &Value| match v {
            Value::Number(x) => {
                if x.fract() == 0.0 {
                    format!("{}", *x as i64)
                } else {
                    x.to_string()
                }
            }
            Value::Text(s) => s.clone(),
        };
        match self.model_type {
            Some(ModelType::Regression) | None => {
                if let (Some(Value::Number(p)), Some(Value::Number(a))) = (get(&self.score), actual)
                {
                    perf.add_regression(*p, *a);
                }
            }
            Some(ModelType::Binary) => {
                let actual_label = actual.map(|a| is_positive(&text(a)));
                if let Some(Value::Number(p)) = get(&self.score) {
                    perf.add_probability(*p, actual_label);
                }
                let predicted = match (get(&self.label), get(&self.score)) {
                    (Some(l), _) => Some(text(l)),
                    (None, Some(Value::Number(p))) => {
                        Some(if *p >= 0.5 { "1".into() } else { "0".into() })
                    }
                    _ => None,
                };
                if let (Some(p), Some(a)) = (predicted, actual) {
                    perf.add_label(&p, &text(a));
                }
            }
            Some(ModelType::Multiclass) => {
                if let (Some(p), Some(a)) = (get(&self.label).or(get(&self.score)), actual) {
                    perf.add_label(&text(p), &text(a));
                }
            }
        }
    }
}

/// The actuals by prediction id (the first declared actual).
async fn load_actuals(
    lake: &Lake,
    spec: &MonitorSpec,
) -> Result<Option<HashMap<String, Value>>, MonitorError> {
    let (Some(actuals), Some(field)) = (&spec.actuals, spec.fields_of(FieldGroup::Actual).next())
    else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT CAST(a.{} AS VARCHAR) AS \"__id\", {} AS \"__actual\" FROM ({}) AS a",
        quote(&actuals.id_column),
        field.expression,
        actuals.query.trim().trim_end_matches(';')
    );
    let (_, mut stream) = lake
        .sql_stream(&sql)
        .await
        .map_err(|e| MonitorError::Query {
            what: "actuals",
            query: actuals.query.clone(),
            message: e.to_string(),
        })?;
    let mut out = HashMap::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| MonitorError::Query {
            what: "actuals",
            query: actuals.query.clone(),
            message: e.to_string(),
        })?;
        let ids = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let col = Column::of(spec, field, batch.column(1))?;
        for row in 0..batch.num_rows() {
            if let (false, Some(v)) = (ids.is_null(row), col.value(row)) {
                out.insert(ids.value(row).to_string(), v);
            }
        }
    }
    Ok(Some(out))
}

struct BaselineProfile {
    side: Side,
    reused: bool,
}

/// The baseline's profiles: read from the kept file when the same query was profiled before
/// for the same version, otherwise computed and kept.
async fn baseline(
    lake: &Lake,
    spec: &MonitorSpec,
    fields: &[&Field],
    versions: Option<&[String]>,
) -> Result<BaselineProfile, MonitorError> {
    let query = match &spec.baseline {
        Baseline::Query(q) => q.trim().trim_end_matches(';').to_string(),
        Baseline::Training => training_query(lake, spec, versions).await?,
    };
    let key = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(query.as_bytes());
        for f in fields {
            h.update(format!("|{}:{}", f.name, f.field_type.name()).as_bytes());
        }
        hex::encode(&h.finalize()[..12])
    };
    let kept_path = lake
        .config
        .root
        .join(".tarn")
        .join("monitors")
        .join(&spec.name)
        .join(format!("baseline-{key}.json"));
    if let Ok(bytes) = std::fs::read(&kept_path) {
        if let Ok(kept) = serde_json::from_slice::<KeptBaseline>(&bytes) {
            if kept.query == query {
                return Ok(BaselineProfile {
                    side: kept.side,
                    reused: true,
                });
            }
        }
    }
    let columns = probe(lake, &query, "baseline").await?;
    // The baseline is read by field name (a training set holds the model's feature names);
    // fields it lacks (the predictions, usually) are compared with the first window instead.
    let present: Vec<&Field> = fields
        .iter()
        .copied()
        .filter(|f| columns.iter().any(|c| c == &f.name))
        .collect();
    let mut side = Side::default();
    if !present.is_empty() {
        let select: Vec<String> = present.iter().map(|f| quote(&f.name)).collect();
        let sql = format!("SELECT {} FROM ({query}) AS b", select.join(", "));
        let (_, mut stream) = lake
            .sql_stream(&sql)
            .await
            .map_err(|e| MonitorError::Query {
                what: "baseline",
                query: query.clone(),
                message: e.to_string(),
            })?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| MonitorError::Query {
                what: "baseline",
                query: query.clone(),
                message: e.to_string(),
            })?;
            let cols: Vec<Column> = present
                .iter()
                .enumerate()
                .map(|(i, f)| Column::of(spec, f, batch.column(i)))
                .collect::<Result<_, _>>()?;
            side.rows += batch.num_rows() as u64;
            let rows: Vec<usize> = (0..batch.num_rows()).collect();
            for (f, c) in present.iter().zip(&cols) {
                if matches!(c, Column::Unprofiled(_) | Column::Tensor { .. }) {
                    side.tally(&f.name, c, &rows);
                    continue;
                }
                let p = side
                    .fields
                    .entry(f.name.clone())
                    .or_insert_with(|| Profile::new(c.integer_typed()));
                c.count_into(p, &rows);
            }
        }
    }
    if let Some(dir) = kept_path.parent() {
        let _ = std::fs::create_dir_all(dir);
        let kept = KeptBaseline {
            query,
            side: side.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&kept) {
            let tmp = kept_path.with_extension("json.tmp");
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, &kept_path);
            }
        }
    }
    Ok(BaselineProfile {
        side,
        reused: false,
    })
}

/// The training query of the watched version, from the lineage the registry recorded when
/// tarn trained it (`tarn.lineage`, the `train` channel).
async fn training_query(
    lake: &Lake,
    spec: &MonitorSpec,
    versions: Option<&[String]>,
) -> Result<String, MonitorError> {
    let model = spec.model.as_ref().ok_or_else(|| MonitorError::NoLineage {
        model: String::new(),
        why: "the monitor names no model".into(),
    })?;
    let version = match versions.and_then(|v| v.last()) {
        Some(v) => v.clone(),
        None => {
            let all = lake
                .registry()
                .model_versions(Some(&model.name))
                .await
                .map_err(|e| MonitorError::Model(e.to_string()))?;
            all.iter()
                .filter_map(|v| v.version.parse::<i64>().ok())
                .max()
                .map(|v| v.to_string())
                .ok_or_else(|| MonitorError::NoLineage {
                    model: model.name.clone(),
                    why: "the model has no version".into(),
                })?
        }
    };
    let v = lake
        .registry()
        .require_version(&model.name, &version)
        .await
        .map_err(|e| MonitorError::Model(e.to_string()))?;
    let lineage = v
        .tags
        .iter()
        .find(|t| t.key == "tarn.lineage")
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t.value).ok())
        .ok_or_else(|| MonitorError::NoLineage {
            model: format!("{}/{version}", model.name),
            why: "it was not trained by tarn (no `tarn.lineage` tag)".into(),
        })?;
    let channel = lineage
        .get("train")
        .or_else(|| lineage.as_object().and_then(|o| o.values().next()));
    channel
        .and_then(|c| c["query"].as_str())
        .map(|q| q.to_string())
        .ok_or_else(|| MonitorError::NoLineage {
            model: format!("{}/{version}", model.name),
            why: "its lineage has no training query".into(),
        })
}

/// The fields a drift check covers: those named, or every feature and raw input that can be
/// compared.
fn drift_fields<'a>(
    fields: &[&'a Field],
    named: &[String],
    groups: &[FieldGroup],
) -> Vec<&'a Field> {
    fields
        .iter()
        .copied()
        .filter(|f| {
            if named.is_empty() {
                groups.contains(&f.group)
                    && (f.field_type.is_numeric()
                        || f.field_type.is_label()
                        || matches!(f.field_type, FieldType::Tensor { .. }))
            } else {
                named.contains(&f.name)
            }
        })
        .collect()
}

/// A tensor field's drift figure into `r`: the distance between mean embeddings.
fn tensor_drift(
    r: &mut CheckResult,
    f: &Field,
    baseline: &Side,
    first_window: Option<&Side>,
    side: &Side,
    method: Method,
    threshold: Option<f64>,
) {
    let (reference, from_first) = match baseline.embeddings.get(&f.name) {
        Some(e) => (Some(e), false),
        None => (first_window.and_then(|w| w.embeddings.get(&f.name)), true),
    };
    let empty = Embedding::default();
    let current = side.embeddings.get(&f.name).unwrap_or(&empty);
    let Some(reference) = reference else {
        r.status = Status::NotEnoughData;
        r.detail = "the baseline has no such column and there is no earlier window".into();
        return;
    };
    r.reference_rows = reference.count;
    r.rows_compared = current.count;
    let mut notes = vec!["Euclidean distance between the mean embeddings".to_string()];
    if from_first {
        notes.push(FROM_FIRST.into());
    }
    if current.misfit > 0 {
        notes.push(format!(
            "{} vectors left out (not {} finite numbers)",
            current.misfit,
            current.sum.len().max(reference.sum.len())
        ));
    }
    let d = embedding_drift(&f.name, reference, current, method, threshold);
    fill(r, d, notes, "embedding that fits the field");
}

const FROM_FIRST: &str = "compared with the first window (the baseline has no such column)";

/// Writes a drift test's outcome into `r`: the figure and decision with `notes` as its
/// detail, or why there was not enough data (the side has no `what`), or the error.
fn fill(
    r: &mut CheckResult,
    outcome: Result<crate::drift::Drift, MonitorError>,
    notes: Vec<String>,
    what: &str,
) {
    match outcome {
        Ok(d) => {
            r.method = d.method.name().to_string();
            r.value = Some(d.score);
            r.threshold = Some(d.threshold);
            r.status = if d.drifted { Status::Alert } else { Status::Ok };
            r.detail = notes.join("; ");
        }
        Err(MonitorError::NotEnoughData { side, .. }) => {
            r.status = Status::NotEnoughData;
            r.detail = format!("the {side} has no {what}");
        }
        Err(e) => {
            r.status = Status::Error;
            r.detail = e.to_string();
        }
    }
}

fn kind_of(f: &Field) -> Kind {
    if f.field_type.is_numeric() {
        Kind::Numerical
    } else {
        Kind::Categorical
    }
}

#[allow(clippy::too_many_arguments)]
async fn evaluate(
    lake: &Lake,
    spec: &MonitorSpec,
    fields: &[&Field],
    baseline: &Side,
    first_window: Option<&Side>,
    acc: &Acc,
    (start, end): (i64, i64),
    serving_query: &str,
    now: Option<i64>,
    actuals_error: Option<&str>,
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let side = &acc.side;
    let version = acc.versions.iter().cloned().collect::<Vec<_>>().join(",");
    let result = |check: &str, field: &str| CheckResult {
        check: check.to_string(),
        field: field.to_string(),
        method: String::new(),
        value: None,
        threshold: None,
        status: Status::Ok,
        rows_compared: side.rows,
        reference_rows: baseline.rows,
        model_version: version.clone(),
        detail: String::new(),
    };
    for check in &spec.checks {
        let drifting = match check {
            Check::Drift {
                fields: named,
                method,
                threshold,
            } => Some((
                "drift",
                drift_fields(fields, named, &[FieldGroup::Feature, FieldGroup::RawInput]),
                method,
                threshold,
            )),
            Check::PredictionDrift { method, threshold } => Some((
                "prediction_drift",
                drift_fields(fields, &[], &[FieldGroup::Prediction]),
                method,
                threshold,
            )),
            _ => None,
        };
        if let Some((name, covered, method, threshold)) = drifting {
            let method: Method = method.parse().unwrap_or(Method::Auto);
            for f in covered {
                let mut r = result(name, &f.name);
                r.method = method.name().to_string();
                if matches!(f.field_type, FieldType::Tensor { .. }) {
                    tensor_drift(&mut r, f, baseline, first_window, side, method, *threshold);
                    out.push(r);
                    continue;
                }
                let (reference, from_first) = match baseline.fields.get(&f.name) {
                    Some(p) => (Some(p), false),
                    None => (first_window.and_then(|w| w.fields.get(&f.name)), true),
                };
                let current = side.fields.get(&f.name);
                match (reference, current) {
                    (Some(reference), Some(current)) => {
                        r.reference_rows = reference.rows();
                        r.rows_compared = current.count();
                        let d = drift(&f.name, reference, current, kind_of(f), method, *threshold);
                        let notes = from_first.then(|| FROM_FIRST.to_string());
                        fill(
                            &mut r,
                            d,
                            notes.into_iter().collect(),
                            "value that is not missing",
                        );
                    }
                    (None, _) => {
                        r.status = Status::NotEnoughData;
                        r.detail = if from_first {
                            "the baseline has no such column and there is no earlier window".into()
                        } else {
                            "the baseline has no value for it".into()
                        };
                    }
                    (_, None) => {
                        r.status = Status::NotEnoughData;
                        r.detail = "the window has no row".into();
                    }
                }
                out.push(r);
            }
            continue;
        }
        match check {
            Check::MissingValues {
                fields: named,
                max_share,
            } => {
                let covered: Vec<&Field> = fields
                    .iter()
                    .copied()
                    .filter(|f| named.is_empty() || named.contains(&f.name))
                    .collect();
                for f in covered {
                    let mut r = result("missing_values", &f.name);
                    r.method = "share".into();
                    r.threshold = Some(*max_share);
                    let missing = side
                        .fields
                        .get(&f.name)
                        .map(|p| p.missing())
                        .or_else(|| side.missing.get(&f.name).copied())
                        .unwrap_or(0);
                    if side.rows == 0 {
                        r.status = Status::NotEnoughData;
                        r.detail = "the window has no row".into();
                    } else {
                        let share = missing as f64 / side.rows as f64;
                        r.value = Some(share);
                        r.status = if share > *max_share {
                            Status::Alert
                        } else {
                            Status::Ok
                        };
                        r.detail = format!("{missing} of {} rows missing", side.rows);
                    }
                    out.push(r);
                }
            }
            Check::NewValues {
                fields: named,
                max_share,
            } => {
                for f in fields.iter().filter(|f| {
                    f.field_type.is_label() && (named.is_empty() || named.contains(&f.name))
                }) {
                    let mut r = result("new_values", &f.name);
                    r.method = "share".into();
                    r.threshold = Some(*max_share);
                    match (baseline.fields.get(&f.name), side.fields.get(&f.name)) {
                        (Some(b), Some(c)) if c.count() > 0 && b.count() > 0 => {
                            let mut new_values = Vec::new();
                            let mut new_rows = 0;
                            for (v, n) in c.values() {
                                if b.count_of(v) == 0 {
                                    new_rows += n;
                                    if new_values.len() < 5 {
                                        new_values.push(match v {
                                            Value::Text(s) => s.clone(),
                                            Value::Number(x) => x.to_string(),
                                        });
                                    }
                                }
                            }
                            let share = new_rows as f64 / c.count() as f64;
                            r.value = Some(share);
                            r.rows_compared = c.count();
                            r.status = if share > *max_share {
                                Status::Alert
                            } else {
                                Status::Ok
                            };
                            if !new_values.is_empty() {
                                r.detail = format!(
                                    "values the baseline never had: {}",
                                    new_values.join(", ")
                                );
                            }
                        }
                        _ => {
                            r.status = Status::NotEnoughData;
                            r.detail = "no value on one side".into();
                        }
                    }
                    out.push(r);
                }
            }
            Check::ValueRange {
                fields: named,
                min,
                max,
                max_share,
            } => {
                for f in fields.iter().filter(|f| {
                    f.field_type.is_numeric() && (named.is_empty() || named.contains(&f.name))
                }) {
                    let mut r = result("value_range", &f.name);
                    r.method = "share outside".into();
                    r.threshold = Some(*max_share);
                    let b = baseline.fields.get(&f.name);
                    let lo = min.or_else(|| b.and_then(|b| b.min()).and_then(|v| v.number()));
                    let hi = max.or_else(|| b.and_then(|b| b.max()).and_then(|v| v.number()));
                    match side.fields.get(&f.name).filter(|c| c.count() > 0) {
                        Some(c) => {
                            let outside: u64 = c
                                .numbers()
                                .iter()
                                .filter(|(x, _)| {
                                    lo.is_some_and(|l| *x < l) || hi.is_some_and(|h| *x > h)
                                })
                                .map(|(_, n)| n)
                                .sum();
                            let share = outside as f64 / c.count() as f64;
                            r.value = Some(share);
                            r.rows_compared = c.count();
                            r.status = if share > *max_share {
                                Status::Alert
                            } else {
                                Status::Ok
                            };
                            r.detail = format!(
                                "range [{}, {}]",
                                lo.map(|x| x.to_string()).unwrap_or_else(|| "-inf".into()),
                                hi.map(|x| x.to_string()).unwrap_or_else(|| "inf".into())
                            );
                        }
                        None => {
                            r.status = Status::NotEnoughData;
                            r.detail = "the window has no value".into();
                        }
                    }
                    out.push(r);
                }
            }
            Check::Activity {
                min_rows,
                max_staleness,
            } => {
                if let Some(min_rows) = min_rows {
                    let mut r = result("activity", "rows");
                    r.method = "min_rows".into();
                    r.value = Some(side.rows as f64);
                    r.threshold = Some(*min_rows as f64);
                    r.status = if side.rows < *min_rows {
                        Status::Alert
                    } else {
                        Status::Ok
                    };
                    out.push(r);
                }
                if let (Some(limit), Some(now)) = (max_staleness, now) {
                    // Only the newest window says how long the data has been silent.
                    let mut r = result("activity", "staleness");
                    r.method = "max_staleness".into();
                    r.threshold = Some(limit.as_secs_f64());
                    match acc.max_ts.or(acc.min_ts) {
                        Some(last) => {
                            let age = (now - last) as f64 / 1e6;
                            r.value = Some(age);
                            r.status = if age > limit.as_secs_f64() {
                                Status::Alert
                            } else {
                                Status::Ok
                            };
                            r.detail = format!("the newest row is {age:.0}s old");
                        }
                        None => {
                            r.status = Status::Alert;
                            r.detail = "no row in the newest window".into();
                        }
                    }
                    out.push(r);
                }
            }
            Check::Performance { metric, min, max } => {
                let mut r = result("performance", metric);
                r.method = "realised".into();
                r.threshold = max.or(*min);
                r.rows_compared = acc.performance.labelled();
                match acc.performance.metric(metric) {
                    Some(v) => {
                        r.value = Some(v);
                        r.status = if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                            Status::Alert
                        } else {
                            Status::Ok
                        };
                    }
                    None => {
                        r.status = Status::NotEnoughData;
                        r.detail = match actuals_error {
                            Some(e) => format!("the actuals cannot be read yet: {e}"),
                            None => "no actual has arrived for this window yet".into(),
                        };
                    }
                }
                out.push(r);
                if spec.model_type == Some(ModelType::Binary) {
                    if let Some(v) = acc.performance.estimated(metric) {
                        let mut e = result("performance", metric);
                        e.method = "cbpe".into();
                        e.threshold = max.or(*min);
                        e.rows_compared = acc.performance.estimated_rows();
                        e.value = Some(v);
                        e.status = if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                            Status::Alert
                        } else {
                            Status::Ok
                        };
                        e.detail = "estimated from the predicted probabilities (CBPE)".into();
                        out.push(e);
                    }
                }
            }
            Check::Sql {
                name,
                query,
                min,
                max,
            } => {
                let mut r = result("sql", name);
                r.method = "sql".into();
                r.threshold = max.or(*min);
                let rows = format!(
                    "(SELECT * FROM ({serving_query}) AS s WHERE s.{ts} >= to_timestamp_micros({start}) AND s.{ts} < to_timestamp_micros({end}))",
                    ts = quote(&spec.serving.timestamp_column)
                );
                let sql = query.replace("{window}", &rows);
                match lake.sql(&sql, &QueryOptions::default()).await {
                    Ok(res) => match first_number(&res.batches) {
                        Some(v) => {
                            r.value = Some(v);
                            r.status = if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                                Status::Alert
                            } else {
                                Status::Ok
                            };
                        }
                        None => {
                            r.status = Status::NotEnoughData;
                            r.detail = "the query gave no number".into();
                        }
                    },
                    Err(e) => {
                        r.status = Status::Error;
                        r.detail = format!("the query failed: {e}");
                    }
                }
                out.push(r);
            }
            _ => {}
        }
    }
    out
}

fn first_number(batches: &[arrow::record_batch::RecordBatch]) -> Option<f64> {
    let b = batches.iter().find(|b| b.num_rows() > 0)?;
    let c = arrow::compute::cast(b.column(0), &DataType::Float64).ok()?;
    let c = c.as_primitive::<Float64Type>();
    (!c.is_null(0))
        .then(|| c.value(0))
        .filter(|v| v.is_finite())
}

/// Raises each breach once as an event (delivered to the alert topic), and a recovery when a
/// window passes after a breached one.
async fn raise_alerts(
    lake: &Lake,
    spec: &MonitorSpec,
    windows: &[WindowReport],
    table: &str,
) -> Result<(Vec<AlertRecord>, Vec<AlertRecord>), MonitorError> {
    let mut alerts = Vec::new();
    let mut recovered = Vec::new();
    let severity = spec
        .alert
        .as_ref()
        .map(|a| a.severity.clone())
        .unwrap_or_else(|| "warning".into());
    let mut breached: BTreeMap<(String, String, String), bool> = BTreeMap::new();
    let notifier = tarn_notify::Notifier::for_lake(&lake.config);
    for w in windows {
        let mut new_breaches = Vec::new();
        for r in &w.results {
            let series = (r.check.clone(), r.field.clone(), r.method.clone());
            let was = breached.get(&series).copied().unwrap_or(false);
            let kind = match r.status {
                Status::Alert => BREACH,
                Status::Ok if was => RECOVERED,
                _ => continue,
            };
            breached.insert(series, r.status == Status::Alert);
            let detail = serde_json::json!({
                "monitor": spec.name,
                "check": r.check,
                "field": r.field,
                "method": r.method,
                "window_start": w.start,
                "window_end": w.end,
                "value": r.value,
                "threshold": r.threshold,
                "severity": severity,
                "model": spec.model.as_ref().map(|m| m.name.clone()),
                "model_version": r.model_version,
                "table": table,
                "detail": r.detail,
            });
            let event = NewEvent {
                kind: CUSTOM_EVENT.into(),
                zone: String::new(),
                key: kind.into(),
                etag: format!(
                    "{}|{}|{}|{}|{}",
                    spec.name, r.check, r.field, r.method, w.start
                ),
                size: 0,
                detail: serde_json::json!({"source": ALERT_SOURCE, "detail_type": kind, "detail": detail}),
            };
            let Some(event_id) = lake.events().record_event_id(&event).await? else {
                continue; // raised by an earlier run
            };
            let record = AlertRecord {
                event_id,
                check: r.check.clone(),
                field: r.field.clone(),
                window_start: w.start.clone(),
                value: r.value,
                threshold: r.threshold,
                severity: severity.clone(),
            };
            if let Some(alert) = &spec.alert {
                let verb = if kind == BREACH { "alert" } else { "recovered" };
                let subject = format!(
                    "{}: monitor {} {verb}: {} of {} = {} (threshold {}) in the window from {}",
                    lake.config.lake,
                    spec.name,
                    r.check,
                    r.field,
                    r.value
                        .map(|v| format!("{v:.4}"))
                        .unwrap_or_else(|| "none".into()),
                    r.threshold
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "none".into()),
                    w.start
                );
                let msg = tarn_notify::Message::new(subject.clone(), detail);
                match notifier.deliver(&alert.topic, &msg).await {
                    Ok(report) => {
                        lake.record_deliveries(&alert.topic, &subject, &report)
                            .await
                    }
                    Err(e) => tracing::warn!("monitor {}: {e}", spec.name),
                }
            }
            if kind == BREACH {
                new_breaches.push(serde_json::json!({
                    "check": r.check, "field": r.field, "method": r.method,
                    "value": r.value, "threshold": r.threshold,
                }));
                alerts.push(record);
            } else {
                recovered.push(record);
            }
        }
        if !new_breaches.is_empty() {
            // The window's alert: one event however many fields breached, so that a
            // retraining pipeline triggered by it runs once.
            let detail = serde_json::json!({
                "monitor": spec.name,
                "window_start": w.start,
                "window_end": w.end,
                "severity": severity,
                "model": spec.model.as_ref().map(|m| m.name.clone()),
                "model_version": w.model_versions.join(","),
                "table": table,
                "breaches": new_breaches,
            });
            let event = NewEvent {
                kind: CUSTOM_EVENT.into(),
                zone: String::new(),
                key: ALERT.into(),
                etag: format!("{}|{}", spec.name, w.start),
                size: 0,
                detail: serde_json::json!({"source": ALERT_SOURCE, "detail_type": ALERT, "detail": detail}),
            };
            lake.events().record_event_id(&event).await?;
        }
    }
    Ok((alerts, recovered))
}
