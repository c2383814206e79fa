//! Times what `bench/run.py` compares with DuckDB: loading flights.csv into a trusted Delta
//! table (with and without its data contract) and the analytical queries of
//! `bench/queries.sql` over it (`{t}` is the flights table, `{airlines}` the airlines table).
//!
//! usage: cargo run --release -p tarn-lake --example bench -- CSV QUERIES.sql RUNS CONTRACT.yml AIRLINES.csv
//! Prints one JSON object: seconds per step (median of RUNS); queries also cold (first query of
//! a freshly opened lake, median of RUNS lakes) and their rows (as JSON arrays), for the caller to compare.

use std::time::Instant;
use tarn_lake::{Lake, LoadArgs, Selection};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn fresh_lake(contract: Option<&str>) -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tarn.yml"),
        "lake: bench\ndomains: [flights]\n",
    )
    .unwrap();
    if let Some(c) = contract {
        std::fs::create_dir_all(dir.path().join("contracts")).unwrap();
        std::fs::write(dir.path().join("contracts/flights.yml"), c).unwrap();
    }
    let lake = Lake::open(dir.path(), &Selection::default()).await.unwrap();
    (dir, lake)
}

async fn time_load(csv: &str, contract: Option<&str>) -> (f64, usize, usize) {
    let (_dir, lake) = fresh_lake(contract).await;
    let start = Instant::now();
    let r = lake
        .load(&LoadArgs::append("flights.trusted.flights", csv))
        .await
        .unwrap();
    (
        start.elapsed().as_secs_f64(),
        r.rows_written,
        r.rows_rejected,
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (csv, queries, runs, contract, airlines) = (
        &args[1],
        &args[2],
        args[3].parse::<usize>().unwrap(),
        &args[4],
        &args[5],
    );
    let contract = std::fs::read_to_string(contract).unwrap();
    let queries = tarn_lake::testing::bench_queries(&std::fs::read_to_string(queries).unwrap());

    let mut out = serde_json::Map::new();
    for (name, c) in [
        ("load_contract", Some(contract.as_str())),
        ("load_plain", None),
    ] {
        let mut times = vec![];
        let mut rows = (0, 0);
        for _ in 0..runs {
            let (t, w, r) = time_load(csv, c).await;
            times.push(t);
            rows = (w, r);
        }
        out.insert(name.into(), serde_json::json!({"seconds": median(times), "rows_written": rows.0, "rows_rejected": rows.1}));
    }

    let (dir, lake) = fresh_lake(None).await;
    lake.load(&LoadArgs::append("flights.trusted.flights", csv.clone()))
        .await
        .unwrap();
    lake.load(&LoadArgs::append(
        "flights.trusted.airlines",
        airlines.clone(),
    ))
    .await
    .unwrap();
    for (i, q) in queries.iter().enumerate() {
        // Cold: a freshly opened lake, as a one-shot `tarn sql` sees it (a new one each run).
        let mut colds = vec![];
        let mut r = None;
        for _ in 0..runs {
            let cold_lake = Lake::open(dir.path(), &Selection::default()).await.unwrap();
            let start = Instant::now();
            r = Some(cold_lake.sql(q, &Default::default()).await.unwrap());
            colds.push(start.elapsed().as_secs_f64());
        }
        let (r, cold) = (r.expect("at least one run"), median(colds));
        // Warm: the same lake queried again, as a server or notebook sees it (two warm-ups).
        for _ in 0..2 {
            lake.sql(q, &Default::default()).await.unwrap();
        }
        let mut times = vec![];
        for _ in 0..runs {
            let start = Instant::now();
            lake.sql(q, &Default::default()).await.unwrap();
            times.push(start.elapsed().as_secs_f64());
        }
        out.insert(
            format!("q{}", i + 1),
            serde_json::json!({"seconds": median(times), "cold_seconds": cold, "rows": r.rows(), "values": tarn_lake::testing::json_rows(&r)}),
        );
    }
    println!("{}", serde_json::Value::Object(out));
}
