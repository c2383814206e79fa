//! The record of notification deliveries: each subscription a message went to, whether it
//! arrived, after how many tries, and why not. Endpoints are stored with passwords hidden.

use crate::columns::Flag;
use crate::{MetadataError, Store};
use serde::{Deserialize, Serialize};

/// Deliveries of events to topics' subscribers. Reached with [`Store::deliveries`].
#[derive(Clone, Copy, Debug)]
pub struct Deliveries<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// Deliveries of events to topics' subscribers.
    pub fn deliveries(&self) -> Deliveries<'_> {
        Deliveries { store: self }
    }
}

/// One delivery of one message to one subscription.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: String,
    pub topic: String,
    pub protocol: String,
    pub endpoint: String,
    pub subject: String,
    #[sqlx(try_from = "Flag")]
    pub delivered: bool,
    pub attempts: i64,
    pub error: Option<String>,
    pub created_at: String,
}

impl Deliveries<'_> {
    /// Records a delivery (its id and time are filled in).
    pub async fn record_delivery(&self, d: &DeliveryRecord) -> Result<(), MetadataError> {
        sqlx::query(
            "INSERT INTO deliveries (id, topic, protocol, endpoint, subject, delivered, attempts, error, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&d.topic)
        .bind(&d.protocol)
        .bind(&d.endpoint)
        .bind(&d.subject)
        .bind(d.delivered as i64)
        .bind(d.attempts)
        .bind(&d.error)
        .bind(crate::now())
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Deliveries, newest first, of one topic when given.
    pub async fn list(
        &self,
        topic: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT id, topic, protocol, endpoint, subject, delivered, attempts, error, created_at
             FROM deliveries WHERE ($1 = '' OR topic = $1) ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(topic.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?)
    }
}
