//! The one error type of the ML crate.

/// What can go wrong preparing, running or registering a training job, or scoring a batch.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error(transparent)]
    Config(#[from] tarn_config::ConfigError),
    #[error(transparent)]
    Lake(#[from] tarn_lake::LakeError),
    #[error(transparent)]
    Metadata(#[from] tarn_lake::MetadataError),
    #[error(transparent)]
    Process(#[from] tarn_process::ProcessError),
    /// The request itself is wrong; the message says how to fix it.
    #[error("{0}")]
    Usage(String),
    /// A model's data or files are not what the algorithm or runtime needs.
    #[error("{0}")]
    Model(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl MlError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        MlError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
