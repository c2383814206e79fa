//! The object store behind a lake and the zones in it.

use crate::StorageError;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use std::sync::Arc;
use tarn_config::LakeConfig;

/// The prefix inside a raw zone where replaced objects are kept.
pub const VERSIONS_PREFIX: &str = "_versions";

/// The object store of one lake stage, with the zones it declares.
#[derive(Clone, Debug)]
pub struct Zones {
    url: String,
    store: Arc<dyn ObjectStore>,
    bucket: Option<(String, Arc<dyn ObjectStore>)>,
    uploads: Option<(crate::uploads::S3Access, String)>,
    domains: Vec<String>,
    layers: Vec<String>,
    config: Arc<LakeConfig>,
}

/// One domain x layer.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub struct Zone {
    pub domain: String,
    pub layer: String,
}

impl Zone {
    /// `domain/layer`, as events and the CLI name the zone.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.layer)
    }

    /// The Glue-style database name of the zone: `domain_layer`.
    pub fn database(&self) -> String {
        format!("{}_{}", self.domain, self.layer)
    }

    /// The object path of `key` in this zone.
    pub fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}/{}/{key}", self.domain, self.layer))
    }

    /// The object path of the zone itself.
    pub fn root(&self) -> ObjectPath {
        ObjectPath::from(format!("{}/{}", self.domain, self.layer))
    }

    /// The key of `path` relative to this zone, as it was landed: object paths keep
    /// characters such as `é` or `%` percent-encoded, keys do not ([`Zone::path`] encodes
    /// them again).
    pub fn key_of(&self, path: &ObjectPath) -> Option<String> {
        let s = path.as_ref();
        s.strip_prefix(&format!("{}/{}/", self.domain, self.layer))
            .map(|k| {
                percent_encoding::percent_decode_str(k)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    }
}

/// An object in a zone.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: String,
    /// The store's own change tag (not a content hash; see `Landed::etag` for that).
    pub e_tag: Option<String>,
}

impl Zones {
    /// Opens the object store of the configured stage.
    pub fn open(config: &LakeConfig) -> Result<Self, StorageError> {
        let url = config.storage.clone();
        let opened = crate::store::open(&url, &config.s3)?;
        Ok(Zones {
            url,
            store: opened.rooted,
            bucket: opened.bucket,
            uploads: opened.uploads,
            domains: config.domains.iter().map(|d| d.name.clone()).collect(),
            layers: config.layers.clone(),
            config: Arc::new(config.clone()),
        })
    }

    /// The storage URL of this stage (zones are `URL/domain/layer`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of a location inside the store (for Delta tables and catalog locations).
    pub fn url_of(&self, path: &ObjectPath) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), path.as_ref())
    }

    /// For S3 storage: the bucket's URL (`s3://bucket`) and a store rooted at it, which Delta
    /// and the SQL engine need to resolve table locations.
    pub fn bucket_store(&self) -> Option<(String, Arc<dyn ObjectStore>)> {
        self.bucket.clone()
    }

    /// Multipart uploads S3 holds open under this stage, started longer than `stale` ago (a
    /// writer that stopped mid-file); none on other stores.
    pub async fn stale_uploads(
        &self,
        stale: std::time::Duration,
    ) -> Result<Vec<crate::OpenUpload>, StorageError> {
        let Some((access, prefix)) = &self.uploads else {
            return Ok(Vec::new());
        };
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.trim_end_matches('/'))
        };
        let before = chrono::Utc::now() - chrono::Duration::from_std(stale).unwrap_or_default();
        Ok(access
            .list(&prefix)
            .await?
            .into_iter()
            .filter(|u| u.initiated.is_none_or(|t| t <= before))
            .collect())
    }

    /// Aborts an upload [`Zones::stale_uploads`] found.
    pub async fn abort_upload(&self, upload: &crate::OpenUpload) -> Result<(), StorageError> {
        match &self.uploads {
            Some((access, _)) => access.abort(upload).await,
            None => Ok(()),
        }
    }

    /// The underlying object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// A declared zone, or an error with a did-you-mean.
    pub fn zone(&self, domain: &str, layer: &str) -> Result<Zone, StorageError> {
        self.config
            .check_zone(domain, layer)
            .map_err(StorageError::UnknownZone)?;
        Ok(Zone {
            domain: domain.into(),
            layer: layer.into(),
        })
    }

    /// Every declared zone, domain by domain in layer order.
    pub fn all(&self) -> Vec<Zone> {
        self.domains
            .iter()
            .flat_map(|d| {
                self.layers.iter().map(move |l| Zone {
                    domain: d.clone(),
                    layer: l.clone(),
                })
            })
            .collect()
    }

    /// Parses `DOMAIN/LAYER[/KEY]` into a zone and the (possibly empty) rest.
    pub fn parse_target(&self, target: &str) -> Result<(Zone, String), StorageError> {
        let mut parts = target.splitn(3, '/');
        let domain = parts.next().unwrap_or("");
        let layer = parts.next().unwrap_or("");
        if domain.is_empty() || layer.is_empty() {
            return Err(StorageError::UnknownZone(format!(
                "`{target}` does not name a zone; write DOMAIN/LAYER[/KEY], e.g. flights/raw/2013/flights.csv"
            )));
        }
        let zone = self.zone(domain, layer)?;
        Ok((zone, parts.next().unwrap_or("").to_string()))
    }

    /// Objects in a zone under `prefix`, by key; tarn's own `_versions/` are left out.
    pub async fn list(&self, zone: &Zone, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let root = zone.root();
        let mut out: Vec<ObjectInfo> = self
            .store
            .list(Some(&root))
            .map_ok(|m| (zone.key_of(&m.location), m))
            .try_filter_map(|(key, m)| async move {
                Ok(key
                    .filter(|k| !k.starts_with(&format!("{VERSIONS_PREFIX}/")))
                    .map(|key| ObjectInfo {
                        key,
                        size: m.size,
                        last_modified: m.last_modified.to_rfc3339(),
                        e_tag: m.e_tag,
                    }))
            })
            .try_collect()
            .await?;
        out.retain(|o| o.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Checks `key` as [`crate::validate_key`] does, within the lake's `limits:`.
    pub fn check_key(&self, key: &str) -> Result<(), StorageError> {
        crate::validate_key_within(
            key,
            self.config.limits.key_length,
            self.config.limits.key_segment,
        )
    }

    /// The bytes of an object.
    pub async fn read(&self, zone: &Zone, key: &str) -> Result<bytes::Bytes, StorageError> {
        // Kept raw versions may be read back, never written.
        self.check_key(
            key.strip_prefix(VERSIONS_PREFIX)
                .map(|k| k.trim_start_matches('/'))
                .unwrap_or(key),
        )?;
        match self.store.get(&zone.path(key)).await {
            Ok(r) => Ok(r.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => {
                Err(StorageError::NotFound(format!("{}/{key}", zone.name())))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaced versions of a raw object, oldest first.
    pub async fn versions(&self, zone: &Zone, key: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let prefix = zone.path(&format!("{VERSIONS_PREFIX}/{key}"));
        let mut out: Vec<ObjectInfo> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| ObjectInfo {
                key: zone.key_of(&m.location).unwrap_or_default(),
                size: m.size,
                last_modified: m.last_modified.to_rfc3339(),
                e_tag: m.e_tag,
            })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Zone;

    #[test]
    fn keys_with_accents_and_percent_signs_round_trip() {
        let zone = Zone {
            domain: "flights".into(),
            layer: "raw".into(),
        };
        for key in ["été/100%.csv", "a b/c.csv", "Ú9ç.json", "plain/key.csv"] {
            assert_eq!(zone.key_of(&zone.path(key)).as_deref(), Some(key));
        }
    }
}
