//! One lake, opened: config, metadata store, zones, contracts, and the operations the CLI and
//! the API share (land, list, crawl, catalog, load, SQL, quickstart).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tarn_lake::LakeError> {
//! let lake = tarn_lake::Lake::open(std::path::Path::new("."), &Default::default()).await?;
//! let report = lake.crawl(Some("flights")).await?;
//! println!("{} tables created", report.tables.len());
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

mod address;
mod artifacts;
mod catalog;
mod deliveries;
mod doctor;
mod error;
mod executions;
mod external;
mod files;
mod load;
mod models;
mod quickstart;
mod spans;
mod sql;
mod streams;
pub mod testing;

pub use address::TableAddress;
pub use artifacts::{ArtifactBody, ArtifactEntry, ARTIFACT_ROOT};
pub use catalog::{TableDetail, TableSummary};
pub use doctor::{DoctorReport, Finding, STALE_AFTER};
pub use error::LakeError;
pub use executions::{ExecutionDetail, ExecutionPage, CUSTOM_EVENT};
pub use external::{partition_spec, EXTERNAL};
pub use files::{TableFile, TableFiles};
pub use load::{LoadArgs, LoadReport};
pub use models::ResolvedModel;
pub use quickstart::{quickstart, QuickstartPlace, QuickstartReport};
pub use sql::SqlInto;

pub use spans::{spans_schema, SPANS_TABLE};
pub use tarn_catalog::CrawlReport;
pub use tarn_config::{LakeConfig, Limits, Selection};
pub use tarn_metadata::{
    execution_id, status, Column, CrawlRecord, DeliveryRecord, EndpointRecord, Event,
    ExecutionRecord, Existing, Inactive, Kind, MetadataError, Missing, NewEvent, NewExecution,
    RoleHolder, StepAttempt, Store, TokenRecord, COORDINATOR, OBJECT_CREATED,
};
pub use tarn_metadata::{
    logged_models, registry, run_search, sealed, taps, traces, tracking, validation,
};
pub use tarn_metadata::{this_host, this_node};
pub use tarn_metadata::{
    DatabaseRecord, Partition, TableChange, TableDraft, TableRecord, TableVersion,
};
pub use tarn_query::{
    write_result, BatchStream, MayRead, OutputFormat, QueryError, QueryOptions, QueryResult,
    ResultWriter,
};
pub use tarn_storage::{
    land_plan, validate_key, LandOptions, LandOutcome, Landed, ObjectInfo, StorageError, Zone,
    Zones,
};
pub use tarn_tables::{
    BatchSource, Committed, Contract, HistoryEntry, LoadMode, StreamWrite, TablesError,
};

use std::path::Path;
use std::sync::Arc;

/// An engine and the catalog stamp it was built for.
type StampedEngine = (String, Arc<tarn_query::Engine>);

/// An opened lake stage.
#[derive(Clone)]
pub struct Lake {
    pub config: Arc<LakeConfig>,
    /// The metadata store; other crates reach its aggregates through the handles below
    /// ([`Lake::tracking`], [`Lake::registry`], ...), never the store itself.
    pub(crate) meta: Store,
    pub zones: Zones,
    /// The store Delta tables live on (this lake's own: never shared with another lake).
    pub(crate) stores: tarn_tables::Stores,
    /// The SQL engine of the current catalog, rebuilt when the catalog changes.
    engine: Arc<tokio::sync::Mutex<Option<StampedEngine>>>,
    query_cache: Arc<tarn_query::QueryCache>,
    /// What one query may be and use, and the query slots every engine of this lake shares.
    query_limits: Arc<tarn_query::QueryLimits>,
}

/// The metadata store's aggregates this lake lets other crates read and write directly: each
/// is a handle of [`tarn_metadata`] on this lake's store. What must stay in step with the
/// lake's files (landing, loads, table writes) is done by the lake's own operations instead.
impl Lake {
    /// The catalog's records: databases, tables, versions, partitions, crawls, loads.
    pub fn catalog(&self) -> tarn_metadata::Catalog<'_> {
        self.meta.catalog()
    }

    /// Recorded events (and the watcher's cursor).
    pub fn events(&self) -> tarn_metadata::Events<'_> {
        self.meta.events()
    }

    /// Pipeline executions, their leases and step attempts.
    pub fn executions(&self) -> tarn_metadata::Executions<'_> {
        self.meta.executions()
    }

    /// Roles one node of a deployment holds at a time (the coordinator).
    pub fn roles(&self) -> tarn_metadata::Roles<'_> {
        self.meta.roles()
    }

    /// API tokens.
    pub fn tokens(&self) -> tarn_metadata::Tokens<'_> {
        self.meta.tokens()
    }

    /// Deliveries of events to topics' subscribers.
    pub fn deliveries(&self) -> tarn_metadata::Deliveries<'_> {
        self.meta.deliveries()
    }

    /// Serving endpoints' records.
    pub fn endpoints(&self) -> tarn_metadata::Endpoints<'_> {
        self.meta.endpoints()
    }

    /// MLflow tracking: experiments and runs.
    pub fn tracking(&self) -> tarn_metadata::Tracking<'_> {
        self.meta.tracking()
    }

    /// The model registry.
    pub fn registry(&self) -> tarn_metadata::Registry<'_> {
        self.meta.registry()
    }

    /// MLflow 3 logged models.
    pub fn logged_models(&self) -> tarn_metadata::LoggedModels<'_> {
        self.meta.logged_models()
    }

    /// MLflow traces.
    pub fn traces(&self) -> tarn_metadata::Traces<'_> {
        self.meta.traces()
    }

    /// Singer taps' saved state and the secret store.
    pub fn taps(&self) -> tarn_metadata::Taps<'_> {
        self.meta.taps()
    }

    /// Whether the metadata store answers (what `/health` reports).
    pub async fn metadata_answers(&self) -> bool {
        self.meta.ping().await.is_ok()
    }
}

impl Lake {
    /// Opens the lake whose `tarn.yml` is in `dir` (or in a parent of it).
    pub async fn open(dir: &Path, selection: &Selection) -> Result<Lake, LakeError> {
        let found = find_config(dir);
        let config = LakeConfig::load(&found, selection)?;
        Self::with_config(config).await
    }

    /// Opens a lake from a resolved config.
    pub async fn with_config(config: LakeConfig) -> Result<Lake, LakeError> {
        let meta = Store::open(&config.metadata).await?;
        let zones = Zones::open(&config)?;
        let stores = match zones.bucket_store() {
            Some((url, store)) => tarn_tables::Stores::bucket(&url, store).map_err(|e| {
                LakeError::Storage(StorageError::BadUrl {
                    url: config.storage.clone(),
                    reason: e.to_string(),
                })
            })?,
            None => tarn_tables::Stores::local(),
        };
        // Every zone is a database in the catalog, even before anything is crawled.
        for z in zones.all() {
            meta.catalog()
                .ensure_database(&z.domain, &z.layer, &zones.url_of(&z.root()))
                .await?;
        }
        let l = &config.limits;
        let query_limits = Arc::new(tarn_query::QueryLimits::new(
            l.sql_length,
            l.sql_depth,
            l.sql_in_list,
            l.query_memory,
            l.query_concurrency,
        ));
        Ok(Lake {
            config: Arc::new(config),
            meta,
            zones,
            stores,
            engine: Arc::default(),
            query_cache: Arc::default(),
            query_limits,
        })
    }

    /// This lake without the row cache of long-lived processes (see [`tarn_query::QueryCache`]):
    /// for a one-shot process whose repeated queries of a table (a probe, then the scan) would
    /// otherwise read the whole table into memory for nothing.
    pub fn without_row_cache(self) -> Self {
        self.with_row_cache(0)
    }

    /// This lake with a row cache of at most `budget` bytes (instead of
    /// `TARN_QUERY_CACHE_MB`); 0 turns it off.
    pub fn with_row_cache(mut self, budget: usize) -> Self {
        self.query_cache = Arc::new(tarn_query::QueryCache::with_budget(budget));
        self.engine = Arc::default();
        self
    }

    /// Bytes of decoded rows the row cache holds now.
    pub fn row_cache_bytes(&self) -> usize {
        self.query_cache.cached_bytes()
    }

    /// Lands a file or folder at `DOMAIN/LAYER[/KEY]`.
    pub async fn land(
        &self,
        path: &Path,
        target: &str,
        opts: &LandOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<Landed>, LakeError> {
        let (zone, key) = self.zones.parse_target(target)?;
        Ok(self
            .zones
            .land(&self.meta, path, &zone, &key, opts, progress)
            .await?)
    }

    /// Objects under `DOMAIN/LAYER[/PREFIX]`.
    pub async fn ls(&self, target: &str) -> Result<Vec<ObjectInfo>, LakeError> {
        let (zone, prefix) = self.zones.parse_target(target)?;
        Ok(self.zones.list(&zone, &prefix).await?)
    }

    /// Records an `object.created` event for each object of zone `domain/layer` under
    /// `prefix` that appeared without tarn landing it (copied straight into a `file://` zone,
    /// put into an S3 zone by another tool); answers how many. See [`tarn_storage::notice`].
    pub async fn notice(
        &self,
        domain: &str,
        layer: &str,
        prefix: &str,
    ) -> Result<usize, LakeError> {
        let zone = self.zones.zone(domain, layer)?;
        Ok(tarn_storage::notice(&self.zones, &self.meta, &zone, prefix).await?)
    }

    /// The newest `limit` events (of `kind`), oldest first.
    pub async fn latest_events(
        &self,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Event>, LakeError> {
        Ok(self.meta.events().latest_events(kind, limit).await?)
    }

    /// Recorded events after the one with id `after` (ids order events by time).
    pub async fn events_after(
        &self,
        kind: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Event>, LakeError> {
        Ok(self.meta.events().list(kind, None, after, limit).await?)
    }

    /// Crawls every zone, one domain (`flights`) or one zone (`flights/raw`).
    pub async fn crawl(&self, scope: Option<&str>) -> Result<CrawlReport, LakeError> {
        let zones = match scope {
            None => self.zones.all(),
            Some(s) => {
                let s = s.replace('.', "/");
                match s.split_once('/') {
                    Some((d, l)) => vec![self.zones.zone(d, l)?],
                    None => {
                        self.zones.zone(
                            &s,
                            self.config
                                .layers
                                .first()
                                .map(String::as_str)
                                .unwrap_or("raw"),
                        )?;
                        self.zones
                            .all()
                            .into_iter()
                            .filter(|z| z.domain == s)
                            .collect()
                    }
                }
            }
        };
        let started = chrono::Utc::now().to_rfc3339();
        let report = tarn_catalog::crawl(&self.zones, &self.meta, &zones).await?;
        self.meta
            .catalog()
            .record_crawl(
                scope.unwrap_or("*"),
                &started,
                &serde_json::to_value(&report).unwrap_or_default(),
            )
            .await?;
        Ok(report)
    }
}

/// The folder holding `tarn.yml`: `dir` or its nearest parent that has one.
fn find_config(dir: &Path) -> std::path::PathBuf {
    if dir.is_file() {
        return dir.to_path_buf();
    }
    let start = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut cur = Some(start.as_path());
    while let Some(d) = cur {
        if d.join(tarn_config::CONFIG_FILE).is_file() {
            return d.to_path_buf();
        }
        cur = d.parent();
    }
    dir.to_path_buf()
}
