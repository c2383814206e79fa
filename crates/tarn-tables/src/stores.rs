//! The object stores Delta tables live on, by bucket URL. Local folders need nothing; for
//! `s3://bucket/...` the lake registers the store it built from `tarn.yml` here, and delta-rs
//! (through its store and log-store factories) and the SQL engine resolve table URLs with it.
//! Commits use delta-rs's default log store: a commit file is created with an atomic
//! create-if-absent put, so two writers never both win the same version.

use deltalake::logstore::object_store::path::Path as StorePath;
use deltalake::logstore::object_store::ObjectStore;
use deltalake::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory,
    ObjectStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTableError};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use url::Url;

type Registry = RwLock<HashMap<String, Arc<dyn ObjectStore>>>;

fn registry() -> &'static Registry {
    static STORES: OnceLock<Registry> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// Makes `store` (rooted at the bucket) the one behind `bucket_url` (`s3://bucket`).
pub fn register_store(bucket_url: &str, store: Arc<dyn ObjectStore>) -> Result<(), String> {
    let url = Url::parse(bucket_url).map_err(|e| format!("{bucket_url}: {e}"))?;
    let scheme = Url::parse(&format!("{}://", url.scheme())).map_err(|e| e.to_string())?;
    registry()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key(&url), store);
    object_store_factories().insert(scheme.clone(), Arc::new(Registered));
    logstore_factories().insert(scheme, Arc::new(Registered));
    Ok(())
}

/// Every registered store, by bucket URL (for the SQL engine's runtime).
pub fn registered_stores() -> Vec<(Url, Arc<dyn ObjectStore>)> {
    registry()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|(k, s)| Url::parse(k).ok().map(|u| (u, s.clone())))
        .collect()
}

fn key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""))
}

struct Registered;

impl ObjectStoreFactory for Registered {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, StorePath)> {
        let store = registry()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key(url))
            .cloned()
            .ok_or_else(|| DeltaTableError::InvalidTableLocation(url.to_string()))?;
        Ok((store, StorePath::from(url.path())))
    }
}

impl LogStoreFactory for Registered {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}
