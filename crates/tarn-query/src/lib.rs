//! SQL over the catalog, on DataFusion.
//!
//! Every catalogued table is addressed `domain.layer.table`: each domain is a DataFusion
//! catalog, each layer a schema. Delta tables are read at their latest version, or at an
//! older one with `domain.layer.table@vN`; CSV, JSON and Parquet folders are read in place
//! with their partitions and null markers. Queries are read-only, and errors point at the
//! place in the query.

#![cfg_attr(not(test), deny(unused_crate_dependencies))]

mod cache;
mod cached;
mod cancel;
mod engine;
mod error;
mod guard;
mod output;
mod plans;
mod pool;
mod schema;
mod small_groups;
mod snapshot;

pub use cache::QueryCache;
pub use engine::{BatchStream, Engine, MayRead, QueryOptions, QueryResult, Visible};
pub use error::QueryError;
pub use guard::QueryLimits;
pub use output::{write_result, OutputFormat, ResultWriter, TABLE_PREVIEW_ROWS};
pub use plans::{PLANS, PLAN_TEXT};
