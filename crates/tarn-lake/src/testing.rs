//! Fresh lakes for tests, on each deployment tarn supports: the embedded one (SQLite + local
//! files) and the shared one (Postgres + S3).
//!
//! The shared deployment needs `TARN_TEST_POSTGRES` (a Postgres server URL) and `TARN_TEST_S3`
//! (an S3-protocol endpoint, with `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` set and the
//! bucket `TARN_TEST_S3_BUCKET`, default `tarn-test`, created); `scripts/test` starts both.
//! Each call gets its own database and its own prefix in the bucket.

use std::path::Path;
use tarn_metadata::testing::{fresh_url, Backend};

/// The environment variable naming the S3 endpoint tests use.
pub const S3_ENV: &str = "TARN_TEST_S3";

/// Where a test lake keeps its metadata and its zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// SQLite + a local folder: the default on a laptop.
    Embedded,
    /// Postgres + S3: the team deployment.
    Shared,
}

/// Both deployments.
pub const DEPLOYMENTS: [Deployment; 2] = [Deployment::Embedded, Deployment::Shared];

/// The `tarn.yml` lines that put a fresh lake on `deployment` (`dir` holds SQLite files).
pub async fn fresh_yml(deployment: Deployment, dir: &Path) -> String {
    match deployment {
        Deployment::Embedded => {
            let url = fresh_url(Backend::Sqlite, dir)
                .await
                .expect("a SQLite file");
            format!("metadata: {url}\n")
        }
        Deployment::Shared => {
            let url = fresh_url(Backend::Postgres, dir)
                .await
                .expect("a Postgres database");
            let endpoint = std::env::var(S3_ENV).unwrap_or_else(|_| {
                panic!("{S3_ENV} is not set: tests need an S3-protocol server; scripts/test starts one")
            });
            let bucket =
                std::env::var("TARN_TEST_S3_BUCKET").unwrap_or_else(|_| "tarn-test".into());
            format!(
                "metadata: {url}\nstorage: s3://{bucket}/{}\ns3:\n  endpoint: {endpoint}\n  region: us-east-1\n",
                uuid::Uuid::new_v4().simple()
            )
        }
    }
}
