//! Performance of a model over one window once actuals exist (rmse, mae; accuracy, precision,
//! recall, f1, auc, log loss as scikit-learn defines them), and for binary classifiers whose
//! actuals are late, the same figures estimated from the predicted probabilities alone
//! (NannyML's confidence-based performance estimation, CBPE): with a calibrated probability p,
//! a row predicted positive is a true positive with probability p and a false positive with
//! probability 1 - p, so the confusion matrix has an expected value without any label.

use std::collections::BTreeMap;

/// What one window's labelled (and, for CBPE, unlabelled) rows add up to: sums and counts
/// whose size grows with distinct scores and labels, never with rows.
#[derive(Debug, Clone, Default)]
pub struct Performance {
    /// Regression: count, sum of squared and of absolute errors.
    n: u64,
    sse: f64,
    sae: f64,
    /// Binary, labelled rows: per distinct score (ordered as `f64::total_cmp`), how many
    /// were actually negative and positive, for AUC.
    scored: BTreeMap<Score, [u64; 2]>,
    /// Binary, labelled rows: their count and summed negative log-likelihood, for log loss.
    logged: u64,
    log_loss_sum: f64,
    /// Labels: (predicted, actual) pair counts.
    confusion: BTreeMap<(String, String), u64>,
    /// CBPE: expected true/false positives/negatives over every row with a probability.
    expected: [f64; 4],
    scored_rows: u64,
}

/// The positive class of a binary actual or prediction given as text.
pub fn is_positive(label: &str) -> bool {
    matches!(
        label.trim().to_ascii_lowercase().as_str(),
        "1" | "1.0" | "true" | "yes" | "positive"
    )
}

impl Performance {
    /// A regression row with its actual.
    pub fn add_regression(&mut self, predicted: f64, actual: f64) {
        if !(predicted.is_finite() && actual.is_finite()) {
            return;
        }
        let e = predicted - actual;
        self.n += 1;
        self.sse += e * e;
        self.sae += e.abs();
    }

    /// A classified row with its actual label.
    pub fn add_label(&mut self, predicted: &str, actual: &str) {
        *self
            .confusion
            .entry((predicted.to_string(), actual.to_string()))
            .or_default() += 1;
    }

    /// A binary row's probability of the positive class, with its actual when known.
    pub fn add_probability(&mut self, p: f64, actual: Option<bool>) {
        if !p.is_finite() {
            return;
        }
        let p = p.clamp(0.0, 1.0);
        self.scored_rows += 1;
        if p >= 0.5 {
            self.expected[0] += p; // true positive
            self.expected[1] += 1.0 - p; // false positive
        } else {
            self.expected[2] += p; // false negative
            self.expected[3] += 1.0 - p; // true negative
        }
        if let Some(a) = actual {
            self.scored.entry(Score(p)).or_default()[a as usize] += 1;
            let q = p.clamp(f64::EPSILON, 1.0 - f64::EPSILON);
            self.logged += 1;
            self.log_loss_sum -= if a { q.ln() } else { (1.0 - q).ln() };
        }
    }

    /// Rows with an actual.
    pub fn labelled(&self) -> u64 {
        self.n + self.confusion.values().sum::<u64>()
    }

    /// Rows a CBPE estimate stands on.
    pub fn estimated_rows(&self) -> u64 {
        self.scored_rows
    }

    /// The realised figure of `metric`, when the labelled rows allow one.
    pub fn metric(&self, metric: &str) -> Option<f64> {
        match metric {
            "rmse" => (self.n > 0).then(|| (self.sse / self.n as f64).sqrt()),
            "mae" => (self.n > 0).then(|| self.sae / self.n as f64),
            "accuracy" => {
                let total: u64 = self.confusion.values().sum();
                let right: u64 = self
                    .confusion
                    .iter()
                    .filter(|((p, a), _)| labels_equal(p, a))
                    .map(|(_, n)| n)
                    .sum();
                (total > 0).then(|| right as f64 / total as f64)
            }
            "precision" | "recall" | "f1" => self.per_class(metric),
            "auc" => auc(&self.scored),
            "log_loss" => (self.logged > 0).then(|| self.log_loss_sum / self.logged as f64),
            _ => None,
        }
    }

    /// The CBPE estimate of `metric` (accuracy, precision, recall, f1) for a binary
    /// classifier, from the probabilities alone.
    pub fn estimated(&self, metric: &str) -> Option<f64> {
        if self.scored_rows == 0 {
            return None;
        }
        let [tp, fp, fneg, tn] = self.expected;
        let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
        match metric {
            "accuracy" => Some((tp + tn) / self.scored_rows as f64),
            "precision" => ratio(tp, tp + fp),
            "recall" => ratio(tp, tp + fneg),
            "f1" => ratio(2.0 * tp, 2.0 * tp + fp + fneg),
            _ => None,
        }
    }

    /// Precision, recall or f1: of the positive class when the labels are binary, the
    /// unweighted mean over classes otherwise (scikit-learn's `average="binary"` and
    /// `"macro"`).
    fn per_class(&self, metric: &str) -> Option<f64> {
        if self.confusion.is_empty() {
            return None;
        }
        let mut classes: Vec<String> = self
            .confusion
            .keys()
            .flat_map(|(p, a)| [normal(p), normal(a)])
            .collect();
        classes.sort();
        classes.dedup();
        let binary = classes.len() <= 2 && classes.iter().all(|c| c == "0" || c == "1");
        let figure = |class: &str| -> f64 {
            let (mut tp, mut fp, mut fneg) = (0u64, 0u64, 0u64);
            for ((p, a), n) in &self.confusion {
                let (p, a) = (normal(p) == class, normal(a) == class);
                match (p, a) {
                    (true, true) => tp += n,
                    (true, false) => fp += n,
                    (false, true) => fneg += n,
                    _ => {}
                }
            }
            let precision = if tp + fp > 0 {
                tp as f64 / (tp + fp) as f64
            } else {
                0.0
            };
            let recall = if tp + fneg > 0 {
                tp as f64 / (tp + fneg) as f64
            } else {
                0.0
            };
            match metric {
                "precision" => precision,
                "recall" => recall,
                _ => {
                    if tp + fp + fneg == 0 {
                        0.0
                    } else {
                        2.0 * tp as f64 / (2 * tp + fp + fneg) as f64
                    }
                }
            }
        };
        if binary {
            Some(figure("1"))
        } else {
            Some(classes.iter().map(|c| figure(c)).sum::<f64>() / classes.len() as f64)
        }
    }
}

fn is_negative(label: &str) -> bool {
    matches!(
        label.trim().to_ascii_lowercase().as_str(),
        "0" | "0.0" | "false" | "no" | "negative"
    )
}

/// A label as compared: binary spellings become `1` and `0`.
fn normal(label: &str) -> String {
    if is_positive(label) {
        "1".into()
    } else if is_negative(label) {
        "0".into()
    } else {
        label.trim().to_string()
    }
}

fn labels_equal(a: &str, b: &str) -> bool {
    normal(a) == normal(b)
}

/// A probability as a key, ordered as `f64::total_cmp` orders it.
#[derive(Debug, Clone, Copy)]
struct Score(f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The area under the ROC curve: the chance that a positive row scores above a negative one
/// (ties count a half), scikit-learn's `roc_auc_score`, from the counts per distinct score.
fn auc(scored: &BTreeMap<Score, [u64; 2]>) -> Option<f64> {
    let positives = scored.values().map(|c| c[1]).sum::<u64>() as f64;
    let negatives = scored.values().map(|c| c[0]).sum::<u64>() as f64;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    // Sum of the positives' ranks, the rows of one score given their mean rank.
    let (mut rank_sum, mut before) = (0.0, 0u64);
    for [neg, pos] in scored.values() {
        let n = neg + pos;
        let mean_rank = before as f64 + (n as f64 + 1.0) / 2.0;
        rank_sum += *pos as f64 * mean_rank;
        before += n;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_errors() {
        let mut p = Performance::default();
        p.add_regression(3.0, 1.0);
        p.add_regression(1.0, 1.0);
        assert_eq!(p.metric("mae"), Some(1.0));
        assert_eq!(p.metric("rmse"), Some(2f64.sqrt()));
    }

    #[test]
    fn auc_counts_ties_as_halves() {
        let mut p = Performance::default();
        for (s, a) in [(0.1, false), (0.4, true), (0.4, false), (0.8, true)] {
            p.add_probability(s, Some(a));
        }
        // sklearn.metrics.roc_auc_score([0, 1, 0, 1], [0.1, 0.4, 0.4, 0.8]) == 0.875
        assert_eq!(p.metric("auc"), Some(0.875));
    }

    #[test]
    fn cbpe_expects_the_confusion_matrix_from_probabilities() {
        let mut p = Performance::default();
        for s in [0.9, 0.8, 0.3, 0.1] {
            p.add_probability(s, None);
        }
        // expected TP 1.7, FP 0.3, FN 0.4, TN 1.6
        assert!((p.estimated("accuracy").unwrap() - 3.3 / 4.0).abs() < 1e-12);
        assert!((p.estimated("precision").unwrap() - 1.7 / 2.0).abs() < 1e-12);
        assert!((p.estimated("recall").unwrap() - 1.7 / 2.1).abs() < 1e-12);
    }
}
