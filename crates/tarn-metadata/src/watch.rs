//! The watcher's cursor: which objects of a zone have been seen, by the store's change tag.

use crate::events::Events;
use crate::MetadataError;
use std::collections::HashMap;

impl Events<'_> {
    /// The objects of `zone` under `prefix` seen so far: key -> (store change tag, size).
    pub async fn seen_objects(
        &self,
        zone: &str,
        prefix: &str,
    ) -> Result<HashMap<String, (String, i64)>, MetadataError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT object_key, e_tag, size FROM zone_objects
             WHERE zone = $1 AND substr(object_key, 1, length($2)) = $2",
        )
        .bind(zone)
        .bind(prefix)
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows.into_iter().map(|(k, e, s)| (k, (e, s))).collect())
    }

    /// When tarn last recorded `key` of `zone` landing with `size` bytes, if ever.
    pub async fn landed_at(
        &self,
        zone: &str,
        key: &str,
        size: i64,
    ) -> Result<Option<String>, MetadataError> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(created_at) FROM events
             WHERE kind = $1 AND zone = $2 AND object_key = $3 AND size = $4",
        )
        .bind(crate::OBJECT_CREATED)
        .bind(zone)
        .bind(key)
        .bind(size)
        .fetch_one(&self.store.pool)
        .await?)
    }

    /// Remembers that `key` of `zone` was seen with change tag `e_tag`.
    pub async fn mark_seen(
        &self,
        zone: &str,
        key: &str,
        e_tag: &str,
        size: i64,
    ) -> Result<(), MetadataError> {
        sqlx::query(
            "INSERT INTO zone_objects (zone, object_key, e_tag, size, seen_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (zone, object_key) DO UPDATE SET e_tag = excluded.e_tag, size = excluded.size,
                 seen_at = excluded.seen_at",
        )
        .bind(zone)
        .bind(key)
        .bind(e_tag)
        .bind(size)
        .bind(crate::now())
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }
}
