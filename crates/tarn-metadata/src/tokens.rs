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
    /// When set, the token was made for a step of a pipeline of this domain; its policy
    /// (`pipeline-step:DOMAIN`) lets it write only that domain's zones and tables.
    #[serde(default)]
    pub scope: Option<String>,
    /// When set, the token stops working at this time.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The AWS access key id of the token's key pair, when it has one (`--aws`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_access_key: Option<String>,
    /// The policies the token carries: its grants (`full` or `read-only` for tokens made
    /// before policies, after their read-only flag).
    #[sqlx(skip)]
    #[serde(default)]
    pub policies: Vec<String>,
    /// The stored list of policies (JSON), when the token was made with some.
    #[sqlx(rename = "policies")]
    #[serde(skip)]
    pub(crate) policies_json: Option<String>,
}

impl TokenRecord {
    /// Fills [`TokenRecord::policies`] from what is stored.
    fn with_policies(mut self) -> Self {
        self.policies = self
            .policies_json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_else(|| {
                vec![match &self.scope {
                    // A step token made before its policy was stored (tarn-config's
                    // `step_policy`).
                    Some(domain) => format!("pipeline-step:{domain}"),
                    None if self.read_only => "read-only".to_string(),
                    None => "full".to_string(),
                }]
            });
        self
    }
}

/// The columns of a [`TokenRecord`].
const COLUMNS: &str =
    "id, name, read_only, created_at, revoked_at, scope, expires_at, aws_access_key, policies";

/// The name an access key's secret is sealed under.
fn sealed_name(access_key: &str) -> String {
    format!("aws-secret-key:{access_key}")
}

/// `n` characters drawn from `alphabet` with the system's randomness.
fn random_text(n: usize, alphabet: &[u8]) -> Result<String, MetadataError> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| MetadataError::Sealed("no randomness for a new key".into()))?;
    // 256 is a multiple of neither alphabet's size; the bias is below 1 part in 7 per char,
    // and every key still holds far more than 128 bits.
    Ok(bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect())
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
        self.create_scoped_token(name, read_only, &[], None, None)
            .await
    }

    /// Creates a token carrying `policies` (names the caller has checked); read-only when
    /// none of them is `full` and `read_only` is asked, as the flag has always meant.
    pub async fn create_token_with_policies(
        &self,
        name: &str,
        read_only: bool,
        policies: &[String],
    ) -> Result<(TokenRecord, String), MetadataError> {
        self.create_scoped_token(name, read_only, policies, None, None)
            .await
    }

    /// Creates a token carrying `policies` (the built-in ones after `read_only` when none),
    /// made for `scope`'s domain (a pipeline's step; its policies say what that allows), that
    /// stops working after `ttl` (never when `None`).
    pub async fn create_scoped_token(
        &self,
        name: &str,
        read_only: bool,
        policies: &[String],
        scope: Option<&str>,
        ttl: Option<std::time::Duration>,
    ) -> Result<(TokenRecord, String), MetadataError> {
        let policies_json = match policies {
            [] => None,
            some => Some(serde_json::to_string(some)?),
        };
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
            aws_access_key: None,
            policies: Vec::new(),
            policies_json,
            expires_at: ttl.map(|t| {
                (chrono::Utc::now() + chrono::Duration::from_std(t).unwrap_or_default())
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            }),
        };
        let res = sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, read_only, created_at, scope, expires_at, policies)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&record.id)
        .bind(name)
        .bind(hash(&token))
        .bind(read_only as i64)
        .bind(&record.created_at)
        .bind(&record.scope)
        .bind(&record.expires_at)
        .bind(&record.policies_json)
        .execute(&self.store.pool)
        .await;
        match res {
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                Err(MetadataError::Exists(Existing::Token {
                    name: name.to_string(),
                }))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok((record.with_policies(), token)),
        }
    }

    /// The live token matching `token`, if any.
    pub async fn verify_token(&self, token: &str) -> Result<Option<TokenRecord>, MetadataError> {
        let found: Option<TokenRecord> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM api_tokens
             WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"
        ))
        .bind(hash(token))
        .bind(crate::now())
        .fetch_optional(&self.store.pool)
        .await?;
        Ok(found.map(TokenRecord::with_policies))
    }

    /// Every token, live and revoked, by name.
    pub async fn list(&self) -> Result<Vec<TokenRecord>, MetadataError> {
        let all: Vec<TokenRecord> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY name"))
                .fetch_all(&self.store.pool)
                .await?;
        Ok(all.into_iter().map(TokenRecord::with_policies).collect())
    }

    /// Gives the live token `name` an AWS access key pair (replacing any it had): answers the
    /// access key id and the secret access key, which is shown once and kept sealed.
    pub async fn add_aws_key(&self, name: &str) -> Result<(String, String), MetadataError> {
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let access_key = format!("TARN{}", random_text(16, UPPER)?);
        let secret = random_text(40, SECRET)?;
        let sealed = crate::sealed::seal(&sealed_name(&access_key), &secret)?;
        let done = sqlx::query(
            "UPDATE api_tokens SET aws_access_key = $1, aws_secret_sealed = $2
             WHERE name = $3 AND revoked_at IS NULL",
        )
        .bind(&access_key)
        .bind(&sealed)
        .bind(name)
        .execute(&self.store.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(MetadataError::NotFound(crate::Missing::Token {
                name: name.to_string(),
            }));
        }
        Ok((access_key, secret))
    }

    /// The live token whose AWS access key is `access_key`, with its secret access key.
    pub async fn aws_key(
        &self,
        access_key: &str,
    ) -> Result<Option<(TokenRecord, String)>, MetadataError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT aws_secret_sealed FROM api_tokens
             WHERE aws_access_key = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(access_key)
        .bind(crate::now())
        .fetch_optional(&self.store.pool)
        .await?;
        let Some((sealed,)) = row else {
            return Ok(None);
        };
        let record: TokenRecord = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE aws_access_key = $1 AND revoked_at IS NULL"
        ))
        .bind(access_key)
        .fetch_one(&self.store.pool)
        .await?;
        let secret = crate::sealed::open(&sealed_name(access_key), &sealed)?;
        Ok(Some((record.with_policies(), secret)))
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
