//! Model endpoints as stored: a name, its spec (JSON the serving side reads), where it came
//! from (`tarn.yml` or `tarn endpoints deploy`), who and when. A running `tarn serve` reads
//! them again every few seconds, so a deploy or delete from another process takes effect
//! without a restart.

use crate::{MetadataError, Missing, Store};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// A stored endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EndpointRecord {
    pub name: String,
    /// The spec as JSON (`tarn_config::EndpointSpec`).
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// `config` (declared in tarn.yml) or `cli`.
    pub source: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Store {
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
        .execute(&self.pool)
        .await?;
        self.endpoint(name).await?.ok_or_else(|| {
            MetadataError::NotFound(Missing::Endpoint {
                name: name.to_string(),
            })
        })
    }

    /// Every endpoint, by name.
    pub async fn endpoints(&self) -> Result<Vec<EndpointRecord>, MetadataError> {
        let rows = sqlx::query(
            "SELECT name, spec, source, created_by, created_at, updated_at FROM ml_endpoints ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// Endpoint `name`, if it exists.
    pub async fn endpoint(&self, name: &str) -> Result<Option<EndpointRecord>, MetadataError> {
        let row = sqlx::query(
            "SELECT name, spec, source, created_by, created_at, updated_at FROM ml_endpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// Deletes endpoint `name`; answers whether it existed.
    pub async fn delete_endpoint(&self, name: &str) -> Result<bool, MetadataError> {
        let res = sqlx::query("DELETE FROM ml_endpoints WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }
}

fn record(r: &sqlx::any::AnyRow) -> Result<EndpointRecord, MetadataError> {
    let text: String = r.get("spec");
    Ok(EndpointRecord {
        name: r.get("name"),
        spec: serde_json::from_str(&text)?,
        source: r.get("source"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}
