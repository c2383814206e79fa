//! The one error type of the tables crate.

/// What can go wrong loading into or reading Delta tables.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("{place}: {message}")]
    Contract { place: String, message: String },
    #[error("cannot load {source_name}: {reason}")]
    Source { source_name: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("table location {0} is not a valid URL")]
    Location(String),
    #[error("{0} is not a Delta table (load into it first)")]
    NotDelta(String),
    #[error("table {table} has no version {version}; see `tarn table history`")]
    NoSuchVersion { table: String, version: i64 },
    #[error("Delta: {0}")]
    Delta(#[from] deltalake::DeltaTableError),
    #[error("Arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    #[error("query engine: {0}")]
    DataFusion(#[from] deltalake::datafusion::error::DataFusionError),
}
