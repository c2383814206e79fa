//! The one error type of the lake crate: every lower crate's error, plus usage mistakes.

/// What can go wrong operating a lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(transparent)]
    Config(#[from] tarn_config::ConfigError),
    #[error(transparent)]
    Metadata(#[from] tarn_metadata::MetadataError),
    #[error(transparent)]
    Storage(#[from] tarn_storage::StorageError),
    #[error(transparent)]
    Catalog(#[from] tarn_catalog::CatalogError),
    #[error(transparent)]
    Tables(#[from] tarn_tables::TablesError),
    #[error(transparent)]
    Query(#[from] tarn_query::QueryError),
    /// The request itself is wrong; the message says how to fix it.
    #[error("{0}")]
    Usage(String),
    #[error("table {0} is not in the catalog; run `tarn tables` to see what is, or `tarn crawl` to catalog new files")]
    NoSuchTable(String),
    #[error("{0}; `tarn zones` lists the lake's zones")]
    NoSuchDatabase(String),
    #[error("table {0} is already in the catalog")]
    TableExists(String),
    #[error("partition {0} is already in the catalog")]
    PartitionExists(String),
    #[error("{0}")]
    NoSuchPartition(String),
    #[error("no execution has id `{0}`; `tarn executions list` shows them")]
    NoSuchExecution(String),
    /// The execution is not in a state that allows what was asked.
    #[error("{0}")]
    ExecutionState(String),
    /// The object store did not do what was asked (a run's artifacts).
    #[error("the object store failed: {0}")]
    ObjectStore(String),
    /// A model's files are missing or unreadable.
    #[error("the model at {location} {problem}")]
    ModelFiles { location: String, problem: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
