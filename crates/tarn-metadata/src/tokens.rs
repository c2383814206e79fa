//! API tokens: created once (the caller shows the token to its owner and forgets it), stored
//! as a SHA-256 hash, looked up by the hash of what a request presents, revoked by name.

use crate::columns::Flag;
use crate::{Existing, MetadataError, Store};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// API tokens (stored hashed). Reached with [`Store::tokens`].
#[derive(Clone, Copy, Debug)]
pub struct Tokens<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// API tokens (stored hashed).
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { store: self }
    }
}

/// The prefix of every token, so a leaked one is recognisable in code reviews and scanners.
pub const TOKEN_PREFIX: &str = "tarn_";

/// A stored token (never the token itself).
#[derive(
    Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "Flag")]
    pub read_only: bool,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// When set, the token may write only this domain's zones and tables.
    #[serde(default)]
    pub scope: Option<String>,
    /// When set, the token stops working at this time.
    #[serde(default)]
    pub expires_at: Option<String>,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens<'_> {
    /// Creates a token named `name`; returns the record and the token, which is not kept.
    pub async fn create_token(
        &self,
        name: &str,
        read_only: bool,
    ) -> Result<(TokenRecord, String), MetadataError> {
        self.create_scoped_token(name, read_only, None, None).await
    }

    /// Creates a token that may write only `scope`'s zones and tables (any when `None`) and
    /// stops working after `ttl` (never when `None`).
    pub async fn create_scoped_token(
        &self,
        name: &str,
        read_only: bool,
        scope: Option<&str>,
        ttl: Option<std::time::Duration>,
    ) -> Result<(TokenRecord, String), MetadataError> {
        let token = format!(
            "{TOKEN_PREFIX}{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let record = TokenRecord {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            read_only,
            created_at: crate::now(),
            revoked_at: None,
            scope: scope.map(str::to_string),
            expires_at: ttl.map(|t| {
                (chrono::Utc::now() + chrono::Duration::from_std(t).unwrap_or_default())
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            }),
        };
        let res = sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, read_only, created_at, scope, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&record.id)
        .bind(name)
        .bind(hash(&token))
        .bind(read_only as i64)
        .bind(&record.created_at)
        .bind(&record.scope)
        .bind(&record.expires_at)
        .execute(&self.store.pool)
        .await;
        match res {
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                Err(MetadataError::Exists(Existing::Token {
                    name: name.to_string(),
                }))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok((record, token)),
        }
    }

    /// The live token matching `token`, if any.
    pub async fn verify_token(&self, token: &str) -> Result<Option<TokenRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT id, name, read_only, created_at, revoked_at, scope, expires_at FROM api_tokens
             WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(hash(token))
        .bind(crate::now())
        .fetch_optional(&self.store.pool)
        .await?)
    }

    /// Every token, live and revoked, by name.
    pub async fn list(&self) -> Result<Vec<TokenRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT id, name, read_only, created_at, revoked_at, scope, expires_at FROM api_tokens ORDER BY name",
        )
        .fetch_all(&self.store.pool)
        .await?)
    }

    /// Revokes the token named `name`; false when there is no live token of that name.
    pub async fn revoke_token(&self, name: &str) -> Result<bool, MetadataError> {
        let res = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(crate::now())
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
    async fn only_the_hash_is_kept_and_revoked_tokens_stop_working() {
        for backend in BACKENDS {
            let dir = tempfile::tempdir().unwrap();
            let store = fresh_store(backend, dir.path()).await.unwrap();
            let (rec, token) = store.tokens().create_token("ci", true).await.unwrap();
            assert!(token.starts_with("tarn_") && token.len() > 60);
            assert!(rec.read_only);
            let found = store.tokens().verify_token(&token).await.unwrap().unwrap();
            assert_eq!(found.name, "ci");
            assert!(store
                .tokens()
                .verify_token("tarn_wrong")
                .await
                .unwrap()
                .is_none());
            let err = store.tokens().create_token("ci", false).await.unwrap_err();
            assert!(err.to_string().contains("revoke"), "{err}");
            let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
                .fetch_all(&store.pool)
                .await
                .unwrap();
            assert!(!stored.iter().any(|h| h.contains(&token[5..])));
            assert!(store.tokens().revoke_token("ci").await.unwrap());
            assert!(store.tokens().verify_token(&token).await.unwrap().is_none());
            assert!(!store.tokens().revoke_token("ci").await.unwrap());
            // The name is free again once revoked.
            store.tokens().create_token("ci", false).await.unwrap();
            assert_eq!(store.tokens().list().await.unwrap().len(), 2);
        }
    }
}
