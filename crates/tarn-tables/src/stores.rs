//! The object store a lake's Delta tables live on. Local folders need none; for
//! `s3://bucket/...` the lake builds its store from `tarn.yml` and hands it, as [`Stores`], to
//! every table it opens or writes and to every query engine it builds: two lakes on one bucket
//! (other credentials, other endpoints) never share a store. Commits use delta-rs's default log
//! store: a commit file is created with an atomic create-if-absent put, so two writers never
//! both win the same version.

use crate::TablesError;
use deltalake::logstore::object_store::ObjectStore;
use deltalake::logstore::{
    default_logstore, logstore_factories, LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTableBuilder};
use std::sync::Arc;
use url::Url;

/// Where a lake's tables are stored: local folders only, or a bucket with its store.
#[derive(Clone, Default)]
pub struct Stores {
    /// `s3://bucket` and the store rooted at that bucket.
    bucket: Option<(Url, Arc<dyn ObjectStore>)>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.bucket {
            Some((url, _)) => write!(f, "Stores({url})"),
            None => f.write_str("Stores(local)"),
        }
    }
}

impl Stores {
    /// Tables in local folders (`file://` URLs) only.
    pub fn local() -> Self {
        Self::default()
    }

    /// Tables at `bucket_url` (`s3://bucket`) read and written through `store`, rooted at the
    /// bucket.
    pub fn bucket(bucket_url: &str, store: Arc<dyn ObjectStore>) -> Result<Self, TablesError> {
        let url = Url::parse(bucket_url)
            .map_err(|e| TablesError::Location(format!("{bucket_url}: {e}")))?;
        let scheme = Url::parse(&format!("{}://", url.scheme()))
            .map_err(|e| TablesError::Location(format!("{bucket_url}: {e}")))?;
        // delta-rs finds the log store (how commits are made) by scheme; the object store
        // itself is given to each table, never looked up.
        if logstore_factories().get(&scheme).is_none() {
            logstore_factories().insert(scheme, Arc::new(DefaultLogStore));
        }
        let root = Url::parse(&key(&url))
            .map_err(|e| TablesError::Location(format!("{bucket_url}: {e}")))?;
        Ok(Stores {
            bucket: Some((root, store)),
        })
    }

    /// The bucket's URL and store, when tables live on one (for a query engine's runtime).
    pub fn bucket_store(&self) -> Option<(&Url, &Arc<dyn ObjectStore>)> {
        self.bucket.as_ref().map(|(u, s)| (u, s))
    }

    /// The store behind `url`, when it is on this lake's bucket.
    pub fn store_for(&self, url: &Url) -> Option<Arc<dyn ObjectStore>> {
        let (root, store) = self.bucket.as_ref()?;
        (key(url) == key(root)).then(|| store.clone())
    }

    /// A table builder for `url` that reads and writes through this lake's store.
    pub(crate) fn builder(&self, url: Url) -> DeltaResult<DeltaTableBuilder> {
        let b = DeltaTableBuilder::from_url(url.clone())?;
        Ok(match self.store_for(&url) {
            Some(store) => b.with_storage_backend(store, url),
            None => b,
        })
    }
}

fn key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""))
}

/// delta-rs's default log store (atomic create-if-absent commits) for a bucket scheme.
struct DefaultLogStore;

impl LogStoreFactory for DefaultLogStore {
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
