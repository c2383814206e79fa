//! The one error type of the metadata crate.

/// What can go wrong talking to the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("cannot open the metadata store at {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot bring the metadata store's schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("metadata store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("metadata store holds a malformed document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot create the folder for the metadata store {path}: {source}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The request clashes with what is stored; the message says what to do instead.
    #[error("{0}")]
    Conflict(String),
    #[error("table `{0}` is not in the catalog")]
    NoSuchTable(String),
    /// Something asked for does not exist; the message names it.
    #[error("{0}")]
    NotFound(String),
    /// A value the store refuses; the message says why.
    #[error("{0}")]
    Invalid(String),
}
