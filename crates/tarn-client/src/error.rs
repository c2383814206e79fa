//! The one error type of the client crate.

/// What can go wrong doing an operation, on a lake folder or through a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The lake (opened here) refused or failed; its message says why.
    #[error(transparent)]
    Lake(#[from] tarn_lake::LakeError),
    #[error("--server `{0}` is not an http:// or https:// URL, e.g. http://127.0.0.1:8080")]
    BadServer(String),
    #[error("cannot reach the tarn server at {url}; is `tarn serve` running there?")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{message} (pass --token or set TARN_TOKEN)")]
    Unauthorized { message: String },
    /// The server refused the call; `message` is its own.
    #[error("{message}")]
    Refused { status: u16, message: String },
    #[error("the server's answer is not what this tarn expects (versions differ?): {0}")]
    Unexpected(String),
    #[error(
        "`{0}` does not name a zone; write DOMAIN/LAYER[/KEY], e.g. flights/raw/2013/flights.csv"
    )]
    NotAZone(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Query(#[from] tarn_lake::QueryError),
    #[error("no registered model is named `{0}`; `tarn models list` shows those there are")]
    NoSuchModel(String),
    /// A monitor (run here) refused or failed; its message says why. Boxed: a monitor's
    /// error is large and every other operation's result would carry its size.
    #[error(transparent)]
    Monitor(Box<tarn_monitoring::MonitorError>),
}

impl From<tarn_monitoring::MonitorError> for ClientError {
    fn from(e: tarn_monitoring::MonitorError) -> Self {
        ClientError::Monitor(Box::new(e))
    }
}
