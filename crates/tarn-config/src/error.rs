//! The one error type of the config crate: a place (file, line) plus what is wrong and the fix.

use std::path::PathBuf;

/// A configuration problem, always with where it is and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}; run `tarn init` to write a starter tarn.yml", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read, but something in it is wrong.
    #[error("{}{}: {message}{}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), fix.as_ref().map(|f| format!("; {f}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
        fix: Option<String>,
    },
    /// Several problems, each with its place (pipeline folders report all they find at once).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Problems(Vec<ConfigError>),
}

impl ConfigError {
    pub(crate) fn invalid(
        path: &std::path::Path,
        line: Option<usize>,
        message: impl Into<String>,
        fix: impl Into<Option<String>>,
    ) -> Self {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// The line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => *line,
            ConfigError::Read { .. } => None,
            ConfigError::Problems(p) => p.first().and_then(ConfigError::line),
        }
    }
}
