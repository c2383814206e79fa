//! tarn-monitoring: monitors over a model's serving data, the loop's watch step.
//!
//! - [`profile`]: a column's distinct values and their counts, the summary every figure is
//!   computed from (kept for a baseline, built per window in bounded memory).
//! - [`drift`]: drift per field by Evidently 0.7's methods and defaults.
//! - [`embedding`]: drift of tensor fields (embeddings), the distance between mean embeddings.
//! - [`ks`] and [`special`]: the distributions the tests need, computed as SciPy computes them.
//! - [`performance`]: realised metrics once actuals arrive, and CBPE estimates before.
//! - [`run`]: a monitor run over the lake: the serving rows cut into windows, then the checks,
//!   the results table and the alerts; beside it [`serving`] (where the rows come from),
//!   [`columns`] (a batch read as the fields' types say, a side's profiles), [`baseline`],
//!   [`labels`] (actuals joined by id), [`evaluate`] (the checks of a window) and [`alerts`].
//! - [`results`]: the results table's rows.
//! - [`history`]: a monitor found by name, its past runs and their figures read back.
//! - [`summary`]: a monitor as people and programs read it.

mod alerts;
mod baseline;
mod columns;
pub mod drift;
pub mod embedding;
pub mod error;
mod evaluate;
pub mod history;
pub mod ks;
mod labels;
pub mod performance;
pub mod profile;
pub mod results;
pub mod run;
mod serving;
pub mod special;
pub mod summary;

pub use baseline::{kept_baseline, KeptProfile};
pub use drift::{auto_method, drift, Drift, Kind, Method};
pub use embedding::{embedding_drift, Embedding};
pub use error::MonitorError;
pub use history::{figures, find, runs, summaries, window, Figure, RunSummary, MAX_RUNS};
pub use profile::{Profile, Value};
pub use results::{CheckResult, Status};
pub use run::{run, RunOptions, RunReport, WindowReport, ALERT, ALERT_SOURCE, BREACH, RECOVERED};
pub use summary::{summary, FieldSummary, MonitorSummary};
