//! Every check of a monitor evaluated over one window: drift of features and predictions
//! against the baseline, missing and new values, value ranges, activity, realised and
//! estimated performance, and the file's own SQL checks.

use crate::columns::Side;
use crate::drift::{drift, Kind, Method};
use crate::embedding::{embedding_drift, Embedding};
use crate::error::MonitorError;
use crate::profile::Value;
use crate::results::{CheckResult, Status};
use crate::run::Acc;
use crate::serving::quote;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use tarn_config::{Check, Field, FieldGroup, FieldType, ModelType, MonitorSpec};
use tarn_lake::{Lake, QueryOptions};

/// The fields a drift check covers: those named, or every feature and raw input that can be
/// compared.
pub(crate) fn drift_fields<'a>(
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
pub(crate) fn tensor_drift(
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

pub(crate) const FROM_FIRST: &str =
    "compared with the first window (the baseline has no such column)";

/// Writes a drift test's outcome into `r`: the figure and decision with `notes` as its
/// detail, or why there was not enough data (the side has no `what`), or the error.
pub(crate) fn fill(
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

pub(crate) fn kind_of(f: &Field) -> Kind {
    if f.field_type.is_numeric() {
        Kind::Numerical
    } else {
        Kind::Categorical
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn evaluate(
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
                    let missing = side.missing(&f.name);
                    if side.rows == 0 {
                        r.status = Status::NotEnoughData;
                        r.detail = "the window has no row".into();
                    } else {
                        within(
                            &mut r,
                            missing as f64 / side.rows as f64,
                            None,
                            Some(*max_share),
                        );
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
                            within(&mut r, share, None, Some(*max_share));
                            r.rows_compared = c.count();
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
                            within(&mut r, share, None, Some(*max_share));
                            r.rows_compared = c.count();
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
                    Some(v) => within(&mut r, v, *min, *max),
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
                        within(&mut e, v, *min, *max);
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
                        Some(v) => within(&mut r, v, *min, *max),
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

/// A bounded figure into `r`: its value, and an alert when it is below `min` or above `max`.
fn within(r: &mut CheckResult, v: f64, min: Option<f64>, max: Option<f64>) {
    r.value = Some(v);
    r.status = if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
        Status::Alert
    } else {
        Status::Ok
    };
}

pub(crate) fn first_number(batches: &[arrow::record_batch::RecordBatch]) -> Option<f64> {
    let b = batches.iter().find(|b| b.num_rows() > 0)?;
    let c = arrow::compute::cast(b.column(0), &DataType::Float64).ok()?;
    let c = c.as_primitive::<Float64Type>();
    (!c.is_null(0))
        .then(|| c.value(0))
        .filter(|v| v.is_finite())
}
