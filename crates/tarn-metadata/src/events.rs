//! Events: what happened in the lake, recorded durably and once per (kind, zone, key, etag).

use crate::{MetadataError, Store};
use serde::Serialize;

/// Recorded events, and the watcher's cursor of objects seen in zones. Reached with [`Store::events`].
#[derive(Clone, Copy, Debug)]
pub struct Events<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// Recorded events, and the watcher's cursor of objects seen in zones.
    pub fn events(&self) -> Events<'_> {
        Events { store: self }
    }
}

/// The kind of event recorded when an object lands in a zone.
pub const OBJECT_CREATED: &str = "object.created";

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: String,
    pub zone: String,
    pub key: String,
    pub etag: String,
    pub size: u64,
    pub detail: serde_json::Value,
}

impl NewEvent {
    /// The `object.created` event for an object landed in `zone`.
    pub fn object_created(zone: &str, key: &str, etag: &str, size: u64) -> Self {
        NewEvent {
            kind: OBJECT_CREATED.into(),
            zone: zone.into(),
            key: key.into(),
            etag: etag.into(),
            size,
            detail: serde_json::json!({}),
        }
    }
}

/// A recorded event.
#[derive(
    Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub zone: String,
    #[sqlx(rename = "object_key")]
    pub key: String,
    pub etag: String,
    #[sqlx(try_from = "i64")]
    pub size: u64,
    #[sqlx(try_from = "crate::columns::JsonText")]
    pub detail: serde_json::Value,
    pub created_at: String,
}

impl Events<'_> {
    /// Records an event unless the same (kind, zone, key, etag) was already recorded.
    /// Returns whether it was new.
    pub async fn record_event(&self, e: &NewEvent) -> Result<bool, MetadataError> {
        Ok(self.record_event_id(e).await?.is_some())
    }

    /// Records an event like [`Store::record_event`]; answers its id when it was new.
    pub async fn record_event_id(&self, e: &NewEvent) -> Result<Option<String>, MetadataError> {
        let id = uuid::Uuid::now_v7().to_string();
        let res = sqlx::query(
            "INSERT INTO events (id, kind, zone, object_key, etag, size, detail, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (kind, zone, object_key, etag) DO NOTHING",
        )
        .bind(&id)
        .bind(&e.kind)
        .bind(&e.zone)
        .bind(&e.key)
        .bind(&e.etag)
        .bind(e.size as i64)
        .bind(e.detail.to_string())
        .bind(crate::now())
        .execute(&self.store.pool)
        .await?;
        Ok((res.rows_affected() == 1).then_some(id))
    }

    /// One event by id.
    pub async fn event(&self, id: &str) -> Result<Option<Event>, MetadataError> {
        let row = sqlx::query_as::<_, Event>(
            "SELECT id, kind, zone, object_key, etag, size, detail, created_at FROM events WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.store.pool)
        .await?;
        Ok(row)
    }

    /// Events, newest last, optionally of one kind and one zone.
    pub async fn list(
        &self,
        kind: Option<&str>,
        zone: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Event>, MetadataError> {
        let rows = sqlx::query_as::<_, Event>(
            "SELECT id, kind, zone, object_key, etag, size, detail, created_at FROM events
             WHERE ($1 = '' OR kind = $1) AND ($2 = '' OR zone = $2) AND id > $3
             ORDER BY id LIMIT $4",
        )
        .bind(kind.unwrap_or(""))
        .bind(zone.unwrap_or(""))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows)
    }

    /// The newest `limit` events (of `kind`), oldest first.
    pub async fn latest_events(
        &self,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Event>, MetadataError> {
        let rows = sqlx::query_as::<_, Event>(
            "SELECT id, kind, zone, object_key, etag, size, detail, created_at FROM events
             WHERE ($1 = '' OR kind = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(kind.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?;
        let mut events = rows;
        events.reverse();
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_object_is_recorded_once() {
        for backend in crate::testing::BACKENDS {
            same_object_is_recorded_once_on(backend).await;
        }
    }

    async fn same_object_is_recorded_once_on(backend: crate::testing::Backend) {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::testing::fresh_url(backend, dir.path())
            .await
            .unwrap();
        let store = Store::open(&url).await.unwrap();
        let e = NewEvent::object_created("flights/raw", "a.csv", "e1", 3);
        assert!(store.events().record_event(&e).await.unwrap());
        assert!(!store.events().record_event(&e).await.unwrap());
        let changed = NewEvent::object_created("flights/raw", "a.csv", "e2", 4);
        assert!(store.events().record_event(&changed).await.unwrap());
        let all = store
            .events()
            .list(Some(OBJECT_CREATED), None, None, 100)
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
        // Reopening keeps what was recorded and does not re-run migrations.
        drop(store);
        let again = Store::open(&url).await.unwrap();
        assert_eq!(
            again
                .events()
                .list(None, Some("flights/raw"), None, 10)
                .await
                .unwrap()
                .len(),
            2
        );
    }
}
