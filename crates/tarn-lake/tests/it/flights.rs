//! The whole path on the full flights table: land, crawl, load under a contract, query,
//! and the Delta table read back by other engines.

use crate::support::*;
use std::collections::HashSet;
use tarn_lake::{LandOptions, LandOutcome, LoadArgs, LoadMode, TableChange};

async fn full_flights_land_crawl_load_query(deployment: Deployment) {
    let csv = flights_csv();
    let (_dir, lake) = lake(
        deployment,
        FLIGHTS_YML,
        &[("flights.yml", FLIGHTS_CONTRACT)],
    )
    .await;

    // What the contract must reject, computed here from the file itself: cancelled flights
    // (no air_time) and repeated keys.
    let rows = read_csv(&csv);
    let header = &rows[0];
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let (air, carrier, flight, sched) = (
        col("air_time"),
        col("carrier"),
        col("flight"),
        col("sched_dep_time"),
    );
    let mut keys = HashSet::new();
    let mut expected_rejected = 0;
    for r in &rows[1..] {
        let key = (
            r[carrier].clone(),
            r[flight].clone(),
            r[0].clone(),
            r[1].clone(),
            r[2].clone(),
            r[sched].clone(),
        );
        if r[air] == "NA" || !keys.insert(key) {
            expected_rejected += 1;
        }
    }
    let total = rows.len() - 1;
    assert_eq!(total, 336_776);

    // Land: one object, one event; the same bytes again record nothing new.
    let landed = lake
        .land(
            &csv,
            "flights/raw/flights/flights.csv",
            &LandOptions::default(),
            &noop,
        )
        .await
        .unwrap();
    assert_eq!(landed[0].outcome, LandOutcome::Created);
    let again = lake
        .land(
            &csv,
            "flights/raw/flights/flights.csv",
            &LandOptions::default(),
            &noop,
        )
        .await
        .unwrap();
    assert_eq!(again[0].outcome, LandOutcome::Unchanged);
    assert_eq!(
        lake.events_after(Some("object.created"), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Crawl: one CSV table whose numeric columns stay numeric despite `NA`.
    let report = lake.crawl(Some("flights/raw")).await.unwrap();
    assert_eq!(report.count(TableChange::Created), 1, "{report:?}");
    let t = lake.table("flights.raw.flights").await.unwrap();
    let ty = |n: &str| {
        t.record
            .columns
            .iter()
            .find(|c| c.name == n)
            .unwrap()
            .data_type
            .clone()
    };
    assert_eq!(ty("dep_time"), "bigint");
    assert_eq!(ty("dep_delay"), "bigint");
    assert_eq!(ty("carrier"), "string");
    assert_eq!(ty("time_hour"), "timestamp");
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.raw.flights").await,
        total.to_string()
    );
    assert_eq!(
        scalar(
            &lake,
            "SELECT count(*) FROM flights.raw.flights WHERE dep_time IS NULL"
        )
        .await,
        rows[1..]
            .iter()
            .filter(|r| r[col("dep_time")] == "NA")
            .count()
            .to_string()
    );

    // Load under the contract, from the raw object.
    let load = lake
        .load(&LoadArgs::append(
            "flights.trusted.flights",
            "flights/raw/flights/flights.csv",
        ))
        .await
        .unwrap();
    assert_eq!(load.rows_rejected, expected_rejected);
    assert_eq!(load.rows_written, total - expected_rejected);
    assert_eq!(load.row_count as usize, total - expected_rejected);
    assert_eq!(
        load.rejected_table.as_deref(),
        Some("flights.trusted.flights_rejected")
    );

    // The same file appended again (a re-run after a crash): already loaded, nothing written,
    // not even rejected rows.
    let rerun = lake
        .load(&LoadArgs::append(
            "flights.trusted.flights",
            "flights/raw/flights/flights.csv",
        ))
        .await
        .unwrap();
    assert!(rerun.already_loaded);
    assert_eq!((rerun.rows_written, rerun.rows_rejected), (0, 0));
    assert_eq!(rerun.row_count, load.row_count);
    assert_eq!(rerun.table_version, load.table_version);
    assert_eq!(
        scalar(
            &lake,
            "SELECT count(*) FROM flights.trusted.flights_rejected"
        )
        .await,
        expected_rejected.to_string()
    );

    // Appended again on purpose: every key is already there, so nothing is added twice.
    let again = lake
        .load(&LoadArgs {
            table: "flights.trusted.flights".into(),
            source: "flights/raw/flights/flights.csv".into(),
            format: None,
            mode: LoadMode::Append,
            key: vec![],
            again: true,
        })
        .await
        .unwrap();
    assert!(!again.already_loaded);
    assert_eq!(again.rows_written, 0);
    assert_eq!(again.rows_rejected, total);
    assert_eq!(again.row_count, load.row_count);
    assert_eq!(
        scalar(
            &lake,
            &format!(
                "SELECT count(*) FROM flights.trusted.flights_rejected WHERE _load_id = '{}' AND _reason LIKE '%already in the table%'",
                again.load_id
            )
        )
        .await,
        load.rows_written.to_string()
    );

    // Typed as the contract says, and queryable.
    assert_eq!(
        scalar(
            &lake,
            "SELECT arrow_typeof(year) FROM flights.trusted.flights LIMIT 1"
        )
        .await,
        "Int32"
    );
    assert_eq!(
        scalar(
            &lake,
            "SELECT arrow_typeof(dep_delay) FROM flights.trusted.flights LIMIT 1"
        )
        .await,
        "Float64"
    );
    assert_eq!(
        scalar(
            &lake,
            "SELECT count(*) FROM flights.trusted.flights WHERE air_time IS NULL"
        )
        .await,
        "0"
    );
    let reasons = scalar(
        &lake,
        &format!(
            "SELECT count(*) FROM flights.trusted.flights_rejected WHERE _load_id = '{}' AND _column = 'air_time' AND _reason LIKE '%not nullable%'",
            load.load_id
        ),
    )
    .await;
    assert_eq!(reasons, expected_rejected.to_string());

    // The catalog knows the table, its row count and its contract.
    let t = lake.table("flights.trusted.flights").await.unwrap();
    assert_eq!(t.record.format, "delta");
    assert_eq!(t.record.row_count, Some(load.row_count));
    assert_eq!(t.loads.len(), 2);
    assert!(
        !t.record
            .columns
            .iter()
            .find(|c| c.name == "air_time")
            .unwrap()
            .nullable
    );

    // Other engines read the same rows and types.
    let sum_distance: f64 = rows[1..]
        .iter()
        .zip(0..)
        .filter(|(r, _)| r[air] != "NA")
        .map(|(r, _)| r[col("distance")].parse::<f64>().unwrap())
        .sum();
    let table = t.record.location.trim_start_matches("file://").to_string();
    let seen: serde_json::Value = interop("read_delta.py", std::slice::from_ref(&table));
    for engine in ["deltalake", "duckdb"] {
        assert_eq!(seen[engine]["rows"], load.row_count, "{engine}: {seen}");
        let sum = seen[engine]["sum_distance"].as_f64().unwrap();
        assert!(
            (sum - sum_distance).abs() < 1e-6,
            "{engine}: {sum} vs {sum_distance}"
        );
    }
    assert_eq!(seen["deltalake"]["types"]["year"], "int32");
    assert_eq!(seen["deltalake"]["types"]["dep_delay"], "double");
    assert_eq!(seen["deltalake"]["types"]["carrier"], "string");
    assert!(seen["deltalake"]["types"]["time_hour"]
        .as_str()
        .unwrap()
        .starts_with("timestamp[us"));
    assert_eq!(seen["duckdb"]["types"]["year"], "INTEGER");
    assert_eq!(
        seen["duckdb"]["types"]["time_hour"],
        "TIMESTAMP WITH TIME ZONE"
    );

    // The bench's queries (bench/queries.sql: aggregates, a join with a dimension table,
    // windows, count(distinct), top-N) answer what DuckDB answers over the same table.
    lake.load(&LoadArgs::append(
        "flights.trusted.airlines",
        data_dir().join("airlines.csv").to_string_lossy(),
    ))
    .await
    .unwrap();
    let queries = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/queries.sql");
    let duckdb: Vec<Vec<Vec<serde_json::Value>>> = interop(
        "bench_queries.py",
        &[
            table,
            data_dir().join("airlines.csv").to_string_lossy().into(),
            queries.into(),
        ],
    );
    let sqls = tarn_lake::testing::bench_queries(&std::fs::read_to_string(queries).unwrap());
    assert_eq!(sqls.len(), duckdb.len());
    assert!(sqls.len() >= 10, "the bench has ten queries");
    // Three times each, as a server sees them: from the files, from rows cached on the
    // second query, and by the plan kept for the text.
    let server = lake.clone().with_row_cache(256 << 20);
    for (i, (sql, expected)) in sqls.iter().zip(&duckdb).enumerate() {
        assert!(!expected.is_empty(), "q{}: DuckDB answered no rows", i + 1);
        for run in 1..=3 {
            let got = server.sql(sql, &Default::default()).await.unwrap();
            assert_eq!(
                rounded(&tarn_lake::testing::json_rows(&got)),
                rounded(expected),
                "q{} answers differently from DuckDB (run {run}): {sql}",
                i + 1
            );
        }
    }
    assert!(server.engine().await.unwrap().plans_kept() >= 5);

    // A service table materialised with SQL.
    let into = lake
        .sql_into(
            "SELECT origin, count(*) AS n FROM flights.trusted.flights GROUP BY origin",
            "flights.service.by_origin",
        )
        .await
        .unwrap();
    assert_eq!(into.row_count, 3);
    assert_eq!(
        scalar(&lake, "SELECT sum(n) FROM flights.service.by_origin").await,
        load.row_count.to_string()
    );
}

/// What `tests/interop/SCRIPT ARGS` printed as JSON.
fn interop<T: serde::de::DeserializeOwned>(script: &str, args: &[String]) -> T {
    let out = std::process::Command::new("python3")
        .arg(format!(
            "{}/../../tests/interop/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(args)
        .output()
        .expect("python3 runs (scripts/test installs requirements-test.txt)");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Rows with numbers cut to 9 significant digits (two engines sum in different orders; the
/// integers compared here have fewer digits).
fn rounded(rows: &[Vec<serde_json::Value>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| match v.as_f64() {
                    Some(f) => format!("{f:.8e}"),
                    _ => v.to_string(),
                })
                .collect()
        })
        .collect()
}

crate::on_every_backend!(full_flights_land_crawl_load_query);
