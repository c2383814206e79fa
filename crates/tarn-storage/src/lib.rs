//! Zones on an object store, and landing files into them.
//!
//! Every domain x layer of a lake is a zone: the prefix `DOMAIN/LAYER/` under the lake's
//! storage URL (a local folder by default, or `s3://bucket/prefix`). Landing streams a file into a zone, refuses keys
//! that would escape it, keeps the raw layer append-only, and records one `object.created`
//! event per (zone, key, content hash) in the metadata store.
//!
//! ```no_run
//! # async fn demo(cfg: tarn_config::LakeConfig, meta: tarn_metadata::Store) -> Result<(), tarn_storage::StorageError> {
//! let zones = tarn_storage::Zones::open(&cfg)?;
//! let zone = zones.zone("flights", "raw")?;
//! let landed = zones
//!     .land_file(&meta, std::path::Path::new("flights.csv"), &zone, "2013/flights.csv", &Default::default(), &|_| {})
//!     .await?;
//! println!("{} {}", landed.key, landed.etag);
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod error;
mod keys;
mod land;
mod store;
mod uploads;
mod watch;
mod zones;

pub use error::StorageError;
pub use keys::{validate_key, validate_key_within, MAX_KEY_BYTES, MAX_SEGMENT_BYTES};
pub use land::{land_plan, LandOptions, LandOutcome, Landed};
pub use uploads::OpenUpload;
pub use watch::{notice, unnoticed, SETTLE};
pub use zones::{ObjectInfo, Zone, Zones, VERSIONS_PREFIX};
