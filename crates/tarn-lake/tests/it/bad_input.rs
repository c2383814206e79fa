//! Bad input gets a clear error or a rejection with a reason, and loses nothing stored.

use crate::support::*;
use object_store::ObjectStoreExt;
use tarn_lake::{Lake, LandOptions, LoadArgs, LoadMode, Selection};

fn load_args(source: &str) -> LoadArgs {
    LoadArgs {
        table: "flights.trusted.airlines".into(),
        source: source.into(),
        format: None,
        mode: LoadMode::Append,
        key: vec![],
        again: false,
    }
}

async fn bad_files_are_rejected_or_refused_and_nothing_is_lost(deployment: Deployment) {
    let (dir, lake) = lake(deployment, FLIGHTS_YML, &[]).await;
    let airlines = data_dir().join("airlines.csv");
    lake.land(
        &airlines,
        "flights/raw/airlines/airlines.csv",
        &LandOptions::default(),
        &noop,
    )
    .await
    .unwrap();
    let first = lake
        .load(&load_args(airlines.to_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(first.row_count, 16);

    // Malformed rows: each set aside with its line and why; the good rows load.
    let malformed = dir.path().join("malformed.csv");
    std::fs::write(
        &malformed,
        "carrier,name\nQQ,Good One\nbroken\nXX,Too,Many,Fields\nYY,Fine Air\n",
    )
    .unwrap();
    let out = lake
        .load(&load_args(malformed.to_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(out.rows_written, 2);
    assert_eq!(out.rows_rejected, 2);
    let why = lake
        .sql(
            "SELECT _line, _reason, _raw FROM flights.trusted.airlines_rejected ORDER BY _line",
            &Default::default(),
        )
        .await
        .unwrap();
    let b = &why.batches[0];
    let text = |c: usize, r: usize| {
        arrow::util::display::ArrayFormatter::try_new(b.column(c).as_ref(), &Default::default())
            .unwrap()
            .value(r)
            .to_string()
    };
    assert_eq!(text(0, 0), "3");
    assert!(
        text(1, 0).contains("expected 2 fields, found 1"),
        "{}",
        text(1, 0)
    );
    assert_eq!(text(2, 0), "broken");
    assert_eq!(text(0, 1), "4");
    assert!(text(1, 1).contains("found 4"), "{}", text(1, 1));

    // An empty file and a binary file named .csv: refused by load, skipped by the crawler.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let png = dir.path().join("image.csv");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01").unwrap();
    let err = lake
        .load(&load_args(empty.to_str().unwrap()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    let err = lake
        .load(&load_args(png.to_str().unwrap()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("binary") && err.contains("image.csv"), "{err}");
    lake.land(
        &empty,
        "flights/raw/airlines/empty.csv",
        &LandOptions::default(),
        &noop,
    )
    .await
    .unwrap();
    lake.land(
        &png,
        "flights/raw/airlines/image.csv",
        &LandOptions::default(),
        &noop,
    )
    .await
    .unwrap();
    let report = lake.crawl(Some("flights/raw")).await.unwrap();
    let skipped: Vec<(String, String)> = report
        .skipped
        .iter()
        .map(|s| (s.key.clone(), s.reason.clone()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped
            .iter()
            .any(|(k, r)| k.ends_with("empty.csv") && r.contains("empty")),
        "{skipped:?}"
    );
    assert!(
        skipped
            .iter()
            .any(|(k, r)| k.ends_with("image.csv") && r.contains("binary")),
        "{skipped:?}"
    );
    let t = lake.table("flights.raw.airlines").await.unwrap();
    assert_eq!(
        t.record.columns.len(),
        2,
        "the bad files did not disturb the schema"
    );

    // Hostile keys: refused, nothing written.
    for key in [
        "../escape.csv",
        "/etc/passwd",
        "a/../../b.csv",
        "nul\0.csv",
        "new\nline.csv",
        "a//b.csv",
    ] {
        let err = lake
            .land(
                &airlines,
                &format!("flights/raw/{key}"),
                &LandOptions::default(),
                &noop,
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("refused"), "{key:?}: {err}");
    }
    let escaped = lake.zones.store().head(&"flights/escape.csv".into()).await;
    assert!(escaped.is_err(), "nothing lands outside a zone");
    // A raw object is never silently replaced.
    let err = lake
        .land(
            &malformed,
            "flights/raw/airlines/airlines.csv",
            &LandOptions::default(),
            &noop,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("append-only") && err.contains("--force"),
        "{err}"
    );

    // Unknown zones and tables get a did-you-mean.
    let err = lake.ls("flihgts/raw").await.unwrap_err().to_string();
    assert!(err.contains("did you mean `flights`"), "{err}");
    let err = lake
        .table("flights.trusted.airline")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not in the catalog"), "{err}");

    // A wrong config names the file, the line and the fix; the lake is untouched.
    let original = std::fs::read_to_string(dir.path().join("tarn.yml")).unwrap();
    std::fs::write(
        dir.path().join("tarn.yml"),
        "lake: test\ndomains: [flights]\nlayer: [raw]\n",
    )
    .unwrap();
    let err = Lake::open(dir.path(), &Selection::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tarn.yml:3"), "{err}");
    assert!(err.contains("did you mean `layers`"), "{err}");
    std::fs::write(dir.path().join("tarn.yml"), original).unwrap();

    // Everything stored before is still there.
    let lake = Lake::open(dir.path(), &Selection::default()).await.unwrap();
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.trusted.airlines").await,
        "18"
    );
    let keys: Vec<String> = lake
        .ls("flights/raw")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        keys,
        [
            "airlines/airlines.csv",
            "airlines/empty.csv",
            "airlines/image.csv"
        ]
    );
    let zone = lake.zones.zone("flights", "raw").unwrap();
    assert_eq!(
        lake.zones
            .read(&zone, "airlines/airlines.csv")
            .await
            .unwrap()
            .as_ref(),
        std::fs::read(&airlines).unwrap().as_slice()
    );
}

async fn a_contract_that_does_not_fit_is_refused_with_its_place(deployment: Deployment) {
    let contract = "table: flights.trusted.airlines\ncolumns:\n  - { name: carrier, type: string }\n  - { name: founded, type: int }\n";
    let (_dir, lake) = lake(deployment, FLIGHTS_YML, &[("airlines.yml", contract)]).await;
    let err = lake
        .load(&load_args(
            data_dir().join("airlines.csv").to_str().unwrap(),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("airlines.yml") && err.contains("founded"),
        "{err}"
    );
    assert!(
        lake.tables(None, None).await.unwrap().is_empty(),
        "nothing written"
    );

    // A contract naming a zone the lake lacks is refused where it matters (a table of
    // that zone cannot be loaded at all), and does not stop loads into other tables.
    let bad_domain = "table: cars.trusted.x\ncolumns:\n  - { name: a, type: int }\n";
    let (_dir, lake) = lake_with(deployment, bad_domain).await;
    let report = lake
        .load(&load_args(
            data_dir().join("airlines.csv").to_str().unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(report.row_count, 16);

    // One broken contract file fails only the loads of the table it names.
    let broken = "table: flights.trusted.airlines\ncolumns:\n  - { name: carrier, type: strng }\n";
    let (_dir, lake) = lake_with(deployment, broken).await;
    let err = lake
        .load(&load_args(
            data_dir().join("airlines.csv").to_str().unwrap(),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.yml") && err.contains("strng"), "{err}");
    let mut planes = load_args(data_dir().join("planes.csv").to_str().unwrap());
    planes.table = "flights.trusted.planes".into();
    assert_eq!(lake.load(&planes).await.unwrap().row_count, 3322);
}

async fn lake_with(deployment: Deployment, contract: &str) -> (tempfile::TempDir, Lake) {
    lake(deployment, FLIGHTS_YML, &[("x.yml", contract)]).await
}

crate::on_every_backend!(
    bad_files_are_rejected_or_refused_and_nothing_is_lost,
    a_contract_that_does_not_fit_is_refused_with_its_place
);

/// A commit file cut short (a disk filled mid-write, a bad copy): the error names the table and
/// the file, without a backtrace, and nothing is written over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_commit_is_named_with_its_table_and_file() {
    let (dir, lake) = lake(Deployment::Embedded, FLIGHTS_YML, &[]).await;
    let csv = dir.path().join("a.csv");
    std::fs::write(&csv, "id,v\n1,a\n").unwrap();
    lake.load(&load_args(csv.to_str().unwrap())).await.unwrap();
    std::fs::write(&csv, "id,v\n2,b\n").unwrap();
    lake.load(&load_args(csv.to_str().unwrap())).await.unwrap();
    let log = dir
        .path()
        .join("lake/dev/flights/trusted/airlines/_delta_log/00000000000000000001.json");
    let text = std::fs::read(&log).unwrap();
    std::fs::write(&log, &text[..text.len() / 2]).unwrap();
    std::fs::write(&csv, "id,v\n3,c\n").unwrap();
    let names_the_commit = |err: &str| {
        err.contains("flights/trusted/airlines") && err.contains("00000000000000000001.json")
    };
    let err = lake
        .load(&load_args(csv.to_str().unwrap()))
        .await
        .unwrap_err()
        .to_string();
    assert!(names_the_commit(&err), "{err}");
    assert!(!err.contains("   0: "), "no backtrace: {err}");
    assert_eq!(std::fs::read(&log).unwrap(), &text[..text.len() / 2]);
    // A query says the same: the log is not read as if the cut commit were not there.
    let err = lake
        .sql(
            "SELECT count(*) FROM flights.trusted.airlines",
            &Default::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(names_the_commit(&err), "{err}");
}

/// A commit cut short while a long-lived process (a server) holds the table open and its rows
/// cached: the process's next query names the table and the file, without a backtrace, as a
/// fresh process's does; once the file is whole again it answers with the commit's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cut_short_is_named_to_a_long_lived_process() {
    let (dir, lake) = lake(Deployment::Embedded, FLIGHTS_YML, &[]).await;
    let csv = dir.path().join("a.csv");
    for rows in ["id,v\n1,a\n", "id,v\n2,b\n"] {
        std::fs::write(&csv, rows).unwrap();
        lake.load(&load_args(csv.to_str().unwrap())).await.unwrap();
    }
    let server = lake.clone().with_row_cache(64 << 20);
    let sql = "SELECT count(*) FROM flights.trusted.airlines";
    for _ in 0..3 {
        assert_eq!(scalar(&server, sql).await, "2");
    }
    // Another writer's commit 2, then its file cut short.
    std::fs::write(&csv, "id,v\n3,c\n").unwrap();
    lake.load(&load_args(csv.to_str().unwrap())).await.unwrap();
    let cut = dir
        .path()
        .join("lake/dev/flights/trusted/airlines/_delta_log/00000000000000000002.json");
    let whole = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    for _ in 0..2 {
        let err = server
            .sql(sql, &Default::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("flights/trusted/airlines") && err.contains("00000000000000000002.json"),
            "{err}"
        );
        assert!(!err.contains("   0: "), "no backtrace: {err}");
    }
    std::fs::write(&cut, &whole).unwrap();
    assert_eq!(scalar(&server, sql).await, "3");
}

/// What a crash or a hand leaves between the catalog and the Delta logs, `doctor` finds and
/// puts right: a table the catalog lacks, a stale row count, a table whose folder is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reconciles_the_catalog_with_the_delta_logs() {
    let (dir, lake) = lake(Deployment::Embedded, FLIGHTS_YML, &[]).await;
    let csv = dir.path().join("a.csv");
    std::fs::write(&csv, "id,v\n1,a\n2,b\n").unwrap();
    let mut args = load_args(csv.to_str().unwrap());
    lake.load(&args).await.unwrap();
    args.table = "flights.trusted.other".into();
    lake.load(&args).await.unwrap();
    let stale = std::time::Duration::from_secs(3600);
    assert!(lake.doctor(true, stale).await.unwrap().findings.is_empty());
    // The catalog forgets one table and miscounts the other; a third's folder is deleted.
    let airlines = lake
        .catalog()
        .table("flights_trusted", "airlines")
        .await
        .unwrap()
        .unwrap();
    lake.catalog()
        .set_row_count(&airlines.id, Some(99))
        .await
        .unwrap();
    let other = lake
        .catalog()
        .table("flights_trusted", "other")
        .await
        .unwrap()
        .unwrap();
    lake.catalog().forget_table(&other.id).await.unwrap();
    args.table = "flights.trusted.gone".into();
    lake.load(&args).await.unwrap();
    std::fs::remove_dir_all(dir.path().join("lake/dev/flights/trusted/gone")).unwrap();

    let found = lake.doctor(false, stale).await.unwrap();
    let mut kinds: Vec<(String, String)> = found
        .findings
        .iter()
        .map(|f| (f.kind.clone(), f.place.clone()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (
                "missing_log".to_string(),
                "flights.trusted.gone".to_string()
            ),
            ("stale_row_count".into(), "flights.trusted.airlines".into()),
            ("unregistered_table".into(), "flights.trusted.other".into()),
        ],
        "{found:?}"
    );
    assert!(found.findings.iter().all(|f| f.fixed));
    assert!(lake.doctor(true, stale).await.unwrap().findings.is_empty());
    let other = lake
        .catalog()
        .table("flights_trusted", "other")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.row_count, Some(2));
    assert_eq!(lake.catalog().loads(&other.id).await.unwrap().len(), 1);
    assert!(lake
        .catalog()
        .table("flights_trusted", "gone")
        .await
        .unwrap()
        .is_none());
}
