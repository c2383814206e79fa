//! The crawler: what a Glue crawler does, over tarn's zones.
//!
//! It classifies each object (CSV with header and delimiter detection, JSON lines, Parquet,
//! Delta logs, gzip variants), groups the files of a folder into one table, turns
//! `key=value` folders into partition keys, merges schemas (new columns added, types widened,
//! each change a new catalog version), reads only new or changed objects on later runs, and
//! reports every file it skipped with the reason.
//!
//! ```
//! let c = tarn_catalog::classify("f.csv", b"year,dep_delay\n2013,NA\n2013,-4\n").unwrap();
//! assert_eq!(c.columns[1].data_type, "bigint");
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod crawler;
mod delta;
mod error;

pub use crawler::{crawl, CrawlReport, SkippedFile, TableOutcome};
pub use delta::catalog_type as delta_catalog_type;
pub use error::CatalogError;
pub use tarn_formats::{arrow_type_name, classify, widen_type, Classified, NULL_MARKERS};
