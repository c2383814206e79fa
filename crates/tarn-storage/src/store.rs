//! From a storage URL to an object store: a local folder (`file://`) or a bucket on S3 or any
//! S3-compatible server (`s3://bucket/prefix`), with endpoint, region and credentials from
//! `tarn.yml` or the usual AWS environment variables.

use crate::StorageError;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use std::sync::Arc;
use tarn_config::S3Settings;

/// The stores behind one storage URL.
pub(crate) struct Opened {
    /// Rooted at the storage URL: zones are `domain/layer/` in it.
    pub rooted: Arc<dyn ObjectStore>,
    /// For S3: the bucket's URL (`s3://bucket`) and a store rooted at the bucket, which Delta
    /// and the SQL engine resolve table URLs against.
    pub bucket: Option<(String, Arc<dyn ObjectStore>)>,
    /// For S3: what listing and aborting open uploads needs, and the stage's prefix.
    pub uploads: Option<(crate::uploads::S3Access, String)>,
}

/// Opens the store at `url`.
pub(crate) fn open(url: &str, s3: &S3Settings) -> Result<Opened, StorageError> {
    if let Some(path) = url.strip_prefix("file://") {
        std::fs::create_dir_all(path).map_err(|e| StorageError::BadUrl {
            url: url.to_string(),
            reason: format!("cannot create the folder: {e}"),
        })?;
        return Ok(Opened {
            rooted: Arc::new(LocalFileSystem::new_with_prefix(path)?),
            bucket: None,
            uploads: None,
        });
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(StorageError::BadUrl {
            url: url.to_string(),
            reason: "use a folder, file:///abs/path or s3://bucket/prefix".into(),
        });
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let builder = s3_builder(bucket, s3);
    let access = crate::uploads::S3Access::from_builder(&builder, bucket);
    let store: Arc<dyn ObjectStore> =
        Arc::new(builder.build().map_err(|e| StorageError::BadUrl {
            url: url.to_string(),
            reason: format!("{e}; set `s3:` in tarn.yml or the AWS_* environment variables"),
        })?);
    let prefix = prefix.trim_matches('/');
    let rooted: Arc<dyn ObjectStore> = if prefix.is_empty() {
        store.clone()
    } else {
        Arc::new(PrefixStore::new(store.clone(), prefix))
    };
    Ok(Opened {
        rooted,
        bucket: Some((format!("s3://{bucket}"), store)),
        uploads: access.map(|a| (a, prefix.to_string())),
    })
}

/// An S3 client for `bucket`: the environment first, then what `tarn.yml` says.
/// Delta commits need atomic create-if-absent, which S3 (and S3-compatible stores) give with
/// `If-None-Match: *`; no DynamoDB lock is involved.
fn s3_builder(bucket: &str, s3: &S3Settings) -> AmazonS3Builder {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    if let Some(e) = &s3.endpoint {
        b = b.with_endpoint(e);
    }
    let endpoint = s3
        .endpoint
        .clone()
        .or_else(|| b.get_config_value(&AmazonS3ConfigKey::Endpoint));
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        b = b.with_allow_http(true);
    }
    if let Some(r) = &s3.region {
        b = b.with_region(r);
    }
    if let Some(k) = &s3.access_key_id {
        b = b.with_access_key_id(k);
    }
    if let Some(k) = &s3.secret_access_key {
        b = b.with_secret_access_key(k.expose());
    }
    if let Some(v) = s3.virtual_hosted_style {
        b = b.with_virtual_hosted_style_request(v);
    }
    b
}
