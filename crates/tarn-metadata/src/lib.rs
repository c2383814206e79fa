//! The metadata store: one transactional store for events, the catalog, crawls and loads.
//!
//! It runs on sqlx's `Any` driver so the same queries serve SQLite (the embedded default,
//! in WAL mode) and Postgres (the shared deployment). Queries stay portable: `$N`
//! placeholders, `ON CONFLICT`, TEXT keys and timestamps, JSON kept as text.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tarn_metadata::MetadataError> {
//! let store = tarn_metadata::Store::open("sqlite:///tmp/lake/.tarn/dev.db").await?;
//! let fresh = store
//!     .record_event(&tarn_metadata::NewEvent::object_created("flights/raw", "a.csv", "etag1", 10))
//!     .await?;
//! assert!(fresh);
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod catalog;
mod columns;
mod deliveries;
mod endpoints;
mod error;
mod events;
mod executions;
mod kv;
pub mod logged_models;
pub mod registry;
pub mod run_search;
mod store;
pub mod testing;
mod tokens;
pub mod traces;
pub mod tracking;
pub mod validation;
mod watch;

pub use catalog::{
    Column, CrawlRecord, CrawledObject, DatabaseRecord, LoadRecord, Partition, TableChange,
    TableDraft, TableRecord, TableVersion,
};
pub use deliveries::DeliveryRecord;
pub use endpoints::EndpointRecord;
pub use error::{Existing, Inactive, Kind, MetadataError, Missing};
pub use events::{Event, NewEvent, OBJECT_CREATED};
pub use executions::{execution_id, status, ExecutionRecord, NewExecution, StepAttempt};
pub use store::Store;
pub use tokens::{TokenRecord, TOKEN_PREFIX};

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
