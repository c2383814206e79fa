//! A column's profile: its distinct values with their counts, and how many were missing.
//!
//! Every drift method tarn offers is a function of the two profiles alone, so a baseline is
//! profiled once per model version and kept, and a window of any number of rows costs memory
//! in the number of its distinct values, not its rows. Values are ordered as pandas orders
//! them (numbers before text; -0.0 and 0.0 are one value), and infinities count as missing,
//! as Evidently drops them before testing.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One value of a column.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Text(String),
}

impl Value {
    /// The number, when the value is one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Number(x) => Some(*x),
            Value::Text(_) => None,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Value {}
impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Number(a), Value::Number(b)) => a.total_cmp(b),
            (Value::Number(_), Value::Text(_)) => Ordering::Less,
            (Value::Text(_), Value::Number(_)) => Ordering::Greater,
            (Value::Text(a), Value::Text(b)) => a.cmp(b),
        }
    }
}

/// The distinct values of one column of one window (or of a baseline), with their counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(with = "pairs")]
    counts: BTreeMap<Value, u64>,
    missing: u64,
    /// The column is typed as integers (pandas keeps an integer column with no missing value
    /// as integers, which changes the width of NumPy's histogram bins).
    integer_typed: bool,
}

impl Profile {
    /// An empty profile of a column typed as integers or not.
    pub fn new(integer_typed: bool) -> Self {
        Profile {
            integer_typed,
            ..Profile::default()
        }
    }

    /// Counts one value, or a missing one.
    pub fn add(&mut self, value: Option<Value>) {
        self.add_n(value, 1)
    }

    /// Counts `n` occurrences of one value (or of a missing one).
    pub fn add_n(&mut self, value: Option<Value>, n: u64) {
        if n == 0 {
            return;
        }
        match value {
            Some(Value::Number(x)) if !x.is_finite() => self.missing += n,
            Some(Value::Number(x)) => {
                // -0.0 and 0.0 are one value to pandas.
                let x = if x == 0.0 { 0.0 } else { x };
                *self.counts.entry(Value::Number(x)).or_default() += n;
            }
            Some(v) => *self.counts.entry(v).or_default() += n,
            None => self.missing += n,
        }
    }

    /// Counts a number (NaN and infinities count as missing).
    pub fn add_number(&mut self, x: f64) {
        self.add(Some(Value::Number(x)))
    }

    /// Adds every count of another profile of the same column.
    pub fn merge(&mut self, other: &Profile) {
        for (v, n) in &other.counts {
            *self.counts.entry(v.clone()).or_default() += n;
        }
        self.missing += other.missing;
        self.integer_typed &= other.integer_typed;
    }

    /// Rows counted, missing ones included.
    pub fn rows(&self) -> u64 {
        self.count() + self.missing
    }

    /// Values present (rows without the missing ones).
    pub fn count(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// The number of distinct values present.
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    /// Whether every value present is a number.
    pub fn is_numeric(&self) -> bool {
        self.counts.keys().all(|v| matches!(v, Value::Number(_)))
    }

    /// Whether NumPy would see this column as integers: typed so, with nothing missing.
    pub fn is_integer(&self) -> bool {
        self.integer_typed && self.missing == 0
    }

    /// The distinct values with their counts, in order.
    pub fn values(&self) -> impl Iterator<Item = (&Value, u64)> {
        self.counts.iter().map(|(v, n)| (v, *n))
    }

    /// How often `value` occurs.
    pub fn count_of(&self, value: &Value) -> u64 {
        self.counts.get(value).copied().unwrap_or(0)
    }

    /// The numeric values with their counts, in order (text values are left out).
    pub fn numbers(&self) -> Vec<(f64, u64)> {
        self.counts
            .iter()
            .filter_map(|(v, n)| v.number().map(|x| (x, *n)))
            .collect()
    }

    pub fn min(&self) -> Option<&Value> {
        self.counts.keys().next()
    }

    pub fn max(&self) -> Option<&Value> {
        self.counts.keys().next_back()
    }

    /// The mean and the population standard deviation of the numeric values (NumPy's
    /// `np.std`, ddof 0).
    pub fn mean_std(&self) -> Option<(f64, f64)> {
        let values = self.numbers();
        let n: u64 = values.iter().map(|(_, c)| c).sum();
        if n == 0 {
            return None;
        }
        let mean = values.iter().map(|(x, c)| x * *c as f64).sum::<f64>() / n as f64;
        let var = values
            .iter()
            .map(|(x, c)| (x - mean).powi(2) * *c as f64)
            .sum::<f64>()
            / n as f64;
        Some((mean, var.sqrt()))
    }

    /// The value below which a share `q` of the values lie (linear interpolation, as NumPy's
    /// default `quantile`).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let values = self.numbers();
        let n: u64 = values.iter().map(|(_, c)| c).sum();
        if n == 0 {
            return None;
        }
        let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
        let (lo, frac) = (pos.floor() as u64, pos - pos.floor());
        let at = |k: u64| {
            let mut seen = 0;
            for (x, c) in &values {
                seen += c;
                if k < seen {
                    return *x;
                }
            }
            values.last().map(|(x, _)| *x).unwrap_or(f64::NAN)
        };
        let a = at(lo);
        Some(if frac == 0.0 {
            a
        } else {
            a + (at(lo + 1) - a) * frac
        })
    }
}

/// A profile's counts are kept as a list of `[value, count]` pairs (JSON maps need text keys).
mod pairs {
    use super::Value;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(map: &BTreeMap<Value, u64>, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(&Value, &u64)> = map.iter().collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<Value, u64>, D::Error> {
        let pairs: Vec<(Value, u64)> = Vec::deserialize(d)?;
        Ok(pairs.into_iter().collect())
    }
}
