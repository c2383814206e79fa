//! Model endpoints as stored: a name, its spec (JSON the serving side reads), where it came
//! from (`tarn.yml` or `tarn endpoints deploy`), who and when. A running `tarn serve` reads
//! them again every few seconds, so a deploy or delete from another process takes effect
//! without a restart.

use crate::columns::JsonText;
use crate::{MetadataError, Missing, Store};
use serde::{Deserialize, Serialize};

/// Serving endpoints as declared and deployed. Reached with [`Store::endpoints`].
#[derive(Clone, Copy, Debug)]
pub struct Endpoints<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// Serving endpoints as declared and deployed.
    pub fn endpoints(&self) -> Endpoints<'_> {
        Endpoints { store: self }
    }
}

/// A stored endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow)]
pub struct EndpointRecord {
    pub name: String,
    /// The spec as JSON (`tarn_config::EndpointSpec`).
    #[schema(value_type = Object)]
    #[sqlx(try_from = "JsonText")]
    pub spec: serde_json::Value,
    /// `config` (declared in tarn.yml) or `cli`.
    pub source: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Endpoints<'_> {
    /// Creates or replaces endpoint `name`.
    pub async fn put_endpoint(
        &self,
        name: &str,
        spec: &serde_json::Value,
        source: &str,
        user: &str,
    ) -> Result<EndpointRecord, MetadataError> {
        let now = crate::now();
        let text = spec.to_string();
        sqlx::query(
            "INSERT INTO ml_endpoints (name, spec, source, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, source = excluded.source,
               updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(&text)
        .bind(source)
        .bind(user)
        .bind(&now)
        .execute(&self.store.pool)
        .await?;
        self.endpoint(name).await?.ok_or_else(|| {
            MetadataError::NotFound(Missing::Endpoint {
                name: name.to_string(),
            })
        })
    }

    /// Every endpoint, by name.
    pub async fn list(&self) -> Result<Vec<EndpointRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT name, spec, source, created_by, created_at, updated_at FROM ml_endpoints ORDER BY name",
        )
        .fetch_all(&self.store.pool)
        .await?)
    }

    /// Endpoint `name`, if it exists.
    pub async fn endpoint(&self, name: &str) -> Result<Option<EndpointRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT name, spec, source, created_by, created_at, updated_at FROM ml_endpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.store.pool)
        .await?)
    }

    /// Deletes endpoint `name`; answers whether it existed.
    pub async fn delete_endpoint(&self, name: &str) -> Result<bool, MetadataError> {
        let res = sqlx::query("DELETE FROM ml_endpoints WHERE name = $1")
            .bind(name)
            .execute(&self.store.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{fresh_store, BACKENDS};
    use crate::DeliveryRecord;

    #[tokio::test]
    async fn endpoints_and_deliveries_read_back_as_written() {
        for backend in BACKENDS {
            let dir = tempfile::tempdir().unwrap();
            let store = fresh_store(backend, dir.path()).await.unwrap();
            let spec = serde_json::json!({"model": "models:/delays/1", "canary": null});
            let put = store
                .endpoints()
                .put_endpoint("delays", &spec, "cli", "ana")
                .await
                .unwrap();
            let got = store.endpoints().endpoint("delays").await.unwrap().unwrap();
            assert_eq!(got, put);
            assert_eq!(got.spec, spec);
            assert_eq!(store.endpoints().list().await.unwrap(), vec![got]);
            assert!(store.endpoints().endpoint("nope").await.unwrap().is_none());
            assert!(store.endpoints().delete_endpoint("delays").await.unwrap());
            assert!(store.endpoints().list().await.unwrap().is_empty());
            for (delivered, error) in [(true, None), (false, Some("refused".to_string()))] {
                let d = DeliveryRecord {
                    id: String::new(),
                    topic: "alerts".into(),
                    protocol: "webhook".into(),
                    endpoint: "http://127.0.0.1:9/hook".into(),
                    subject: "s".into(),
                    delivered,
                    attempts: 3,
                    error,
                    created_at: String::new(),
                };
                store.deliveries().record_delivery(&d).await.unwrap();
            }
            let all = store.deliveries().list(Some("alerts"), 10).await.unwrap();
            assert_eq!(all.len(), 2);
            assert!(all.iter().any(|d| d.delivered && d.error.is_none()));
            assert!(all
                .iter()
                .any(|d| !d.delivered && d.error.as_deref() == Some("refused") && d.attempts == 3));
        }
    }
}
