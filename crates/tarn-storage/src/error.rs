//! The one error type of the storage crate.

/// What can go wrong with zones and landing.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("key `{key}` is refused: {reason}")]
    BadKey { key: String, reason: String },
    #[error("{0}")]
    UnknownZone(String),
    #[error("storage URL `{url}` cannot be used: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "{zone}/{key} already exists with other content, and the raw layer is append-only; \
         land it under a new key, or pass --force to replace it (the old content is kept under {zone}/{versions}/{key}/)"
    )]
    RawExists {
        zone: String,
        key: String,
        versions: String,
    },
    #[error("cannot read {path}: {source}")]
    ReadLocal {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is empty or not a file or folder")]
    NothingToLand { path: String },
    #[error("object {0} does not exist")]
    NotFound(String),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Metadata(#[from] tarn_metadata::MetadataError),
}
