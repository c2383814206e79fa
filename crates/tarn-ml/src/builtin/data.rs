//! From a channel's Arrow batches to what the algorithms read: a column-major `f32` feature
//! matrix (nulls as NaN) and the labels; and the metrics a trained model is judged by.

use crate::channels::ChannelData;
use crate::MlError;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};

/// Features, one `f32` column per feature; NaN is a missing value.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub rows: usize,
    pub cols: Vec<Vec<f32>>,
}

/// What the model learns to predict.
#[derive(Debug, Clone)]
pub enum Labels {
    Regression(Vec<f64>),
    /// Binary classes: `y` is 0 or 1, `names[1]` the positive class.
    Classes {
        y: Vec<f64>,
        names: Vec<String>,
    },
}

impl Labels {
    pub fn values(&self) -> &[f64] {
        match self {
            Labels::Regression(y) | Labels::Classes { y, .. } => y,
        }
    }
}

/// The feature columns: as listed, or every column of the channel but the target.
pub fn feature_names(
    ch: &ChannelData,
    target: &str,
    listed: &[String],
) -> Result<Vec<String>, MlError> {
    let fields: Vec<String> = ch
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if !fields.iter().any(|f| f == target) {
        return Err(MlError::Usage(format!(
            "the `train` channel has no target column `{target}`; its columns are: {}",
            fields.join(", ")
        )));
    }
    if listed.is_empty() {
        return Ok(fields.into_iter().filter(|f| f != target).collect());
    }
    for f in listed {
        if !fields.contains(f) {
            return Err(MlError::Usage(format!(
                "the `train` channel has no feature column `{f}`; its columns are: {}",
                fields.join(", ")
            )));
        }
    }
    Ok(listed.to_vec())
}

fn column_f64(ch: &ChannelData, name: &str) -> Result<Vec<Option<f64>>, MlError> {
    let idx = ch
        .schema
        .index_of(name)
        .map_err(|_| MlError::Usage(format!("channel `{}` has no column `{name}`", ch.name)))?;
    let mut out = Vec::with_capacity(ch.rows);
    for b in &ch.batches {
        let col = b.column(idx);
        let numeric = match col.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => None,
            _ => arrow::compute::cast(col, &DataType::Float64).ok(),
        };
        let Some(numeric) = numeric else {
            return Err(MlError::Usage(format!(
                "column `{name}` of channel `{}` is {}; built-in trainers take numeric and boolean features: cast it or encode it in the channel's query (e.g. CASE WHEN ... THEN 1 ELSE 0 END)",
                ch.name,
                col.data_type()
            )));
        };
        let a = numeric.as_primitive::<Float64Type>();
        for i in 0..a.len() {
            out.push(a.is_valid(i).then(|| a.value(i)));
        }
    }
    Ok(out)
}

fn column_text(ch: &ChannelData, name: &str) -> Result<Vec<Option<String>>, MlError> {
    let idx = ch
        .schema
        .index_of(name)
        .map_err(|_| MlError::Usage(format!("channel `{}` has no column `{name}`", ch.name)))?;
    let mut out = Vec::with_capacity(ch.rows);
    for b in &ch.batches {
        let col = arrow::compute::cast(b.column(idx), &DataType::Utf8)
            .map_err(|e| MlError::Model(format!("column `{name}`: {e}")))?;
        let a = col.as_string::<i32>();
        for i in 0..a.len() {
            out.push(a.is_valid(i).then(|| a.value(i).to_string()));
        }
    }
    Ok(out)
}

/// The matrix and labels of a channel; rows without a label are left out (their count is
/// answered). `known` carries the training classes when preparing evaluation data.
pub fn prepare(
    ch: &ChannelData,
    features: &[String],
    target: &str,
    classifier: bool,
    known: Option<&Labels>,
) -> Result<(Matrix, Labels, usize), MlError> {
    let keep: Vec<bool>;
    let labels = if classifier {
        let text = column_text(ch, target)?;
        keep = text.iter().map(Option::is_some).collect();
        let names: Vec<String> = match known {
            Some(Labels::Classes { names, .. }) => names.clone(),
            _ => {
                let mut distinct: Vec<String> = text.iter().flatten().cloned().collect();
                distinct.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(x), Ok(y)) => x.total_cmp(&y),
                    _ => a.cmp(b),
                });
                distinct.dedup();
                if distinct.len() != 2 {
                    return Err(MlError::Usage(format!(
                        "the target `{target}` has {} classes ({}); built-in classifiers are binary: map it to two classes in the channel's query",
                        distinct.len(),
                        distinct.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
                distinct
            }
        };
        let mut y = Vec::new();
        for t in text.iter().flatten() {
            match names.iter().position(|n| n == t) {
                Some(i) => y.push(i as f64),
                None => {
                    return Err(MlError::Usage(format!(
                    "channel `{}` has class `{t}` in `{target}`, which `train` does not have ({})",
                    ch.name,
                    names.join(", ")
                )))
                }
            }
        }
        Labels::Classes { y, names }
    } else {
        let v = column_f64(ch, target)?;
        keep = v.iter().map(|x| x.is_some_and(f64::is_finite)).collect();
        Labels::Regression(v.into_iter().flatten().filter(|x| x.is_finite()).collect())
    };
    let mut cols = Vec::with_capacity(features.len());
    for f in features {
        let v = column_f64(ch, f)?;
        cols.push(
            v.iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(x, _)| x.map(|x| x as f32).unwrap_or(f32::NAN))
                .collect::<Vec<f32>>(),
        );
    }
    let rows = labels.values().len();
    let dropped = keep.len() - rows;
    Ok((Matrix { rows, cols }, labels, dropped))
}

/// Regression: rmse, mae, r2. Classification: accuracy, auc, log_loss, f1.
pub fn evaluate(pred: &[f64], labels: &Labels) -> Vec<(String, f64)> {
    let y = labels.values();
    let n = y.len().max(1) as f64;
    match labels {
        Labels::Regression(_) => {
            let mean = y.iter().sum::<f64>() / n;
            let sse: f64 = pred.iter().zip(y).map(|(p, t)| (p - t).powi(2)).sum();
            let sae: f64 = pred.iter().zip(y).map(|(p, t)| (p - t).abs()).sum();
            let sst: f64 = y.iter().map(|t| (t - mean).powi(2)).sum();
            vec![
                ("rmse".into(), (sse / n).sqrt()),
                ("mae".into(), sae / n),
                ("r2".into(), if sst > 0.0 { 1.0 - sse / sst } else { 0.0 }),
            ]
        }
        Labels::Classes { .. } => {
            let (mut tp, mut fp, mut fneg, mut right) = (0.0, 0.0, 0.0, 0.0);
            let mut ll = 0.0;
            for (p, t) in pred.iter().zip(y) {
                let guess = if *p >= 0.5 { 1.0 } else { 0.0 };
                if guess == *t {
                    right += 1.0;
                }
                match (guess == 1.0, *t == 1.0) {
                    (true, true) => tp += 1.0,
                    (true, false) => fp += 1.0,
                    (false, true) => fneg += 1.0,
                    _ => {}
                }
                let q = p.clamp(1e-15, 1.0 - 1e-15);
                ll -= t * q.ln() + (1.0 - t) * (1.0 - q).ln();
            }
            let f1 = if tp > 0.0 {
                2.0 * tp / (2.0 * tp + fp + fneg)
            } else {
                0.0
            };
            vec![
                ("accuracy".into(), right / n),
                ("auc".into(), auc(pred, y)),
                ("log_loss".into(), ll / n),
                ("f1".into(), f1),
            ]
        }
    }
}

/// The area under the ROC curve (ties count half).
fn auc(pred: &[f64], y: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..pred.len()).collect();
    idx.sort_by(|a, b| pred[*a].total_cmp(&pred[*b]));
    let (mut rank_sum, mut pos) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && pred[idx[j + 1]] == pred[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in &idx[i..=j] {
            if y[*k] == 1.0 {
                rank_sum += avg;
                pos += 1.0;
            }
        }
        i = j + 1;
    }
    let neg = y.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}
