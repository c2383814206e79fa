//! Fresh stores for tests: every backend the metadata store runs on.
//!
//! Postgres comes from `TARN_TEST_POSTGRES` (a server URL; `scripts/test` starts one); each
//! call creates a new database on it, so tests never see each other's rows.

use crate::{MetadataError, Store};

/// The environment variable naming the Postgres server tests use.
pub const POSTGRES_ENV: &str = "TARN_TEST_POSTGRES";

/// A metadata backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Every backend.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A fresh, empty metadata URL on `backend` (`dir` holds SQLite files).
pub async fn fresh_url(backend: Backend, dir: &std::path::Path) -> Result<String, MetadataError> {
    match backend {
        Backend::Sqlite => Ok(format!(
            "sqlite://{}/meta-{}.db",
            dir.display(),
            uuid::Uuid::new_v4().simple()
        )),
        Backend::Postgres => {
            let base = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
                panic!("{POSTGRES_ENV} is not set: tests need a Postgres server; scripts/test starts one")
            });
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&base).await?;
            let name = format!("tarn_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await?;
            let (server, _) = base
                .rsplit_once('/')
                .expect("a Postgres URL names a database");
            Ok(format!("{server}/{name}"))
        }
    }
}

/// A fresh store on `backend`.
pub async fn fresh_store(backend: Backend, dir: &std::path::Path) -> Result<Store, MetadataError> {
    Store::open(&fresh_url(backend, dir).await?).await
}
