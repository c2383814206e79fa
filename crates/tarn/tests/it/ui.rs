//! The web UI in a real browser, over the quickstart lake served by `tarn serve`: every page
//! opens without a console error (the Content-Security-Policy refuses inline script, so a
//! page that broke it would say so there), a query run with Ctrl+Enter answers what
//! `tarn sql` answers and is charted, the execution's timeline is drawn; a screenshot of each
//! page is written under the target folder's `ui-screenshots`.

use crate::server::Served;
use crate::{json_of, ok, tarn};

#[test]
fn every_ui_page_opens_in_chromium_without_a_console_error() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("qs");
    ok(&tarn(dir.path(), &["quickstart", lake.to_str().unwrap()]));
    let served = Served::start_checked(&lake, &[]);
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let seen = crate::python_check(
        "ui_browser.py",
        &[&served.url, shots.to_str().unwrap()],
        None,
    );
    assert_eq!(seen["problems"], serde_json::json!([]), "{seen:#}");
    assert_eq!(
        seen["pages"],
        serde_json::json!([
            "overview",
            "catalog",
            "table",
            "sql-editor",
            "sql-result",
            "executions",
            "execution"
        ]),
        "{seen:#}"
    );
    assert_eq!(seen["titles"]["table"], "flights.trusted.flights");
    // The rows the page shows are the rows `tarn sql` answers.
    let want = json_of(&ok(&tarn(
        &lake,
        &[
            "sql",
            "SELECT carrier, count(*) AS flights FROM flights.trusted.flights GROUP BY carrier ORDER BY flights DESC, carrier",
            "--format",
            "json",
        ],
    )));
    let want: Vec<serde_json::Value> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::json!([r["carrier"], r["flights"].to_string()]))
        .collect();
    let rows = seen["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.len(), "{seen:#}");
    assert_eq!(rows[..5], want[..5.min(want.len())], "{seen:#}");
    assert_eq!(
        seen["recent"][0],
        "SELECT carrier, count(*) AS flights FROM flights.trusted.flights GROUP BY carrier ORDER BY flights DESC, carrier"
    );
    // Each attempt is a bar placed by the script (left and width from its times).
    let bars = seen["timeline_bars"].as_array().unwrap();
    assert!(!bars.is_empty(), "{seen:#}");
    assert!(
        bars.iter().all(|b| b.as_str().unwrap().contains("width")),
        "{seen:#}"
    );
    for page in seen["pages"].as_array().unwrap() {
        assert!(shots
            .join(format!("{}.png", page.as_str().unwrap()))
            .exists());
    }
    served.stop();
}
