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
    #[error("cannot make the table folder {path}: {source}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot read the Delta table at {table}: {}",
        without_backtrace(source)
    )]
    Open {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("{0} is not a Delta table (load into it first)")]
    NotDelta(String),
    #[error("table {table} has no version {version}; see `tarn table history`")]
    NoSuchVersion { table: String, version: i64 },
    #[error("Delta: {}", without_backtrace(.0))]
    Delta(#[from] deltalake::DeltaTableError),
    #[error("Arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    #[error("query engine: {0}")]
    DataFusion(#[from] deltalake::datafusion::error::DataFusionError),
}

impl TablesError {
    /// A Delta commit lost to a concurrent writer in a way the log cannot settle by itself
    /// (both created the table, or both changed its metadata); trying again may succeed.
    pub fn is_commit_conflict(&self) -> bool {
        use deltalake::kernel::transaction::TransactionError as T;
        matches!(
            self,
            TablesError::Delta(
                deltalake::DeltaTableError::Transaction {
                    source: T::CommitConflict(_)
                        | T::VersionAlreadyExists(_)
                        | T::MaxCommitAttempts(_)
                } | deltalake::DeltaTableError::VersionAlreadyExists(_)
            )
        )
    }
}

/// An error's text without the backtrace the Delta kernel appends to it when `RUST_BACKTRACE`
/// is set: users read the cause, not a hundred frames.
fn without_backtrace(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    match text.find("\n   0: ") {
        Some(at) => text[..at].trim_end().to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backtraces_are_left_out() {
        let e = "Kernel error: Json error: Truncated record\n   0: with_backtrace\n             at src/error.rs:482:25";
        assert_eq!(
            super::without_backtrace(&e),
            "Kernel error: Json error: Truncated record"
        );
    }
}
