//! The `tarn` command as a user runs it: a real process, real files, its output read back.

use std::path::Path;
use std::process::{Command, Output};

fn tarn(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tarn"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("TARN_ENV")
        .env_remove("TARN_WORKSPACE")
        .output()
        .expect("tarn runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn help_reads_like_a_table_of_contents() {
    let dir = tempfile::tempdir().unwrap();
    let help = ok(&tarn(dir.path(), &["--help"]));
    for section in [
        "Set up a lake:",
        "Catalog:",
        "Tables and SQL:",
        "quickstart",
        "crawl",
        "sql",
    ] {
        assert!(help.contains(section), "{section} missing from:\n{help}");
    }
    let load = ok(&tarn(dir.path(), &["help", "load"]));
    assert!(
        load.contains("Examples:") && load.contains("--mode merge"),
        "{load}"
    );
}

#[test]
fn quickstart_builds_a_lake_a_user_can_explore() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("qs");
    let out = ok(&tarn(dir.path(), &["quickstart", lake.to_str().unwrap()]));
    assert!(out.contains("rows written"), "{out}");
    assert!(out.contains("flights.service.delays_by_carrier"), "{out}");

    // JSON a program can read: the tables it made.
    let tables: serde_json::Value =
        serde_json::from_str(&ok(&tarn(&lake, &["tables", "--format", "json"]))).unwrap();
    let names: Vec<&str> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "flights.raw.airlines",
            "flights.raw.flights",
            "flights.service.delays_by_carrier",
            "flights.trusted.flights",
            "flights.trusted.flights_rejected"
        ]
    );
    // The sample holds 3000 flights; 40 were cancelled (no air_time) and rejected.
    let rows: serde_json::Value = serde_json::from_str(&ok(&tarn(
        &lake,
        &["sql", "SELECT (SELECT count(*) FROM flights.trusted.flights) AS ok, (SELECT count(*) FROM flights.trusted.flights_rejected) AS bad", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(rows[0]["ok"], 2960);
    assert_eq!(rows[0]["bad"], 40);

    // Running it again is safe: same lake, nothing duplicated in raw.
    ok(&tarn(dir.path(), &["quickstart", lake.to_str().unwrap()]));
    let events: serde_json::Value =
        serde_json::from_str(&ok(&tarn(&lake, &["events", "--format", "json"]))).unwrap();
    assert_eq!(events.as_array().unwrap().len(), 2);

    // CSV and Parquet output.
    let csv = ok(&tarn(
        &lake,
        &[
            "sql",
            "SELECT carrier FROM flights.raw.airlines ORDER BY carrier LIMIT 2",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(csv, "carrier\n9E\nAA\n");
    let pq = dir.path().join("out.parquet");
    ok(&tarn(
        &lake,
        &[
            "sql",
            "SELECT * FROM flights.trusted.flights",
            "--format",
            "parquet",
            "--output",
            pq.to_str().unwrap(),
        ],
    ));
    assert_eq!(&std::fs::read(&pq).unwrap()[..4], b"PAR1");
}

#[test]
fn errors_exit_non_zero_and_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    ok(&tarn(dir.path(), &["init"]));
    let yml = std::fs::read_to_string(dir.path().join("tarn.yml")).unwrap();
    assert!(yml.contains("# tarn.yml"));
    let out = tarn(dir.path(), &["init"]);
    assert!(!out.status.success());

    let f = dir.path().join("a.csv");
    std::fs::write(&f, "a,b\n1,2\n").unwrap();
    let out = tarn(
        dir.path(),
        &["land", f.to_str().unwrap(), "flights/raw/../../x.csv"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error:") && err.contains("escape the zone"),
        "{err}"
    );

    let out = tarn(dir.path(), &["sql", "SELEC 1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1, column"), "{err}");

    std::fs::write(
        dir.path().join("tarn.yml"),
        "lake: x\ndomains: [flights]\ntopics:\n  - name: a\n    domian: flights\n",
    )
    .unwrap();
    let out = tarn(dir.path(), &["tables"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tarn.yml:5") && err.contains("did you mean `domain`"),
        "{err}"
    );
}

#[test]
fn land_and_ls_over_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tarn.yml"), "lake: x\ndomains: [flights]\n").unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("2013")).unwrap();
    std::fs::write(src.join("2013/a.csv"), "a\n1\n").unwrap();
    std::fs::write(src.join("b.csv"), "a\n2\n").unwrap();
    let out = ok(&tarn(
        dir.path(),
        &[
            "land",
            src.to_str().unwrap(),
            "flights/raw/drop",
            "--format",
            "json",
        ],
    ));
    let landed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(landed.as_array().unwrap().len(), 2);
    let ls = ok(&tarn(dir.path(), &["ls", "flights/raw/drop/2013"]));
    assert!(
        ls.contains("drop/2013/a.csv") && !ls.contains("b.csv"),
        "{ls}"
    );
}
