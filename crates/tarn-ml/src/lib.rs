//! Machine learning on the lake: training jobs from `models/<name>/train.yml` (the SageMaker
//! training contract without containers, or tarn's built-in trainers), hyperparameter tuning,
//! the deploy gate, and registration of passing models as versions pending approval.
//!
//! ```no_run
//! # async fn demo(lake: tarn_lake::Lake) -> Result<(), tarn_ml::MlError> {
//! let spec = tarn_config::load_train_spec(&lake.config.root.join("models/delay"))?;
//! let opts = tarn_ml::TrainOptions::new(&lake, "http://127.0.0.1:8080", "me");
//! let report = tarn_ml::train(&lake, &spec, &opts).await?;
//! println!("{} {:?}", report.status, report.registered);
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

pub mod builtin;
pub mod channels;
mod error;
mod job;
mod linalg;
mod train;
pub mod transform;
pub mod tuning;

pub use error::MlError;
pub use job::JobOutcome;
pub use train::{code_hash, train, GateResult, Registered, TrainReport};
pub use transform::{transform, TransformArgs, TransformReport};

use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_process::{LineSink, Python};

/// Called as each job of a training ends.
pub type JobProgress = Arc<dyn Fn(&JobOutcome) + Send + Sync>;

/// How a training runs.
#[derive(Clone)]
pub struct TrainOptions {
    /// What the trainer's `mlflow` client talks to (`MLFLOW_TRACKING_URI`).
    pub tracking_uri: String,
    /// `MLFLOW_TRACKING_TOKEN` for the trainer, when the server wants one.
    pub tracking_token: Option<String>,
    /// Who trains (recorded on runs and versions).
    pub user: String,
    /// Where virtualenvs are built.
    pub python: Python,
    /// Receives every line the trainer writes.
    pub sink: Option<LineSink>,
    /// Called as each job ends.
    pub progress: Option<JobProgress>,
    /// Tags added to every run (a pipeline step adds its execution).
    pub tags: BTreeMap<String, String>,
}

impl TrainOptions {
    pub fn new(lake: &tarn_lake::Lake, tracking_uri: &str, user: &str) -> TrainOptions {
        TrainOptions {
            tracking_uri: tracking_uri.to_string(),
            tracking_token: None,
            user: user.to_string(),
            python: Python::new(&lake.config.root),
            sink: None,
            progress: None,
            tags: BTreeMap::new(),
        }
    }
}
