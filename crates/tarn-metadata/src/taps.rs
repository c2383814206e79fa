//! Singer taps' state and tarn's secret store.
//!
//! A tap's bookmark (its last STATE message) is saved together with the sequence number of
//! the flush that made it durable: every Delta commit of that flush carries the number as its
//! application transaction version. Before a flush commits anything, the tables it will write
//! and their versions are kept as the tap's `pending` flush; saving the state clears it in the
//! same statement. A run that finds a pending flush knows a crash came between the commits and
//! the state, and settles it before the tap starts.
//!
//! Secrets are stored sealed (the caller encrypts them with a key kept outside this store);
//! this module never sees a value in clear.

use crate::columns::JsonText;
use crate::{MetadataError, Store};
use serde::{Deserialize, Serialize};

/// The `source` of tap events (`tap.run.succeeded`, `tap.run.failed`).
pub const EVENT_SOURCE: &str = "tarn.taps";

/// Taps' saved state and the secret store. Reached with [`Store::taps`].
#[derive(Clone, Copy, Debug)]
pub struct Taps<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// Taps' saved state and the secret store.
    pub fn taps(&self) -> Taps<'_> {
        Taps { store: self }
    }
}

/// A tap's saved state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow)]
pub struct TapState {
    pub tap: String,
    /// The flush that saved it (0: none yet).
    pub seq: i64,
    /// The tap's last STATE message's value.
    #[schema(value_type = Object)]
    #[sqlx(try_from = "JsonText")]
    pub state: serde_json::Value,
    /// A flush begun and not saved: `{"seq": N, "tables": [{"url", "version"}]}`.
    #[schema(value_type = Object)]
    #[sqlx(try_from = "JsonText")]
    pub pending: serde_json::Value,
    pub updated_at: String,
}

/// A secret as stored: its name and its sealed value.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SealedSecret {
    pub name: String,
    pub sealed: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Taps<'_> {
    /// The saved state of `tap` (none before its first saved flush).
    pub async fn state(&self, tap: &str) -> Result<Option<TapState>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT tap, seq, state, COALESCE(pending, 'null') AS pending, updated_at
             FROM tap_states WHERE tap = $1",
        )
        .bind(tap)
        .fetch_optional(&self.store.pool)
        .await?)
    }

    /// Every tap's saved state, by tap.
    pub async fn states(&self) -> Result<Vec<TapState>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT tap, seq, state, COALESCE(pending, 'null') AS pending, updated_at
             FROM tap_states ORDER BY tap",
        )
        .fetch_all(&self.store.pool)
        .await?)
    }

    /// Records the flush about to commit (`pending`), keeping the saved state as it is.
    pub async fn begin_flush(
        &self,
        tap: &str,
        pending: &serde_json::Value,
    ) -> Result<(), MetadataError> {
        sqlx::query(
            "INSERT INTO tap_states (tap, seq, state, pending, updated_at)
             VALUES ($1, 0, 'null', $2, $3)
             ON CONFLICT (tap) DO UPDATE SET pending = excluded.pending,
               updated_at = excluded.updated_at",
        )
        .bind(tap)
        .bind(pending.to_string())
        .bind(crate::now())
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Saves `state` as made durable by flush `seq`, and clears the pending flush: one
    /// statement, so the state and the flush it belongs to never part.
    pub async fn save_state(
        &self,
        tap: &str,
        seq: i64,
        state: &serde_json::Value,
    ) -> Result<(), MetadataError> {
        sqlx::query(
            "INSERT INTO tap_states (tap, seq, state, pending, updated_at)
             VALUES ($1, $2, $3, NULL, $4)
             ON CONFLICT (tap) DO UPDATE SET seq = excluded.seq, state = excluded.state,
               pending = NULL, updated_at = excluded.updated_at",
        )
        .bind(tap)
        .bind(seq)
        .bind(state.to_string())
        .bind(crate::now())
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Forgets the pending flush (it was rolled back).
    pub async fn clear_pending(&self, tap: &str) -> Result<(), MetadataError> {
        sqlx::query("UPDATE tap_states SET pending = NULL, updated_at = $2 WHERE tap = $1")
            .bind(tap)
            .bind(crate::now())
            .execute(&self.store.pool)
            .await?;
        Ok(())
    }

    /// Clears the state of `tap`: its next run starts from the beginning. The flush number
    /// is kept (commits go on numbering from it). Answers whether there was a state.
    pub async fn reset(&self, tap: &str) -> Result<bool, MetadataError> {
        let res = sqlx::query(
            "UPDATE tap_states SET state = 'null', updated_at = $2 WHERE tap = $1 AND state <> 'null'",
        )
        .bind(tap)
        .bind(crate::now())
        .execute(&self.store.pool)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Takes the lease of `tap` for `owner` until `until` when nobody holds it, its lease ran
    /// out, or its holder is `gone` (a process of this host that is no longer there); answers
    /// the holder when it is someone else.
    pub async fn lease(
        &self,
        tap: &str,
        owner: &str,
        until: &str,
        gone: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<(String, String)>, MetadataError> {
        let now = crate::now();
        sqlx::query(
            "INSERT INTO tap_states (tap, seq, state, pending, updated_at)
             VALUES ($1, 0, 'null', NULL, $2) ON CONFLICT (tap) DO NOTHING",
        )
        .bind(tap)
        .bind(&now)
        .execute(&self.store.pool)
        .await?;
        let held: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT run_owner, run_until FROM tap_states WHERE tap = $1")
                .bind(tap)
                .fetch_optional(&self.store.pool)
                .await?;
        let (holder, held_until) = held.unwrap_or_default();
        if let (Some(h), Some(u)) = (&holder, &held_until) {
            if h != owner && u.as_str() > now.as_str() && !gone(h) {
                return Ok(Some((h.clone(), u.clone())));
            }
        }
        // Taken only if nobody took it since it was read.
        let res = sqlx::query(
            "UPDATE tap_states SET run_owner = $2, run_until = $3
             WHERE tap = $1 AND COALESCE(run_owner, '') = $4",
        )
        .bind(tap)
        .bind(owner)
        .bind(until)
        .bind(holder.clone().unwrap_or_default())
        .execute(&self.store.pool)
        .await?;
        if res.rows_affected() == 1 {
            Ok(None)
        } else {
            Ok(Some((
                holder.unwrap_or_default(),
                held_until.unwrap_or_default(),
            )))
        }
    }

    /// Extends `owner`'s lease of `tap` to `until`; answers whether it still holds it.
    pub async fn renew(&self, tap: &str, owner: &str, until: &str) -> Result<bool, MetadataError> {
        let res =
            sqlx::query("UPDATE tap_states SET run_until = $3 WHERE tap = $1 AND run_owner = $2")
                .bind(tap)
                .bind(owner)
                .bind(until)
                .execute(&self.store.pool)
                .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Gives up `owner`'s lease of `tap`.
    pub async fn release(&self, tap: &str, owner: &str) -> Result<(), MetadataError> {
        sqlx::query(
            "UPDATE tap_states SET run_owner = NULL, run_until = NULL WHERE tap = $1 AND run_owner = $2",
        )
        .bind(tap)
        .bind(owner)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Stores (or replaces) the sealed value of secret `name`.
    pub async fn put_secret(&self, name: &str, sealed: &str) -> Result<(), MetadataError> {
        let now = crate::now();
        sqlx::query(
            "INSERT INTO secrets (name, sealed, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed,
               updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(sealed)
        .bind(&now)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// The sealed value of secret `name`.
    pub async fn secret(&self, name: &str) -> Result<Option<SealedSecret>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT name, sealed, created_at, updated_at FROM secrets WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.store.pool)
        .await?)
    }

    /// Every secret (sealed), by name.
    pub async fn secrets(&self) -> Result<Vec<SealedSecret>, MetadataError> {
        Ok(
            sqlx::query_as(
                "SELECT name, sealed, created_at, updated_at FROM secrets ORDER BY name",
            )
            .fetch_all(&self.store.pool)
            .await?,
        )
    }

    /// Deletes secret `name`; answers whether it existed.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, MetadataError> {
        let res = sqlx::query("DELETE FROM secrets WHERE name = $1")
            .bind(name)
            .execute(&self.store.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{fresh_store, BACKENDS};

    #[tokio::test]
    async fn a_flush_is_pending_until_its_state_is_saved() {
        for backend in BACKENDS {
            let dir = tempfile::tempdir().unwrap();
            let store = fresh_store(backend, dir.path()).await.unwrap();
            let taps = store.taps();
            assert!(taps.state("pg").await.unwrap().is_none());
            let pending = serde_json::json!({"seq": 1, "tables": []});
            taps.begin_flush("pg", &pending).await.unwrap();
            let s = taps.state("pg").await.unwrap().unwrap();
            assert_eq!(
                (s.seq, &s.state, &s.pending),
                (0, &serde_json::Value::Null, &pending)
            );
            taps.save_state("pg", 1, &serde_json::json!({"bookmarks": {"a": 3}}))
                .await
                .unwrap();
            let s = taps.state("pg").await.unwrap().unwrap();
            assert_eq!(s.seq, 1);
            assert_eq!(s.pending, serde_json::Value::Null);
            assert_eq!(s.state["bookmarks"]["a"], 3);
            assert!(taps.reset("pg").await.unwrap());
            let s = taps.state("pg").await.unwrap().unwrap();
            assert_eq!((s.seq, s.state), (1, serde_json::Value::Null));
            let later = "9999-01-01T00:00:00Z";
            assert_eq!(
                taps.lease("pg", "h:1:a", later, &|_| false).await.unwrap(),
                None
            );
            let held = taps.lease("pg", "h:2:b", later, &|_| false).await.unwrap();
            assert_eq!(
                held.map(|h| h.0),
                Some("h:1:a".to_string()),
                "held by a live run"
            );
            assert_eq!(
                taps.lease("pg", "h:2:b", later, &|o| o == "h:1:a")
                    .await
                    .unwrap(),
                None,
                "its holder is gone"
            );
            assert!(!taps.renew("pg", "h:1:a", later).await.unwrap());
            taps.release("pg", "h:2:b").await.unwrap();
            assert_eq!(
                taps.lease("pg", "h:3:c", "2000-01-01T00:00:00Z", &|_| false)
                    .await
                    .unwrap(),
                None
            );
            assert_eq!(
                taps.lease("pg", "h:4:d", later, &|_| false).await.unwrap(),
                None,
                "a lease that ran out"
            );
            taps.put_secret("pw", "sealed-bytes").await.unwrap();
            assert_eq!(
                taps.secret("pw").await.unwrap().unwrap().sealed,
                "sealed-bytes"
            );
            assert!(taps.delete_secret("pw").await.unwrap());
            assert!(taps.secret("pw").await.unwrap().is_none());
        }
    }
}
