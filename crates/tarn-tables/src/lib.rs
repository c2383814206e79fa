//! Delta tables and data contracts.
//!
//! Trusted and service tables are Delta tables written with delta-rs. A load reads a file
//! ([`Source`]), conforms it to the table's [`Contract`] (or to the table's schema, or to types
//! inferred from the data), writes rows that break the contract to `TABLE_rejected` with the
//! column and the reason, and commits the rest in one atomic Delta commit.
//!
//! ```
//! let src = tarn_tables::Source::read("t.csv", b"a,b\n1,x\nNA,y\n", None).unwrap();
//! let c = tarn_tables::conform(&src, None, None, "load-1").unwrap();
//! assert_eq!(c.schema.field(0).data_type(), &deltalake::arrow::datatypes::DataType::Int64);
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod conform;
mod contract;
mod delta;
mod error;
mod snapshot;
mod source;
mod stores;

pub use conform::{conform, conform_against, reject_schema, Conformed, REJECT_COLUMNS};
pub use contract::{
    arrow_type, load_all as load_contracts, load_for as load_contract, ColumnRule, Contract,
};
pub use delta::{
    append_once, commit_txn, count_rows, data_files, delete_where, history, load, loads_since,
    open, retry_conflicts, roll_back, txn_version, update, write_batches, write_stream,
    BatchSource, Committed, CommittedLoad, DataFile, HistoryEntry, LoadMode, LoadOutcome,
    LoadRequest, StreamWrite,
};
pub use deltalake::DeltaTable;
pub use error::TablesError;
pub use snapshot::{committed_after, snapshot, Snapshot, SnapshotFile};
pub use source::{Format, Malformed, Source, LINE};
pub use stores::Stores;
