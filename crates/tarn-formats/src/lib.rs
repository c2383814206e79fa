//! What a file is, from its bytes: CSV (header and delimiter detection), JSON lines or
//! Parquet, each possibly gzip-compressed, with the columns and catalog types a sample of it
//! suggests, and the null markers (`NA`, `NULL`, ...) that never widen a type. The crawler
//! catalogs files with it, and loads read them with it.
//!
//! ```
//! let c = tarn_formats::classify("f.csv", b"year,dep_delay\n2013,NA\n2013,-4\n").unwrap();
//! assert_eq!(c.columns[1].data_type, "bigint");
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod classify;

pub use classify::{
    arrow_type_name, classify, sanitize_column, widen_type, Classified, Kind, NULL_MARKERS,
    SAMPLE_BYTES,
};

/// A column a file holds: its name, a catalog type (`bigint`, `double`, `string`, `boolean`,
/// `date`, `timestamp`, ...) and whether it may hold nulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

impl Field {
    /// A nullable column.
    pub fn new(name: impl Into<String>, data_type: impl Into<String>) -> Self {
        Field {
            name: name.into(),
            data_type: data_type.into(),
            nullable: true,
        }
    }
}

/// Why a file is not one tarn reads.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The object cannot be classified; `reason` says what it holds instead.
    #[error("{key}: {reason}")]
    Unreadable { key: String, reason: String },
}

impl FormatError {
    /// Why the file was not read, without its name.
    pub fn reason(&self) -> &str {
        match self {
            FormatError::Unreadable { reason, .. } => reason,
        }
    }
}
