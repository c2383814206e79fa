//! Drift of a tensor field (an embedding of N numbers) by Evidently's `distance` method
//! without its bootstrap: the Euclidean distance between the reference's mean embedding and
//! the current one's, drift when it is above the threshold (0.2 by default, Evidently's).
//!
//! A side is summed as it streams ([`Embedding`]: a count and a sum per dimension), so memory
//! is one vector per field and window whatever the row count, and a baseline's sum is kept
//! with its profile. A vector of another length than the field's `dimensions`, or with a
//! missing or non-finite element, is not added: it is counted as misfit (and as missing by
//! the missing-values check).

use crate::drift::{Drift, Method};
use crate::error::MonitorError;
use serde::{Deserialize, Serialize};

/// Evidently's default threshold for its `distance` embedding method.
pub const DEFAULT_THRESHOLD: f64 = 0.2;

/// The running sum of one side's embeddings of a field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Vectors added.
    pub count: u64,
    /// Their sum, per dimension.
    pub sum: Vec<f64>,
    /// Vectors left out: of another length, or with a missing or non-finite element.
    pub misfit: u64,
}

impl Embedding {
    /// Adds one vector of `dimensions` numbers (another length, a missing or a non-finite
    /// element: counted as misfit, not added).
    pub fn add(&mut self, dimensions: usize, v: impl ExactSizeIterator<Item = Option<f64>>) {
        if v.len() != dimensions {
            self.misfit += 1;
            return;
        }
        if self.sum.len() != dimensions {
            self.sum = vec![0.0; dimensions];
        }
        let start = self.sum.clone();
        for (s, x) in self.sum.iter_mut().zip(v) {
            match x.filter(|x| x.is_finite()) {
                Some(x) => *s += x,
                None => {
                    self.sum = start;
                    self.misfit += 1;
                    return;
                }
            }
        }
        self.count += 1;
    }

    /// Merges another side's sum (of the same dimensions) into this one.
    pub fn merge(&mut self, other: &Embedding) {
        if self.sum.is_empty() {
            self.sum = other.sum.clone();
        } else {
            for (s, o) in self.sum.iter_mut().zip(&other.sum) {
                *s += o;
            }
        }
        self.count += other.count;
        self.misfit += other.misfit;
    }

    /// The mean embedding (empty when nothing was added).
    pub fn mean(&self) -> Vec<f64> {
        if self.count == 0 {
            return Vec::new();
        }
        self.sum.iter().map(|s| s / self.count as f64).collect()
    }
}

/// Tests one tensor field for drift: the Euclidean distance between the mean embeddings.
/// `method` must be `auto` or `distance`.
pub fn embedding_drift(
    field: &str,
    reference: &Embedding,
    current: &Embedding,
    method: Method,
    threshold: Option<f64>,
) -> Result<Drift, MonitorError> {
    if !matches!(method, Method::Auto | Method::Distance) {
        return Err(MonitorError::NotForTensor {
            field: field.into(),
            method,
        });
    }
    for (side, e) in [("reference", reference), ("current", current)] {
        if e.count == 0 {
            return Err(MonitorError::NotEnoughData {
                field: field.into(),
                side,
            });
        }
    }
    let (r, c) = (reference.mean(), current.mean());
    let score = r
        .iter()
        .zip(&c)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    let threshold = threshold.unwrap_or(DEFAULT_THRESHOLD);
    Ok(Drift {
        method: Method::Distance,
        score,
        threshold,
        drifted: score > threshold,
        reference_count: reference.count,
        current_count: current.count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(vectors: &[&[f64]]) -> Embedding {
        let mut e = Embedding::default();
        for v in vectors {
            e.add(2, v.iter().map(|x| Some(*x)));
        }
        e
    }

    #[test]
    fn the_distance_between_means_decides() {
        let r = side(&[&[0.0, 0.0], &[2.0, 0.0]]);
        let c = side(&[&[1.0, 0.3], &[1.0, 0.5]]);
        let d = embedding_drift("e", &r, &c, Method::Auto, None).unwrap();
        assert!((d.score - 0.4).abs() < 1e-12, "{d:?}");
        assert!(d.drifted);
        let d = embedding_drift("e", &r, &c, Method::Distance, Some(0.5)).unwrap();
        assert!(!d.drifted);
    }

    #[test]
    fn misfits_are_counted_not_added_and_other_methods_refused() {
        let mut e = side(&[&[1.0, 1.0]]);
        e.add(2, [Some(1.0)].into_iter());
        e.add(2, [Some(1.0), None].into_iter());
        e.add(2, [Some(f64::NAN), Some(1.0)].into_iter());
        assert_eq!((e.count, e.misfit), (1, 3));
        assert_eq!(e.mean(), vec![1.0, 1.0]);
        let err = embedding_drift("e", &e, &e, Method::Ks, None).unwrap_err();
        assert!(err.to_string().contains("distance"), "{err}");
        let empty = Embedding::default();
        assert!(matches!(
            embedding_drift("e", &empty, &e, Method::Auto, None),
            Err(MonitorError::NotEnoughData {
                side: "reference",
                ..
            })
        ));
    }
}
