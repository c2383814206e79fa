//! The one error type of the ingest crate: every variant names the tap (and the stream, the
//! line of the tap's output, the setting) and says what to do.

/// What can go wrong installing, discovering or running a tap.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The tap is not declared, or its spec does not resolve.
    #[error("{0}")]
    Config(String),
    /// A secret could not be read; names the tap and the setting, never the value.
    #[error("tap `{tap}`: secret `{setting}`: {problem}")]
    Secret {
        tap: String,
        setting: String,
        problem: String,
    },
    /// Installing the tap's package or starting its program failed.
    #[error("tap `{tap}`: {problem}")]
    Install { tap: String, problem: String },
    /// The tap printed something that is not a Singer message, or messages out of order.
    #[error("tap `{tap}`{}, line {line} of its output: {problem}", stream.as_ref().map(|s| format!(", stream `{s}`")).unwrap_or_default())]
    Protocol {
        tap: String,
        stream: Option<String>,
        line: u64,
        problem: String,
    },
    /// The tap exited with a failure or ran past its timeout.
    #[error("tap `{tap}` {problem}; what it printed last:\n{logs}")]
    Tap {
        tap: String,
        problem: String,
        logs: String,
    },
    /// A run that failed, said with every secret hidden, and where its whole log is.
    #[error("{message} (the tap's log: {})", log_file.display())]
    Failed {
        message: String,
        log_file: std::path::PathBuf,
    },
    /// Another run holds the tap (on this node or another).
    #[error("tap `{tap}` is running already ({holder}, its lease lasts until {until}); wait for that run to end")]
    Busy {
        tap: String,
        holder: String,
        until: String,
    },
    /// Discovery did not give a catalog.
    #[error("tap `{tap}`: discovery failed: {problem}")]
    Discover { tap: String, problem: String },
    /// Writing a stream's table (the Delta commit or the catalog) failed.
    #[error("tap `{tap}`, stream `{stream}`: writing {table}: {source}")]
    Write {
        tap: String,
        stream: String,
        table: String,
        #[source]
        source: Box<tarn_lake::LakeError>,
    },
    /// The lake's metadata store (state, events).
    #[error(transparent)]
    Lake(Box<tarn_lake::LakeError>),
    #[error(transparent)]
    Metadata(#[from] tarn_lake::MetadataError),
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<tarn_lake::LakeError> for IngestError {
    fn from(e: tarn_lake::LakeError) -> Self {
        IngestError::Lake(Box::new(e))
    }
}

impl IngestError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        IngestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
