//! The one error type of the node crate.

/// What can go wrong putting a lake together or running it.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Lake(#[from] tarn_lake::LakeError),
    #[error(transparent)]
    Metadata(#[from] tarn_lake::MetadataError),
    #[error(transparent)]
    Config(#[from] tarn_config::ConfigError),
    #[error(transparent)]
    Pipeline(#[from] tarn_pipelines::PipelineError),
    #[error(transparent)]
    Ml(#[from] tarn_ml::MlError),
    #[error(transparent)]
    Serve(#[from] tarn_server::ServeError),
    /// The endpoints declared in tarn.yml cannot be stored.
    #[error(transparent)]
    Endpoints(#[from] tarn_serving::DeployError),
    #[error("starting the tracking server for the trainer: it stopped before it listened")]
    TrackingServer,
    /// A step of the quickstart did not do what it shows.
    #[error("{0}")]
    Quickstart(String),
}
