//! Linear regression (least squares, optional ridge `l2`) and logistic regression (Newton's
//! method on the log loss with an `l2` penalty, 1.0 by default as scikit-learn's `C=1`), fitted
//! on standardised features with missing values imputed by the training mean; the scaling is
//! folded back into the coefficients, and the ONNX graph is `Imputer` then `LinearRegressor`
//! or `LinearClassifier` (softmax over the two classes).

use super::onnx::{node, Attr, Msg};
use super::{hp_f64, Labels, Matrix, Model};
use crate::linalg::solve;
use crate::MlError;
use std::collections::BTreeMap;

pub(crate) struct Linear {
    /// Training means (used for missing values).
    means: Vec<f64>,
    /// Coefficients on the raw features.
    coef: Vec<f64>,
    intercept: f64,
}

/// Standardised columns (missing as 0, i.e. the mean), with the means and scales.
fn standardise(x: &Matrix) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
    let mut cols = Vec::new();
    let (mut means, mut scales) = (Vec::new(), Vec::new());
    for c in &x.cols {
        let present: Vec<f64> = c
            .iter()
            .filter(|v| !v.is_nan())
            .map(|v| *v as f64)
            .collect();
        let n = present.len().max(1) as f64;
        let mean = present.iter().sum::<f64>() / n;
        let var = present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let scale = if var > 0.0 { var.sqrt() } else { 1.0 };
        cols.push(
            c.iter()
                .map(|v| {
                    if v.is_nan() {
                        0.0
                    } else {
                        (*v as f64 - mean) / scale
                    }
                })
                .collect(),
        );
        means.push(mean);
        scales.push(scale);
    }
    (cols, means, scales)
}

fn gram(cols: &[Vec<f64>], w: Option<&[f64]>, l2: f64) -> Vec<Vec<f64>> {
    let d = cols.len();
    let mut a = vec![vec![0.0; d]; d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = match w {
                Some(w) => cols[i]
                    .iter()
                    .zip(&cols[j])
                    .zip(w)
                    .map(|((a, b), w)| a * b * w)
                    .sum(),
                None => cols[i].iter().zip(&cols[j]).map(|(a, b)| a * b).sum(),
            };
            a[i][j] = s;
            a[j][i] = s;
        }
        a[i][i] += l2;
    }
    a
}

/// Fits the model to at least one labelled row (`train` refuses a channel without any).
pub(crate) fn fit(
    x: &Matrix,
    labels: &Labels,
    classifier: bool,
    hp: &BTreeMap<String, serde_json::Value>,
) -> Result<Linear, MlError> {
    let (cols, means, scales) = standardise(x);
    let y = labels.values();
    let n = y.len();
    let d = cols.len();
    let (w, b) = if !classifier {
        let l2 = hp_f64(hp, "l2", 0.0)?.max(1e-9 * n as f64);
        let ybar = y.iter().sum::<f64>() / n as f64;
        let a = gram(&cols, None, l2);
        let rhs: Vec<f64> = cols
            .iter()
            .map(|c| c.iter().zip(y).map(|(x, t)| x * (t - ybar)).sum())
            .collect();
        (solve(&a, &rhs), ybar)
    } else {
        let l2 = hp_f64(hp, "l2", 1.0)?.max(1e-9);
        let max_iter = hp_f64(hp, "max_iter", 100.0)? as usize;
        // Newton's method on [w, b]; the intercept is not penalised.
        let mut w = vec![0.0; d];
        let p0 = (y.iter().sum::<f64>() / n as f64).clamp(1e-6, 1.0 - 1e-6);
        let mut b = (p0 / (1.0 - p0)).ln();
        let mut ext = cols.clone();
        ext.push(vec![1.0; n]);
        for _ in 0..max_iter.max(1) {
            let z: Vec<f64> = (0..n)
                .map(|i| b + (0..d).map(|j| w[j] * cols[j][i]).sum::<f64>())
                .collect();
            let p: Vec<f64> = z.iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect();
            let weights: Vec<f64> = p.iter().map(|p| (p * (1.0 - p)).max(1e-12)).collect();
            let mut grad: Vec<f64> = ext
                .iter()
                .map(|c| c.iter().zip(&p).zip(y).map(|((x, p), t)| x * (p - t)).sum())
                .collect();
            for j in 0..d {
                grad[j] += l2 * w[j];
            }
            let mut h = gram(&ext, Some(&weights), 0.0);
            for (j, row) in h.iter_mut().enumerate().take(d) {
                row[j] += l2;
            }
            let step = solve(&h, &grad);
            for j in 0..d {
                w[j] -= step[j];
            }
            b -= step[d];
            if step.iter().map(|s| s.abs()).fold(0.0, f64::max) < 1e-10 {
                break;
            }
        }
        (w, b)
    };
    let coef: Vec<f64> = w.iter().zip(&scales).map(|(w, s)| w / s).collect();
    let intercept = b - coef.iter().zip(&means).map(|(c, m)| c * m).sum::<f64>();
    Ok(Linear {
        means,
        coef,
        intercept,
    })
}

impl Model for Linear {
    fn onnx(&self, labels: &Labels) -> (Vec<Msg>, Vec<Msg>) {
        let imputer = node(
            "Imputer",
            "ai.onnx.ml",
            &["features"],
            &["imputed"],
            &[
                Attr::Floats(
                    "imputed_value_floats",
                    self.means.iter().map(|m| *m as f32).collect(),
                ),
                Attr::Float("replaced_value_float", f32::NAN),
            ],
        );
        let coef: Vec<f32> = self.coef.iter().map(|c| *c as f32).collect();
        let model = match labels {
            Labels::Regression(_) => node(
                "LinearRegressor",
                "ai.onnx.ml",
                &["imputed"],
                &["variable"],
                &[
                    Attr::Floats("coefficients", coef),
                    Attr::Floats("intercepts", vec![self.intercept as f32]),
                    Attr::Int("targets", 1),
                ],
            ),
            Labels::Classes { names, .. } => {
                // Two rows: class 0 scores 0, class 1 scores the logit; softmax of the pair is
                // (1 - p, p).
                let mut both = vec![0.0f32; coef.len()];
                both.extend(&coef);
                let class_attr = class_labels(names);
                node(
                    "LinearClassifier",
                    "ai.onnx.ml",
                    &["imputed"],
                    &["label", "probabilities"],
                    &[
                        Attr::Floats("coefficients", both),
                        Attr::Floats("intercepts", vec![0.0, self.intercept as f32]),
                        class_attr,
                        Attr::Str("post_transform", "SOFTMAX"),
                    ],
                )
            }
        };
        (vec![imputer, model], vec![])
    }
}

/// `classlabels_ints` when every class is an integer, else `classlabels_strings`.
pub(crate) fn class_labels(names: &[String]) -> Attr<'static> {
    match names
        .iter()
        .map(|n| n.parse::<i64>())
        .collect::<Result<Vec<i64>, _>>()
    {
        Ok(ints) => Attr::Ints("classlabels_ints", ints),
        Err(_) => Attr::Strs("classlabels_strings", names.to_vec()),
    }
}
