//! A flush cut short at each point, on both deployments: its commits are rolled back when its
//! state was not saved and some table missed its commit, and its state is saved when every
//! commit landed. (The whole path, with a real tap killed at random points, is tested by the
//! `tarn` command's tests.)

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::json;
use std::sync::Arc;
use tarn_ingest::{app_id, settle_pending, Settled};
use tarn_lake::testing::{fresh_yml, DEPLOYMENTS};
use tarn_lake::{Lake, Selection, StreamWrite};

fn ids(from: i64, to: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(from..=to))],
    )
    .unwrap()
}

async fn commit(lake: &Lake, table: &str, batch: RecordBatch, seq: i64) {
    let schema = batch.schema();
    lake.commit_stream(
        table,
        vec![batch],
        &schema,
        &StreamWrite::Append,
        &app_id("src"),
        seq,
        Default::default(),
        "test",
    )
    .await
    .unwrap();
}

async fn version(lake: &Lake, table: &str) -> Option<i64> {
    lake.stream_txn(table, &app_id("src")).await.unwrap().1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flush_cut_short_is_rolled_back_or_completed() {
    for deployment in DEPLOYMENTS {
        let dir = tempfile::tempdir().unwrap();
        let place = fresh_yml(deployment, dir.path()).await;
        std::fs::write(
            dir.path().join("tarn.yml"),
            format!("lake: t\ndomains: [flights]\n{place}taps:\n  - id: jsonl\n    name: src\n    domain: flights\n"),
        )
        .unwrap();
        let lake = Lake::open(dir.path(), &Selection::default()).await.unwrap();
        let (a, b, c) = (
            "flights.raw.src_a",
            "flights.raw.src_b",
            "flights.raw.src_c",
        );

        // Flush 1 went through.
        commit(&lake, a, ids(1, 3), 1).await;
        lake.taps()
            .save_state("src", 1, &json!({"n": 1}))
            .await
            .unwrap();
        assert_eq!(
            settle_pending(&lake, "src").await.unwrap(),
            Settled::Nothing
        );

        // Flush 2 committed into `a`, then the process died before `b` and the state.
        let before = version(&lake, a).await;
        lake.taps()
            .begin_flush(
                "src",
                &json!({"seq": 2, "state": {"n": 2}, "tables": [
                {"table": a, "version": before, "commits": 1},
                {"table": b, "version": null, "commits": 1}]}),
            )
            .await
            .unwrap();
        commit(&lake, a, ids(4, 6), 2).await;
        assert_eq!(lake.table_rows(a).await.unwrap(), 6);
        assert_eq!(
            settle_pending(&lake, "src").await.unwrap(),
            Settled::RolledBack {
                seq: 2,
                tables: vec![a.to_string()]
            },
            "{deployment:?}"
        );
        assert_eq!(
            lake.table_rows(a).await.unwrap(),
            3,
            "the rows of the cut flush are gone"
        );
        let saved = lake.taps().state("src").await.unwrap().unwrap();
        assert_eq!(
            (saved.seq, saved.state, saved.pending),
            (1, json!({"n": 1}), serde_json::Value::Null)
        );

        // Flush 3 committed into both tables, then the process died before saving the state.
        let (va, vb) = (version(&lake, a).await, version(&lake, b).await);
        lake.taps()
            .begin_flush(
                "src",
                &json!({"seq": 3, "state": {"n": 3}, "tables": [
                {"table": a, "version": va, "commits": 1},
                {"table": b, "version": vb, "commits": 1}]}),
            )
            .await
            .unwrap();
        commit(&lake, a, ids(4, 6), 3).await;
        commit(&lake, b, ids(1, 2), 3).await;
        assert_eq!(
            settle_pending(&lake, "src").await.unwrap(),
            Settled::Completed { seq: 3 }
        );
        let saved = lake.taps().state("src").await.unwrap().unwrap();
        assert_eq!((saved.seq, saved.state), (3, json!({"n": 3})));
        assert_eq!(
            (
                lake.table_rows(a).await.unwrap(),
                lake.table_rows(b).await.unwrap()
            ),
            (6, 2)
        );

        // Flush 4 created `c` and died before `a`: `c` is emptied (it did not exist before).
        let va = version(&lake, a).await;
        lake.taps()
            .begin_flush(
                "src",
                &json!({"seq": 4, "state": {"n": 4}, "tables": [
                {"table": c, "version": null, "commits": 1},
                {"table": a, "version": va, "commits": 1}]}),
            )
            .await
            .unwrap();
        commit(&lake, c, ids(1, 5), 4).await;
        assert_eq!(
            settle_pending(&lake, "src").await.unwrap(),
            Settled::RolledBack {
                seq: 4,
                tables: vec![c.to_string()]
            }
        );
        assert_eq!(lake.table_rows(c).await.unwrap(), 0);
        assert_eq!(lake.table_rows(a).await.unwrap(), 6);
        assert_eq!(lake.taps().state("src").await.unwrap().unwrap().seq, 3);
    }
}
