//! A lake put together to run: where the parts that do not know of each other meet.
//!
//! [`engine`] builds the pipeline engine with its `train` and `transform` steps
//! ([`MlSteps`], running `tarn-ml` jobs that log to a tracking server); [`serve`] runs
//! `tarn serve`: the HTTP API, the model endpoints, the engine beside them and the start-up
//! repairs; [`quickstart`] builds the example lake end to end. The `tarn` binary parses its
//! arguments, calls these, and prints.

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod error;
mod ml;
mod monitors;
mod quickstart;
mod serve;
mod taps;

pub use error::NodeError;
pub use ml::{engine, loopback_server, MlSteps};
pub use monitors::{start_monitors, MONITOR_SCHEDULED};
pub use quickstart::{quickstart, Quickstart, QuickstartMl, QuickstartPipeline};
pub use serve::{serve, start_engine, work, Say, ServeOptions};
