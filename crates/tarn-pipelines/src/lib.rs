//! Pipelines: events become executions, executions run their steps.
//!
//! A pipeline is a folder as the datalake boilerplate seed lays it out
//! (`pipelines/<name>/config.yml`, `steps/<module>/src/index.py`, `trigger/`, `catch/`),
//! parsed by `tarn-config`. The [`Engine`] matches recorded events against triggers, creates
//! one execution per (pipeline, event), and runs it as a state machine: `lambda` and
//! `glue` steps in Python virtualenvs, `spark` through `spark-submit`, `sql` on the lake,
//! `command`s, and `choice`s, each attempt recorded in the metadata store.
//!
//! ```no_run
//! # async fn demo(lake: tarn_lake::Lake) -> Result<(), tarn_pipelines::PipelineError> {
//! let engine = tarn_pipelines::Engine::new(lake)?;
//! let started = engine.dispatch().await?;
//! while engine.work_once(None).await?.is_some() {}
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod engine;
mod error;
mod glue;
mod ml;
mod step;
mod trigger;

pub use engine::{Engine, Progress, LEASE};
pub use error::PipelineError;
pub use ml::{MlFuture, MlStepContext, MlSteps, TransformStep};
pub use tarn_process::{LineSink, Python, PythonEnv};
pub use trigger::{
    aws_shape, check_contract, matches, summary, CUSTOM_EVENT, MANUAL_EVENT, SCHEDULE_EVENT,
};
