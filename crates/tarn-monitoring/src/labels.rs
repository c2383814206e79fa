//! Performance from the predictions: which prediction fields it is computed from, and the
//! delayed actuals joined to the serving rows by id.
//!
//! The join is one query: the serving rows and the actuals as one sorted stream (by id, an
//! id's actuals before its predictions), merged here one row at a time. The engine's sort
//! spills to disk past the query memory limit, so neither the number of predictions nor the
//! number of actuals makes a run hold more in memory, and the join takes one query slot.

use crate::columns::Column;
use crate::error::MonitorError;
use crate::performance::{is_positive, Performance};
use crate::profile::Value;
use crate::run::window_key;
use crate::serving::{probe, quote};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use futures::StreamExt;
use std::collections::BTreeMap;
use tarn_config::{Field, FieldGroup, ModelType, MonitorSpec, Window};
use tarn_lake::Lake;

/// Which prediction fields performance is computed from.
pub(crate) struct PerformanceFields<'a> {
    model_type: Option<ModelType>,
    /// The first numeric prediction (a regression's value, a binary classifier's
    /// probability), with its place among the fields a run reads.
    score: Option<(usize, &'a Field)>,
    /// The first label prediction, with its place.
    label: Option<(usize, &'a Field)>,
}

impl<'a> PerformanceFields<'a> {
    /// The prediction fields among `fields` (the fields a run reads, in their order).
    pub(crate) fn of(spec: &MonitorSpec, fields: &[&'a Field]) -> Self {
        let find = |wanted: fn(&Field) -> bool| {
            fields
                .iter()
                .enumerate()
                .find(|(_, f)| f.group == FieldGroup::Prediction && wanted(f))
                .map(|(i, f)| (i, *f))
        };
        PerformanceFields {
            model_type: spec.model_type,
            score: find(|f| f.field_type.is_numeric()),
            label: find(|f| f.field_type.is_label()),
        }
    }

    /// Whether predictions without actuals are looked at one by one: the probabilities of a
    /// binary classifier, for CBPE.
    pub(crate) fn estimates(&self) -> bool {
        self.model_type == Some(ModelType::Binary) && self.score.is_some()
    }

    /// Adds one row of the serving data, read from `columns` (one per field a run reads).
    pub(crate) fn add_row(&self, perf: &mut Performance, columns: &[Column], row: usize) {
        let score = self.score.and_then(|(i, _)| columns[i].value(row));
        let label = self.label.and_then(|(i, _)| columns[i].value(row));
        self.add(perf, score, label, None);
    }

    /// Adds one prediction: its score and label (where the monitor declares them), and its
    /// actual once one has arrived.
    fn add(
        &self,
        perf: &mut Performance,
        score: Option<Value>,
        label: Option<Value>,
        actual: Option<&Value>,
    ) {
        let text = |v: &Value| match v {
            Value::Number(x) if x.fract() == 0.0 => format!("{}", *x as i64),
            Value::Number(x) => x.to_string(),
            Value::Text(s) => s.clone(),
        };
        match self.model_type {
            Some(ModelType::Regression) | None => {
                if let (Some(Value::Number(p)), Some(Value::Number(a))) = (score, actual) {
                    perf.add_regression(p, *a);
                }
            }
            Some(ModelType::Binary) => {
                if let Some(Value::Number(p)) = score {
                    perf.add_probability(p, actual.map(|a| is_positive(&text(a))));
                }
                let predicted = match (label, score) {
                    (Some(l), _) => Some(text(&l)),
                    (None, Some(Value::Number(p))) => Some(if p >= 0.5 { "1" } else { "0" }.into()),
                    _ => None,
                };
                if let (Some(p), Some(a)) = (predicted, actual) {
                    perf.add_label(&p, &text(a));
                }
            }
            Some(ModelType::Multiclass) => {
                if let (Some(p), Some(a)) = (label.or(score), actual) {
                    perf.add_label(&text(&p), &text(a));
                }
            }
        }
    }
}

/// The monitor's actuals, when it declares them: the query and the first actual field.
fn declared(spec: &MonitorSpec) -> Option<(&tarn_config::Actuals, &Field)> {
    Some((
        spec.actuals.as_ref()?,
        spec.fields_of(FieldGroup::Actual).next()?,
    ))
}

/// Whether the monitor's actuals can be read now: `Ok(false)` when it declares none, the
/// reason when their query fails (their table not landed yet, say), which leaves every
/// prediction unlabelled.
pub(crate) async fn readable(lake: &Lake, spec: &MonitorSpec) -> Result<bool, String> {
    let Some((actuals, _)) = declared(spec) else {
        return Ok(false);
    };
    probe(lake, actuals.query.trim().trim_end_matches(';'), "actuals")
        .await
        .map(|_| true)
        .map_err(|e| e.to_string())
}

/// Each window's performance: every serving row (placed in its window as the run placed it)
/// with its actual when one has arrived, by window key.
pub(crate) async fn join(
    lake: &Lake,
    spec: &MonitorSpec,
    serving_query: &str,
    window: &Window,
    labels: &PerformanceFields<'_>,
) -> Result<BTreeMap<i64, Performance>, MonitorError> {
    let Some((actuals, actual)) = declared(spec) else {
        return Ok(BTreeMap::new());
    };
    let id = |alias: &str, column: &str| format!("CAST({alias}.{} AS VARCHAR)", quote(column));
    let serving_id = id("s", &spec.serving.id_column);
    let ts = format!("s.{}", quote(&spec.serving.timestamp_column));
    // A row-count window places rows by their rank in time (ties by id), as the run's own
    // pass reads them.
    let rank = match window {
        Window::Rows(_) => format!("ROW_NUMBER() OVER (ORDER BY {ts}, {serving_id}) - 1"),
        _ => "0".into(),
    };
    let expression = |f: Option<(usize, &Field)>| {
        f.map_or_else(|| "NULL".to_string(), |(_, f)| f.expression.clone())
    };
    let sql = format!(
        "SELECT * FROM (\
         SELECT {serving_id} AS \"__id\", 1 AS \"__side\", {ts} AS \"__ts\", {rank} AS \"__n\", \
         {score} AS \"__score\", {label} AS \"__label\", NULL AS \"__actual\" FROM ({serving_query}) AS s \
         UNION ALL \
         SELECT {actual_id} AS \"__id\", 0 AS \"__side\", NULL AS \"__ts\", NULL AS \"__n\", \
         NULL AS \"__score\", NULL AS \"__label\", {actual} AS \"__actual\" FROM ({actuals_query}) AS a\
         ) AS j ORDER BY \"__id\", \"__side\"",
        score = expression(labels.score),
        label = expression(labels.label),
        actual_id = id("a", &actuals.id_column),
        actual = actual.expression,
        actuals_query = actuals.query.trim().trim_end_matches(';'),
    );
    let failed = |e: &dyn std::fmt::Display| MonitorError::Query {
        what: "actuals",
        query: actuals.query.clone(),
        message: e.to_string(),
    };
    let (_, mut stream) = lake.sql_stream(&sql).await.map_err(|e| failed(&e))?;
    let width = crate::run::window_micros(window);
    let mut out: BTreeMap<i64, Performance> = BTreeMap::new();
    // The actual of the id read last, while its predictions follow it.
    let mut current: Option<(String, Option<Value>)> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| failed(&e))?;
        let ids = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let sides = arrow::compute::cast(batch.column(1), &DataType::Int64)?;
        let sides = sides.as_primitive::<Int64Type>();
        let ts = crate::columns::timestamps(spec, batch.column(2))?;
        let ranks = arrow::compute::cast(batch.column(3), &DataType::Int64)?;
        let ranks = ranks.as_primitive::<Int64Type>();
        let column = |f: Option<(usize, &Field)>, i: usize| {
            f.map(|(_, f)| Column::of(spec, f, batch.column(i)))
                .transpose()
        };
        let (scores, predicted) = (column(labels.score, 4)?, column(labels.label, 5)?);
        let actuals = Column::of(spec, actual, batch.column(6))?;
        for row in 0..batch.num_rows() {
            let id = (!ids.is_null(row)).then(|| ids.value(row));
            if sides.value(row) == 0 {
                let Some(id) = id else { continue };
                let value = actuals.value(row);
                match &mut current {
                    // Of several actuals for one id, the last one read that is not missing.
                    Some((c, v)) if c == id => {
                        if value.is_some() {
                            *v = value;
                        }
                    }
                    _ => current = Some((id.to_string(), value)),
                }
                continue;
            }
            let t = (!ts.is_null(row)).then(|| ts.value(row));
            let rank = if ranks.is_null(row) {
                0
            } else {
                ranks.value(row) as u64
            };
            let Some(key) = window_key(window, width, rank, t) else {
                continue;
            };
            let actual = match (&current, id) {
                (Some((c, v)), Some(id)) if c == id => v.as_ref(),
                _ => None,
            };
            labels.add(
                out.entry(key).or_default(),
                scores.as_ref().and_then(|c| c.value(row)),
                predicted.as_ref().and_then(|c| c.value(row)),
                actual,
            );
        }
    }
    Ok(out)
}
