//! The one error type of the pipelines crate.

/// What can go wrong around executions (a step failing is not an error here: it is recorded).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Config(#[from] tarn_config::ConfigError),
    #[error(transparent)]
    Lake(#[from] tarn_lake::LakeError),
    #[error(transparent)]
    Metadata(#[from] tarn_lake::MetadataError),
    #[error(transparent)]
    Process(#[from] tarn_process::ProcessError),
    #[error("no pipeline is named `{name}`; pipelines are: {known}")]
    UnknownPipeline { name: String, known: String },
    #[error("no execution has id `{0}`; `tarn executions list` shows them")]
    UnknownExecution(String),
    #[error("{0}")]
    BadEvent(String),
}
