//! What can go wrong in a monitor, each with the field or file it concerns and what to do.

use crate::drift::{Kind, Method};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("unknown drift method `{name}`: use one of {known}")]
    UnknownMethod { name: String, known: String },
    #[error("field `{field}`: the {method} method does not apply to {kind:?} fields; use auto, jensenshannon, psi or hellinger, or {} (distance is for tensor fields)", if *kind == Kind::Numerical { "ks or wasserstein" } else { "chisquare or z" })]
    MethodNotForKind {
        field: String,
        method: Method,
        kind: Kind,
    },
    #[error("tensor field `{field}`: the {method} method does not apply to embeddings; use auto or distance (the Euclidean distance between mean embeddings)")]
    NotForTensor { field: String, method: Method },
    #[error("field `{field}`: not enough data: the {side} side has no value that is not missing")]
    NotEnoughData { field: String, side: &'static str },
    #[error("field `{field}` is declared numeric but holds text; declare it categorical or string, or map it to a numeric column")]
    NotNumeric { field: String },
    /// The monitor file does not fit the data it reads.
    #[error("{path}: {message}")]
    Spec { path: String, message: String },
    /// A query of the monitor failed.
    #[error("the {what} query failed: {message} (query: {query}); fix it in the monitor file and try it with `tarn sql`")]
    Query {
        what: &'static str,
        query: String,
        message: String,
    },
    /// `baseline: training` without the lineage to find the training data.
    #[error("model {model} has no training lineage: {why}; give the monitor `baseline: {{query: SELECT ...}}`")]
    NoLineage { model: String, why: String },
    #[error("no monitor `{name}`; {known}")]
    NoSuchMonitor { name: String, known: String },
    #[error(
        "monitor `{monitor}` has no run `{run}`; `tarn monitors history {monitor}` lists its runs"
    )]
    NoSuchRun { monitor: String, run: String },
    #[error(
        "`{0}` is not a window: write a length (30m, 1h, 1d, 7d), a row count (1000) or `all`"
    )]
    BadWindow(String),
    #[error("a history of {0} runs: ask for 1 to {max} (--limit, limit)", max = crate::MAX_RUNS)]
    BadLimit(usize),
    /// The results table holds a status this tarn does not read (written by another tool).
    #[error("the results table {table} holds status `{status}`, which is none of ok, alert, not_enough_data, error")]
    UnknownStatus { table: String, status: String },
    /// The monitor files have problems (every one is listed).
    #[error(transparent)]
    Config(#[from] tarn_config::ConfigError),
    #[error(transparent)]
    Lake(#[from] tarn_lake::LakeError),
    #[error(transparent)]
    Metadata(#[from] tarn_lake::MetadataError),
    #[error("reading the data: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
