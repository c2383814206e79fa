//! One interface to a lake, wherever it is: [`Operations`] is what a CLI command does
//! (land, list, crawl, load, query, repair, executions, the registry), implemented by a lake
//! folder opened here ([`tarn_lake::Lake`]) and by [`Client`], the HTTP client of a running
//! `tarn serve`. The `tarn` command picks one from `--server` and calls the same operation
//! either way.

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod error;
mod http;
mod ops;

pub use error::ClientError;
pub use http::Client;
pub use ops::{Operations, Progress};
