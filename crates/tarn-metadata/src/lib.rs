//! The metadata store: one transactional store for events, the catalog, crawls and loads,
//! executions, tokens, endpoints and MLflow's tracking and registry.
//!
//! Each aggregate has a handle of its own, reached from the [`Store`]: `store.catalog()`,
//! `store.events().list()`, `store.executions().list()`, `store.tokens().list()`, `store.deliveries().list()`,
//! `store.endpoints().list()`, `store.tracking()`, `store.registry()`, `store.logged_models()`,
//! `store.traces()`. A handle borrows the store; its methods are that aggregate's reads and
//! writes, and its rows derive `sqlx::FromRow`.
//!
//! It runs on sqlx's `Any` driver so the same queries serve SQLite (the embedded default,
//! in WAL mode) and Postgres (the shared deployment). Queries stay portable: `$N`
//! placeholders, `ON CONFLICT`, TEXT keys and timestamps, JSON kept as text.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tarn_metadata::MetadataError> {
//! let store = tarn_metadata::Store::open("sqlite:///tmp/lake/.tarn/dev.db").await?;
//! let fresh = store
//!     .events()
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
mod group;
mod kv;
pub mod logged_models;
pub mod registry;
mod roles;
pub mod run_search;
pub mod sealed;
mod store;
pub mod taps;
pub mod testing;
mod tokens;
pub mod traces;
pub mod tracking;
pub mod validation;
mod watch;

pub use catalog::{
    stamp_of, Catalog, Column, CrawlRecord, CrawledObject, DatabaseRecord, LoadRecord, Partition,
    TableChange, TableDraft, TableRecord, TableVersion,
};
pub use deliveries::{Deliveries, DeliveryRecord};
pub use endpoints::{EndpointRecord, Endpoints};
pub use error::{Existing, Inactive, Kind, MetadataError, Missing};
pub use events::{Event, Events, NewEvent, OBJECT_CREATED};
pub use executions::{
    execution_id, status, ExecutionRecord, Executions, NewExecution, StepAttempt,
};
pub use logged_models::LoggedModels;
pub use registry::Registry;
pub use roles::{this_host, this_node, RoleHolder, Roles, COORDINATOR};
pub use store::Store;
pub use taps::{SealedSecret, TapState, Taps};
pub use tokens::{TokenRecord, Tokens, TOKEN_PREFIX};
pub use traces::Traces;
pub use tracking::Tracking;

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
