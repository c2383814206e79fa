//! The one error type of the metadata crate, and the typed reasons inside it: what is not
//! stored ([`Missing`]), what is stored already ([`Existing`]), which object is in a stage
//! that forbids the change ([`Inactive`]). Their wording here is tarn's; the server words
//! them as MLflow's API does (`tarn-server`'s `mlflow` module), because MLflow's clients
//! show those messages.

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
    /// The key values are sealed with, or a sealed value, is missing or damaged.
    #[error("secret store: {0}")]
    Sealed(String),
    /// The object to create is there already.
    #[error("{0}")]
    Exists(Existing),
    #[error("table `{0}` is not in the catalog")]
    NoSuchTable(String),
    /// Something asked for is not stored.
    #[error("{0}")]
    NotFound(Missing),
    /// The object is deleted (or otherwise not active), so it cannot change.
    #[error("{0}")]
    Inactive(Inactive),
    /// A value one of MLflow's rules refuses (`validation`, filters, stages, approvals).
    /// The text is the rule's own, as MLflow states it: its clients show it, and tests match it.
    #[error("{0}")]
    Refused(String),
    /// A log-batch waiting for the writer was never answered (the task writing its group
    /// ended early); it may not be stored.
    #[error("metadata store write failed: {0}")]
    Group(String),
}

/// Something asked for that the store does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    #[error("experiment {id} does not exist; `tarn experiments list` shows those there are")]
    Experiment { id: String },
    #[error("run {id} does not exist; `tarn runs list --experiment NAME` shows those there are")]
    Run { id: String },
    #[error("run {run_id} has no tag `{key}`")]
    RunTag { run_id: String, key: String },
    #[error("no registered model is named `{name}`; `tarn models list` shows those there are")]
    RegisteredModel { name: String },
    #[error(
        "model `{name}` has no version {version}; `tarn models show {name}` lists its versions"
    )]
    ModelVersion { name: String, version: String },
    #[error("model `{name}` has no versions yet")]
    LatestVersion { name: String },
    #[error("model `{name}` has no alias `{alias}`")]
    Alias { name: String, alias: String },
    #[error("no endpoint is named `{name}`; `tarn endpoints list` shows those there are")]
    Endpoint { name: String },
    #[error("trace {id} does not exist")]
    Trace { id: String },
    #[error("trace {id} has no tag `{key}`")]
    TraceTag { id: String, key: String },
    #[error("trace {trace_id} has no assessment {id}")]
    Assessment { trace_id: String, id: String },
    #[error("logged model {id} does not exist")]
    LoggedModel { id: String },
    #[error("logged model {id} has no tag `{key}`")]
    LoggedModelTag { id: String, key: String },
    #[error("no live token is named `{name}`; `tarn token list` shows them")]
    Token { name: String },
}

/// An object to create whose name is taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Existing {
    #[error("an experiment named `{name}` exists; pick another name")]
    Experiment { name: String },
    #[error("a registered model named `{name}` exists; pick another name")]
    RegisteredModel { name: String },
    #[error(
        "a token named `{name}` exists; pick another name, or revoke it first with `tarn token revoke {name}`"
    )]
    Token { name: String },
}

/// What kind of object is inactive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Experiment,
    Run,
}

/// An object in a lifecycle stage (deleted) that forbids the change asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {id} is {stage}; restore it first", match kind { Kind::Experiment => "experiment", Kind::Run => "run" })]
pub struct Inactive {
    pub kind: Kind,
    pub id: String,
    pub stage: String,
}

impl MetadataError {
    /// A folder or file beside the store (the sealing key's) that could not be made or read.
    pub(crate) fn folder(path: &std::path::Path, source: std::io::Error) -> Self {
        MetadataError::Folder {
            path: path.display().to_string(),
            source,
        }
    }
}
