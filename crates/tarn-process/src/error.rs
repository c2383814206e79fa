//! The one error type of the process crate.

use std::path::PathBuf;

/// What can go wrong preparing a process's environment.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {}: {source}; install Python 3 or point TARN_PYTHON at an interpreter", python.display())]
    NoPython {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{} -m venv` failed: {stderr}", python.display())]
    Venv { python: PathBuf, stderr: String },
    #[error("cannot run pip in {}: {source}", venv.display())]
    NoPip {
        venv: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("installing {packages} failed: {stderr}")]
    Install { packages: String, stderr: String },
}

impl ProcessError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ProcessError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
