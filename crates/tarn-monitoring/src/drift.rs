//! Drift of one field between a reference profile and a current one, by Evidently 0.7's
//! methods, thresholds and defaults (its `ValueDrift` and `DataDriftPreset`): the same
//! figure and the same decision for the same data.
//!
//! `auto` picks as Evidently does: for a reference of at most 1000 values, the K-S test for a
//! numeric field with more than 5 distinct values, otherwise chi-square (more than 2 distinct
//! values) or the Z-test for proportions; above 1000, the normed Wasserstein distance for a
//! numeric field with more than 5 distinct values and the Jensen-Shannon distance otherwise.

use crate::error::MonitorError;
use crate::ks;
use crate::profile::{Profile, Value};
use crate::special::{chi2_sf, ndtr};
use serde::{Deserialize, Serialize};

/// How a field's values are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Numbers: ordered, binned, distances between distributions.
    Numerical,
    /// Labels (categories, booleans, strings): counts per value.
    Categorical,
}

/// A drift method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Auto,
    Ks,
    #[serde(rename = "chisquare")]
    ChiSquare,
    Z,
    Wasserstein,
    #[serde(rename = "jensenshannon")]
    JensenShannon,
    Psi,
    Hellinger,
    /// Tensor fields only: the distance between mean embeddings ([`crate::embedding`]).
    Distance,
}

impl Method {
    pub const ALL: [Method; 9] = [
        Method::Auto,
        Method::Ks,
        Method::ChiSquare,
        Method::Z,
        Method::Wasserstein,
        Method::JensenShannon,
        Method::Psi,
        Method::Hellinger,
        Method::Distance,
    ];

    /// The name used in monitor files and results (Evidently's names).
    pub fn name(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::Ks => "ks",
            Method::ChiSquare => "chisquare",
            Method::Z => "z",
            Method::Wasserstein => "wasserstein",
            Method::JensenShannon => "jensenshannon",
            Method::Psi => "psi",
            Method::Hellinger => "hellinger",
            Method::Distance => "distance",
        }
    }

    /// The threshold Evidently uses when none is given.
    pub fn default_threshold(self) -> f64 {
        match self {
            Method::Ks | Method::ChiSquare | Method::Z => 0.05,
            _ => 0.1,
        }
    }

    /// Whether the figure is a p-value (drift below the threshold) or a distance (drift at or
    /// above it).
    pub fn is_p_value(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare | Method::Z)
    }

    /// The kinds of field the method applies to.
    pub fn applies_to(self, kind: Kind) -> bool {
        match self {
            Method::Ks | Method::Wasserstein => kind == Kind::Numerical,
            Method::ChiSquare | Method::Z => kind == Kind::Categorical,
            Method::Distance => false,
            _ => true,
        }
    }
}

impl std::str::FromStr for Method {
    type Err = MonitorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| MonitorError::UnknownMethod {
                name: s.to_string(),
                known: Method::ALL
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of one drift test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// The method that ran (`auto` resolved to the one it picked).
    pub method: Method,
    /// The p-value or the distance.
    pub score: f64,
    pub threshold: f64,
    pub drifted: bool,
    /// Values compared on each side (missing values are left out).
    pub reference_count: u64,
    pub current_count: u64,
}

/// The method `auto` picks for these profiles.
pub fn auto_method(reference: &Profile, current: &Profile, kind: Kind) -> Method {
    let n_values = keys(reference, current).len();
    let small = reference.count() <= 1000;
    match (kind, small) {
        (Kind::Numerical, true) if n_values > 5 => Method::Ks,
        (Kind::Numerical, true) | (Kind::Categorical, true) => {
            if n_values > 2 {
                Method::ChiSquare
            } else {
                Method::Z
            }
        }
        (Kind::Numerical, false) if n_values > 5 => Method::Wasserstein,
        (_, false) => Method::JensenShannon,
    }
}

/// Tests one field for drift.
pub fn drift(
    field: &str,
    reference: &Profile,
    current: &Profile,
    kind: Kind,
    method: Method,
    threshold: Option<f64>,
) -> Result<Drift, MonitorError> {
    if reference.count() == 0 {
        return Err(MonitorError::NotEnoughData {
            field: field.into(),
            side: "reference",
        });
    }
    if current.count() == 0 {
        return Err(MonitorError::NotEnoughData {
            field: field.into(),
            side: "current",
        });
    }
    if kind == Kind::Numerical && !(reference.is_numeric() && current.is_numeric()) {
        return Err(MonitorError::NotNumeric {
            field: field.into(),
        });
    }
    let chosen = if method == Method::Auto {
        auto_method(reference, current, kind)
    } else {
        if !method.applies_to(kind) {
            return Err(MonitorError::MethodNotForKind {
                field: field.into(),
                method,
                kind,
            });
        }
        method
    };
    let threshold = threshold.unwrap_or(chosen.default_threshold());
    let score = match chosen {
        Method::Ks => ks::ks_2samp(&reference.numbers(), &current.numbers()).1,
        Method::ChiSquare => chi_square(reference, current),
        Method::Z => z_test(reference, current),
        Method::Wasserstein => wasserstein_normed(reference, current),
        Method::JensenShannon => {
            let (r, c) = binned(reference, current, kind, false);
            jensen_shannon(&r, &c)
        }
        Method::Psi => {
            let (r, c) = binned(reference, current, kind, true);
            r.iter().zip(&c).map(|(r, c)| (r - c) * (r / c).ln()).sum()
        }
        Method::Hellinger => hellinger(reference, current, kind),
        Method::Auto => unreachable!("auto is resolved above"),
        Method::Distance => unreachable!("distance applies to no kind of field (tensors only)"),
    };
    let drifted = match chosen {
        Method::Ks => score <= threshold,
        Method::ChiSquare | Method::Z => score < threshold,
        _ => score >= threshold,
    };
    Ok(Drift {
        method: chosen,
        score,
        threshold,
        drifted,
        reference_count: reference.count(),
        current_count: current.count(),
    })
}

/// The union of both profiles' values, in order.
fn keys<'a>(a: &'a Profile, b: &'a Profile) -> Vec<&'a Value> {
    let mut all: Vec<&Value> = a
        .values()
        .map(|(v, _)| v)
        .chain(b.values().map(|(v, _)| v))
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Pearson's chi-square test of the current counts against the reference's, scaled to the
/// current size (SciPy's `chisquare`).
fn chi_square(reference: &Profile, current: &Profile) -> f64 {
    let keys = keys(reference, current);
    let k_norm = current.count() as f64 / reference.count() as f64;
    let stat: f64 = keys
        .iter()
        .map(|k| {
            let expected = reference.count_of(k) as f64 * k_norm;
            let observed = current.count_of(k) as f64;
            (observed - expected).powi(2) / expected
        })
        .sum();
    chi2_sf(stat, keys.len() as f64 - 1.0)
}

/// The two-sided Z-test for the difference of two proportions: the share of values other
/// than the smallest one.
fn z_test(reference: &Profile, current: &Profile) -> f64 {
    let keys = keys(reference, current);
    if reference.distinct() == 1 && current.distinct() == 1 && keys.len() == 1 {
        return 1.0;
    }
    let first = keys[0];
    let (n1, n2) = (reference.count() as f64, current.count() as f64);
    let p1 = (reference.count() - reference.count_of(first)) as f64 / n1;
    let p2 = (current.count() - current.count_of(first)) as f64 / n2;
    let p = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    2.0 * (1.0 - ndtr(z.abs()))
}

/// The Wasserstein distance divided by the reference's standard deviation (at least 0.001).
fn wasserstein_normed(reference: &Profile, current: &Profile) -> f64 {
    let (u, v) = (reference.numbers(), current.numbers());
    let (nu, nv) = (reference.count() as f64, current.count() as f64);
    let mut all: Vec<f64> = u.iter().chain(v.iter()).map(|(x, _)| *x).collect();
    all.sort_by(|a, b| a.total_cmp(b));
    all.dedup();
    let (mut i, mut j, mut cu, mut cv) = (0usize, 0usize, 0u64, 0u64);
    let mut distance = 0.0;
    for w in all.windows(2) {
        while i < u.len() && u[i].0 <= w[0] {
            cu += u[i].1;
            i += 1;
        }
        while j < v.len() && v[j].0 <= w[0] {
            cv += v[j].1;
            j += 1;
        }
        distance += (cu as f64 / nu - cv as f64 / nv).abs() * (w[1] - w[0]);
    }
    let std = reference.mean_std().map(|(_, s)| s).unwrap_or(0.0);
    distance / std.max(0.001)
}

/// NumPy's `histogram_bin_edges(values, bins="sturges")` for values between `min` and `max`.
pub(crate) fn sturges_edges(min: f64, max: f64, size: u64, integer: bool) -> Vec<f64> {
    let (first, last) = if min == max {
        (min - 0.5, max + 0.5)
    } else {
        (min, max)
    };
    let mut width = (max - min) / ((size as f64).log2() + 1.0);
    let bins = if width != 0.0 {
        if integer && width < 1.0 {
            width = 1.0;
        }
        ((last - first) / width).ceil() as usize
    } else {
        1
    };
    linspace(first, last, bins + 1)
}

/// NumPy's `linspace(start, stop, num)` with its endpoint.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut y: Vec<f64> = (0..num)
        .map(|i| if step == 0.0 { i as f64 / div * delta } else { i as f64 * step } + start)
        .collect();
    if num > 1 {
        y[num - 1] = stop;
    }
    y
}

/// Counts per bin, as `np.histogram(values, edges)` counts them: each bin holds its lower edge,
/// the last one its upper edge too.
pub(crate) fn histogram(values: &[(f64, u64)], edges: &[f64]) -> Vec<u64> {
    let bins = edges.len() - 1;
    let mut counts = vec![0u64; bins];
    for (x, c) in values {
        if *x < edges[0] || *x > edges[bins] {
            continue;
        }
        let at = edges.partition_point(|e| e <= x);
        counts[(at.max(1) - 1).min(bins - 1)] += c;
    }
    counts
}

/// Evidently's `get_binned_data`: the share of each side per Sturges bin (a numeric field
/// whose reference has more than 20 distinct values) or per value; with `fill_zeroes`, empty
/// bins get a small share so that logarithms stay finite (as PSI needs).
fn binned(
    reference: &Profile,
    current: &Profile,
    kind: Kind,
    fill_zeroes: bool,
) -> (Vec<f64>, Vec<f64>) {
    let (nr, nc) = (reference.count() as f64, current.count() as f64);
    let (mut r, mut c): (Vec<f64>, Vec<f64>) =
        if kind == Kind::Numerical && reference.distinct() > 20 {
            let (ru, cu) = (reference.numbers(), current.numbers());
            let min = ru[0].0.min(cu[0].0);
            let max = ru[ru.len() - 1].0.max(cu[cu.len() - 1].0);
            let integer = reference.is_integer() && current.is_integer();
            let edges = sturges_edges(min, max, reference.count() + current.count(), integer);
            (
                histogram(&ru, &edges)
                    .into_iter()
                    .map(|n| n as f64 / nr)
                    .collect(),
                histogram(&cu, &edges)
                    .into_iter()
                    .map(|n| n as f64 / nc)
                    .collect(),
            )
        } else {
            let keys = keys(reference, current);
            (
                keys.iter()
                    .map(|k| reference.count_of(k) as f64 / nr)
                    .collect(),
                keys.iter()
                    .map(|k| current.count_of(k) as f64 / nc)
                    .collect(),
            )
        };
    if fill_zeroes {
        fill(&mut r);
        fill(&mut c);
    }
    (r, c)
}

fn fill(shares: &mut [f64]) {
    let smallest = shares
        .iter()
        .copied()
        .filter(|s| *s != 0.0)
        .fold(f64::INFINITY, f64::min);
    let filler = if smallest <= 0.0001 {
        smallest / 1e6
    } else {
        0.0001
    };
    for s in shares.iter_mut().filter(|s| **s == 0.0) {
        *s = filler;
    }
}

/// SciPy's `distance.jensenshannon` (natural logarithm).
fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let rel_entr = |x: f64, y: f64| {
        if x > 0.0 && y > 0.0 {
            x * (x / y).ln()
        } else if x == 0.0 && y >= 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    };
    let (mut left, mut right) = (0.0, 0.0);
    for (a, b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left += rel_entr(a, m);
        right += rel_entr(b, m);
    }
    ((left + right) / 2.0).sqrt()
}

/// The Hellinger distance between the two distributions: per value for labels, per Sturges
/// bin (over the distinct values) of the densities for numbers.
fn hellinger(reference: &Profile, current: &Profile, kind: Kind) -> f64 {
    let (nr, nc) = (reference.count() as f64, current.count() as f64);
    let keys = keys(reference, current);
    let overlap = if kind == Kind::Categorical {
        keys.iter()
            .map(|k| (reference.count_of(k) as f64 / nr * (current.count_of(k) as f64 / nc)).sqrt())
            .sum::<f64>()
    } else {
        let xs: Vec<f64> = keys.iter().filter_map(|k| k.number()).collect();
        let integer = reference.is_integer() && current.is_integer();
        let edges = sturges_edges(xs[0], xs[xs.len() - 1], xs.len() as u64, integer);
        let density = |counts: Vec<u64>| -> Vec<f64> {
            let total: u64 = counts.iter().sum();
            counts
                .iter()
                .zip(edges.windows(2))
                .map(|(n, e)| *n as f64 / (e[1] - e[0]) / total as f64)
                .collect()
        };
        let h1 = density(histogram(&reference.numbers(), &edges));
        let h2 = density(histogram(&current.numbers(), &edges));
        let width = (edges[edges.len() - 1] - edges[0]) / (edges.len() - 1) as f64;
        h1.iter()
            .zip(&h2)
            .map(|(a, b)| (a * b).sqrt() * width)
            .sum::<f64>()
    };
    (1.0 - overlap.clamp(0.0, 1.0)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sturges_edges_are_numpys() {
        // np.histogram_bin_edges([0, 1, 2, 3, 10], bins="sturges")
        let edges = sturges_edges(0.0, 10.0, 5, true);
        assert_eq!(edges.len(), 5);
        assert_eq!(edges, vec![0.0, 2.5, 5.0, 7.5, 10.0]);
        // one value: the range is widened by a half on each side.
        assert_eq!(sturges_edges(3.0, 3.0, 10, false), vec![2.5, 3.5]);
    }

    #[test]
    fn histogram_keeps_the_top_edge_in_the_last_bin() {
        let edges = [0.0, 1.0, 2.0];
        assert_eq!(
            histogram(&[(0.0, 1), (1.0, 2), (2.0, 3)], &edges),
            vec![1, 5]
        );
    }
}
