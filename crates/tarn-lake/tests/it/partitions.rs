//! The crawler on a hive-partitioned layout (year=/month=), incremental runs and schema merges.

use crate::support::*;
use std::collections::BTreeMap;
use tarn_lake::{LandOptions, TableChange};

async fn hive_layout_becomes_a_partitioned_table(deployment: Deployment) {
    let rows = read_csv(&flights_csv());
    let header = rows[0].clone();
    // Split the real flights by year and month, without those columns, as Hive lays them out.
    let mut by_month: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in &rows[1..] {
        by_month
            .entry((r[0].clone(), r[1].clone()))
            .or_default()
            .push(r[2..].join(","));
    }
    let src = tempfile::tempdir().unwrap();
    for ((year, month), lines) in &by_month {
        let d = src.path().join(format!("year={year}/month={month}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("part-0.csv"),
            format!("{}\n{}\n", header[2..].join(","), lines.join("\n")),
        )
        .unwrap();
    }
    let (dir, lake) = lake(deployment, FLIGHTS_YML, &[]).await;
    let landed = lake
        .land(
            src.path(),
            "flights/raw/by_month",
            &LandOptions::default(),
            &noop,
        )
        .await
        .unwrap();
    assert_eq!(landed.len(), 12);
    assert_eq!(lake.events_after(None, None, 100).await.unwrap().len(), 12);

    let report = lake.crawl(Some("flights")).await.unwrap();
    assert_eq!(report.count(TableChange::Created), 1, "{report:?}");
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let t = lake.table("flights.raw.by_month").await.unwrap();
    let keys: Vec<(&str, &str)> = t
        .record
        .partition_keys
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str()))
        .collect();
    assert_eq!(keys, [("year", "bigint"), ("month", "bigint")]);
    assert_eq!(t.partitions.len(), 12);
    assert!(!t.record.columns.iter().any(|c| c.name == "month"));

    // Partition values are queryable columns, and pruning gives the right answer.
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.raw.by_month").await,
        "336776"
    );
    assert_eq!(
        scalar(
            &lake,
            "SELECT count(*) FROM flights.raw.by_month WHERE month = 7"
        )
        .await,
        by_month[&("2013".to_string(), "7".to_string())]
            .len()
            .to_string()
    );

    // A second crawl reads nothing again.
    let again = lake.crawl(Some("flights/raw")).await.unwrap();
    assert_eq!(again.count(TableChange::Unchanged), 1);
    assert_eq!(again.unchanged_files, 12);
    assert!(again.tables.iter().all(|t| t.files_read == 0));

    // A new partition whose file adds a column and has a fractional delay: a new version
    // with the column added and the type widened; old versions kept.
    let extra = dir.path().join("extra.csv");
    let mut text = format!("{},note\n", header[2..].join(","));
    text.push_str(&format!(
        "{},late\n",
        rows[1][2..].join(",").replacen(",2,", ",2.5,", 1)
    ));
    std::fs::write(&extra, text).unwrap();
    lake.land(
        &extra,
        "flights/raw/by_month/year=2014/month=1/part-0.csv",
        &LandOptions::default(),
        &noop,
    )
    .await
    .unwrap();
    let third = lake.crawl(Some("flights/raw")).await.unwrap();
    assert_eq!(third.count(TableChange::Updated), 1, "{third:?}");
    let detail = third.tables[0].detail.clone().unwrap();
    assert!(detail.contains("new column note"), "{detail}");
    assert!(
        detail.contains("dep_delay widened bigint -> double"),
        "{detail}"
    );
    let t = lake.table("flights.raw.by_month").await.unwrap();
    assert_eq!(t.versions.len(), 2);
    assert_eq!(t.partitions.len(), 13);
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.raw.by_month").await,
        "336777"
    );
    assert_eq!(
        scalar(
            &lake,
            "SELECT dep_delay FROM flights.raw.by_month WHERE year = 2014"
        )
        .await,
        "2.5"
    );
}

async fn gzip_csv_json_lines_and_parquet_are_catalogued_and_queryable(deployment: Deployment) {
    use std::io::Write;
    let (dir, lake) = lake(deployment, FLIGHTS_YML, &[]).await;
    // weather.csv gzipped, semicolon-separated.
    let weather = read_csv(&data_dir().join("weather.csv"));
    let text: String = weather.iter().map(|r| r.join(";") + "\n").collect();
    let gz = dir.path().join("weather.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
    // planes.csv as JSON lines.
    let planes = read_csv(&data_dir().join("planes.csv"));
    let json = dir.path().join("planes.json");
    let lines: Vec<String> = planes[1..]
        .iter()
        .map(|r| {
            let obj: serde_json::Map<String, serde_json::Value> = planes[0]
                .iter()
                .zip(r)
                .map(|(k, v)| {
                    let v = match v.parse::<i64>() {
                        Ok(n) => serde_json::json!(n),
                        Err(_) if v == "NA" => serde_json::Value::Null,
                        Err(_) => serde_json::json!(v),
                    };
                    (k.clone(), v)
                })
                .collect();
            serde_json::Value::Object(obj).to_string()
        })
        .collect();
    std::fs::write(&json, lines.join("\n")).unwrap();
    let opts = LandOptions::default();
    lake.land(&gz, "flights/raw/weather/2013.csv.gz", &opts, &noop)
        .await
        .unwrap();
    lake.land(&json, "flights/raw/planes/planes.json", &opts, &noop)
        .await
        .unwrap();
    // A Parquet file: a table tarn wrote, exported with `sql --format parquet`.
    let airlines = data_dir().join("airlines.csv");
    lake.load(&tarn_lake::LoadArgs {
        table: "flights.trusted.airlines".into(),
        source: airlines.to_str().unwrap().into(),
        format: None,
        mode: tarn_lake::LoadMode::Append,
        key: vec![],
        again: false,
    })
    .await
    .unwrap();
    let result = lake
        .sql(
            "SELECT * FROM flights.trusted.airlines",
            &Default::default(),
        )
        .await
        .unwrap();
    let pq = dir.path().join("airlines.parquet");
    tarn_lake::write_result(
        &result,
        tarn_lake::OutputFormat::Parquet,
        &mut std::fs::File::create(&pq).unwrap(),
    )
    .unwrap();
    lake.land(&pq, "flights/raw/carriers/airlines.parquet", &opts, &noop)
        .await
        .unwrap();

    let report = lake.crawl(Some("flights/raw")).await.unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let w = lake.table("flights.raw.weather").await.unwrap();
    assert_eq!(w.record.parameters["compression"], "gzip");
    assert_eq!(w.record.parameters["delimiter"], ";");
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.raw.weather").await,
        (weather.len() - 1).to_string()
    );
    assert_eq!(
        scalar(
            &lake,
            "SELECT count(*) FROM flights.raw.weather WHERE wind_gust IS NULL"
        )
        .await,
        weather[1..]
            .iter()
            .filter(|r| r[10] == "NA")
            .count()
            .to_string()
    );
    let p = lake.table("flights.raw.planes").await.unwrap();
    assert_eq!(p.record.format, "json");
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.raw.planes").await,
        (planes.len() - 1).to_string()
    );
    assert_eq!(
        scalar(
            &lake,
            "SELECT arrow_typeof(seats) FROM flights.raw.planes LIMIT 1"
        )
        .await,
        "Int64"
    );
    let c = lake.table("flights.raw.carriers").await.unwrap();
    assert_eq!(c.record.format, "parquet");
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.raw.carriers").await,
        "16"
    );
}

crate::on_every_backend!(
    hive_layout_becomes_a_partitioned_table,
    gzip_csv_json_lines_and_parquet_are_catalogued_and_queryable
);
