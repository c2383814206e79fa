//! The one error type of the catalog crate.

/// What can go wrong while crawling.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// One object could not be classified; the crawler reports it and goes on.
    #[error("{key}: {reason}")]
    Unreadable { key: String, reason: String },
    #[error(transparent)]
    Storage(#[from] tarn_storage::StorageError),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Metadata(#[from] tarn_metadata::MetadataError),
}

impl From<tarn_formats::FormatError> for CatalogError {
    fn from(e: tarn_formats::FormatError) -> Self {
        match e {
            tarn_formats::FormatError::Unreadable { key, reason } => {
                CatalogError::Unreadable { key, reason }
            }
        }
    }
}

impl CatalogError {
    /// Why an object was skipped, without its key.
    pub fn reason(&self) -> String {
        match self {
            CatalogError::Unreadable { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }
}
