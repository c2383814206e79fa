//! Hyperparameter tuning: which hyperparameters the next job tries. Grid walks the product of
//! the ranges (continuous and integer ranges as a few evenly spaced points, on a log scale when
//! asked); random samples each range; bayesian starts with a few random jobs, then fits a
//! Gaussian process to the objective values seen so far and picks the candidate with the
//! highest expected improvement. Every strategy is seeded, so a tuning is reproducible.

use crate::linalg::{cholesky, solve_lower, solve_upper_t};
use std::collections::BTreeMap;
use tarn_config::{ParameterRange, Strategy, Tuning};

type Params = BTreeMap<String, serde_json::Value>;

/// A small, seeded random number generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

/// Proposes hyperparameters for the jobs of one tuning.
pub struct Tuner {
    strategy: Strategy,
    ranges: Vec<(String, ParameterRange)>,
    rng: Rng,
    grid: Vec<Params>,
    proposed: usize,
    /// Random jobs before the Gaussian process takes over.
    initial: usize,
}

/// A point of the unit cube: one coordinate per range.
fn to_unit(range: &ParameterRange, v: &serde_json::Value) -> f64 {
    match range {
        ParameterRange::Continuous { min, max, log } => {
            scale(*min, *max, *log, v.as_f64().unwrap_or(*min))
        }
        ParameterRange::Integer { min, max, log } => scale(
            *min as f64,
            *max as f64,
            *log,
            v.as_f64().unwrap_or(*min as f64),
        ),
        ParameterRange::Categorical(values) => {
            let i = values.iter().position(|x| x == v).unwrap_or(0);
            if values.len() <= 1 {
                0.0
            } else {
                i as f64 / (values.len() - 1) as f64
            }
        }
    }
}

fn scale(min: f64, max: f64, log: bool, v: f64) -> f64 {
    if max <= min {
        return 0.0;
    }
    if log {
        (v.ln() - min.ln()) / (max.ln() - min.ln())
    } else {
        (v - min) / (max - min)
    }
}

fn from_unit(range: &ParameterRange, u: f64) -> serde_json::Value {
    let u = u.clamp(0.0, 1.0);
    let lerp = |min: f64, max: f64, log: bool| {
        if log {
            (min.ln() + u * (max.ln() - min.ln())).exp()
        } else {
            min + u * (max - min)
        }
    };
    match range {
        ParameterRange::Continuous { min, max, log } => {
            let v = lerp(*min, *max, *log);
            // Six significant digits keep params readable.
            let v: f64 = format!("{v:.6e}").parse().unwrap_or(v);
            serde_json::json!(v)
        }
        ParameterRange::Integer { min, max, log } => {
            let v = lerp(*min as f64, *max as f64 + 0.999, *log).floor() as i64;
            serde_json::json!(v.clamp(*min, *max))
        }
        ParameterRange::Categorical(values) => {
            let i = ((u * values.len() as f64) as usize).min(values.len() - 1);
            values[i].clone()
        }
    }
}

/// The grid's points along one range.
fn axis(range: &ParameterRange) -> Vec<serde_json::Value> {
    match range {
        ParameterRange::Categorical(values) => values.clone(),
        ParameterRange::Integer { min, max, .. } if max - min < 5 => {
            (*min..=*max).map(|v| serde_json::json!(v)).collect()
        }
        _ => {
            let mut out: Vec<serde_json::Value> = Vec::new();
            for i in 0..5 {
                let v = match range {
                    ParameterRange::Integer { min, max, log } => {
                        let x = scale_back(*min as f64, *max as f64, *log, i as f64 / 4.0);
                        serde_json::json!(x.round() as i64)
                    }
                    _ => from_unit(range, i as f64 / 4.0),
                };
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            out
        }
    }
}

fn scale_back(min: f64, max: f64, log: bool, u: f64) -> f64 {
    if log {
        (min.ln() + u * (max.ln() - min.ln())).exp()
    } else {
        min + u * (max - min)
    }
}

impl Tuner {
    pub fn new(tuning: &Tuning, seed: u64) -> Tuner {
        let ranges: Vec<(String, ParameterRange)> = tuning
            .ranges
            .iter()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        let mut grid = vec![Params::new()];
        if tuning.strategy == Strategy::Grid {
            for (name, r) in &ranges {
                let mut next = Vec::new();
                for p in &grid {
                    for v in axis(r) {
                        let mut q = p.clone();
                        q.insert(name.clone(), v);
                        next.push(q);
                    }
                }
                grid = next;
            }
        }
        Tuner {
            strategy: tuning.strategy,
            ranges,
            rng: Rng::new(seed),
            grid,
            proposed: 0,
            initial: (tuning.max_jobs as usize / 3).clamp(2, 5),
        }
    }

    /// How many jobs the grid has (every point once).
    pub fn grid_size(&self) -> usize {
        self.grid.len()
    }

    fn random(&mut self) -> Params {
        let mut p = Params::new();
        for (name, r) in self.ranges.clone() {
            let u = self.rng.unit();
            p.insert(name, from_unit(&r, u));
        }
        p
    }

    /// The next job's hyperparameters, given every finished job's and its objective value
    /// (lower is better; none when the job failed); none when the strategy has no more.
    pub fn next(&mut self, seen: &[(Params, Option<f64>)]) -> Option<Params> {
        self.proposed += 1;
        match self.strategy {
            Strategy::Grid => self.grid.get(self.proposed - 1).cloned(),
            Strategy::Random => Some(self.random()),
            Strategy::Bayesian => {
                let done: Vec<(Vec<f64>, f64)> = seen
                    .iter()
                    .filter_map(|(p, y)| {
                        let y = (*y)?;
                        let x = self
                            .ranges
                            .iter()
                            .map(|(n, r)| to_unit(r, p.get(n).unwrap_or(&serde_json::Value::Null)))
                            .collect();
                        Some((x, y))
                    })
                    .collect();
                if self.proposed <= self.initial || done.len() < 2 {
                    return Some(self.random());
                }
                Some(self.expected_improvement(&done))
            }
        }
    }

    /// The candidate (of a few hundred random ones) with the highest expected improvement
    /// under a Gaussian process fitted to `done`.
    fn expected_improvement(&mut self, done: &[(Vec<f64>, f64)]) -> Params {
        let gp = Gp::fit(done);
        let best = done.iter().map(|d| d.1).fold(f64::INFINITY, f64::min);
        let mut top: Option<(f64, Params)> = None;
        for _ in 0..512 {
            let p = self.random();
            let x: Vec<f64> = self.ranges.iter().map(|(n, r)| to_unit(r, &p[n])).collect();
            let (mu, sigma) = gp.predict(&x);
            let ei = expected_improvement(best, mu, sigma);
            if top.as_ref().is_none_or(|(t, _)| ei > *t) {
                top = Some((ei, p));
            }
        }
        top.map(|t| t.1).unwrap_or_else(|| self.random())
    }
}

fn expected_improvement(best: f64, mu: f64, sigma: f64) -> f64 {
    if sigma <= 1e-12 {
        return (best - mu).max(0.0);
    }
    let z = (best - mu) / sigma;
    (best - mu) * normal_cdf(z) + sigma * normal_pdf(z)
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

/// Abramowitz and Stegun 7.1.26 (error below 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

/// A Gaussian process with an RBF kernel over the unit cube, on standardised targets.
struct Gp {
    xs: Vec<Vec<f64>>,
    alpha: Vec<f64>,
    chol: Vec<Vec<f64>>,
    mean: f64,
    std: f64,
}

const LENGTH: f64 = 0.3;
const NOISE: f64 = 1e-4;

fn kernel(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (-d / (2.0 * LENGTH * LENGTH)).exp()
}

impl Gp {
    fn fit(done: &[(Vec<f64>, f64)]) -> Gp {
        let n = done.len();
        let mean = done.iter().map(|d| d.1).sum::<f64>() / n as f64;
        let var = done.iter().map(|d| (d.1 - mean).powi(2)).sum::<f64>() / n as f64;
        let std = var.sqrt().max(1e-12);
        let y: Vec<f64> = done.iter().map(|d| (d.1 - mean) / std).collect();
        let xs: Vec<Vec<f64>> = done.iter().map(|d| d.0.clone()).collect();
        let mut k = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..n {
                k[i][j] = kernel(&xs[i], &xs[j]) + if i == j { NOISE } else { 0.0 };
            }
        }
        let chol = cholesky(&k);
        let alpha = solve_upper_t(&chol, &solve_lower(&chol, &y));
        Gp {
            xs,
            alpha,
            chol,
            mean,
            std,
        }
    }

    fn predict(&self, x: &[f64]) -> (f64, f64) {
        let ks: Vec<f64> = self.xs.iter().map(|xi| kernel(xi, x)).collect();
        let mu: f64 = ks.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = solve_lower(&self.chol, &ks);
        let var = (1.0 + NOISE - v.iter().map(|x| x * x).sum::<f64>()).max(1e-12);
        (self.mean + mu * self.std, var.sqrt() * self.std)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tarn_config::Objective;

    fn tuning(strategy: Strategy, max_jobs: u32) -> Tuning {
        let mut ranges = BTreeMap::new();
        ranges.insert(
            "x".to_string(),
            ParameterRange::Continuous {
                min: 0.0,
                max: 1.0,
                log: false,
            },
        );
        ranges.insert(
            "k".to_string(),
            ParameterRange::Categorical(vec![serde_json::json!("a"), serde_json::json!("b")]),
        );
        Tuning {
            strategy,
            objective: Objective {
                metric: "loss".into(),
                maximize: false,
            },
            ranges,
            max_jobs,
            max_parallel: 1,
        }
    }

    #[test]
    fn grid_walks_every_point_once() {
        let mut t = Tuner::new(&tuning(Strategy::Grid, 100), 7);
        assert_eq!(t.grid_size(), 10);
        let mut seen = Vec::new();
        while let Some(p) = t.next(&[]) {
            assert!(!seen.contains(&p));
            seen.push(p);
        }
        assert_eq!(seen.len(), 10);
    }

    #[test]
    fn bayesian_closes_in_on_the_minimum() {
        // loss = (x - 0.73)^2, + 1 for category b: the best is x near 0.73 with a.
        let f = |p: &Params| {
            let x = p["x"].as_f64().unwrap();
            (x - 0.73).powi(2) + if p["k"] == "b" { 1.0 } else { 0.0 }
        };
        let mut bayes = Tuner::new(&tuning(Strategy::Bayesian, 20), 3);
        let mut seen: Vec<(Params, Option<f64>)> = Vec::new();
        for _ in 0..20 {
            let p = bayes.next(&seen).unwrap();
            let y = f(&p);
            seen.push((p, Some(y)));
        }
        let best = seen
            .iter()
            .map(|s| s.1.unwrap())
            .fold(f64::INFINITY, f64::min);
        assert!(best < 0.002, "best loss {best}");
    }
}
