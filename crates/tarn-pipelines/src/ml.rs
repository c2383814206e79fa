//! `train` and `transform` steps. The ML crate sits above this one, so the binary hands the
//! engine an implementation of [`MlSteps`]; an engine without one fails such steps with a
//! clear error.

use std::future::Future;
use std::pin::Pin;
use tarn_lake::Lake;
use tarn_process::{LineSink, Python};

/// The output of an ML step (the next step's input), or its error (`Type: message`).
pub type MlFuture<'a> =
    Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send + 'a>>;

/// What an ML step runs with.
pub struct MlStepContext<'a> {
    pub lake: &'a Lake,
    pub python: &'a Python,
    /// The server's URL and this execution's token, when `tarn serve` runs the step.
    pub server: Option<(String, String)>,
    pub pipeline: &'a str,
    pub execution_id: &'a str,
    pub step: &'a str,
    pub sink: Option<LineSink>,
}

/// A batch transform step's arguments, the model URI already resolved from the input.
#[derive(Debug, Clone)]
pub struct TransformStep {
    pub model: String,
    pub input: String,
    pub output: String,
    pub id_columns: Vec<String>,
    pub csv: Option<String>,
}

/// Runs training and transform steps.
pub trait MlSteps: Send + Sync {
    /// Trains `models/<model>/train.yml`; answers the training's report.
    fn train<'a>(&'a self, cx: MlStepContext<'a>, model: &'a str) -> MlFuture<'a>;
    /// Scores a batch; answers the transform's report.
    fn transform<'a>(&'a self, cx: MlStepContext<'a>, step: TransformStep) -> MlFuture<'a>;
}
