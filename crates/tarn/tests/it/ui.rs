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
    // A pipeline whose step writes a script to its log, then waits: the browser watches the
    // line arrive as text and cancels the execution.
    let slow = lake.join("pipelines/slow");
    std::fs::create_dir_all(&slow).unwrap();
    std::fs::write(
        slow.join("config.yml"),
        "name: slow\ndomain: flights\nlayers: {origin: raw, target: trusted}\ntriggers:\n  - s3:\n      prefix: slow/\n      suffix: .txt\nsteps:\n  Wait:\n    type: command\n    properties:\n      command:\n        - python3\n        - -c\n        - \"import sys, time; time.sleep(2); print('<script>alert(2)</script>', file=sys.stderr, flush=True); time.sleep(300)\"\n      timeout_seconds: 600\n",
    )
    .unwrap();
    let served = Served::start_checked(&lake, &[]);
    // Predictions like the training data, then drifted ones; the monitor alerts and the alert
    // retrains (a version pending approval) for the browser to look at and approve.
    for args in [&[][..], &["--scale", "distance=2"][..]] {
        let out = std::process::Command::new("python3")
            .arg(lake.join("send_requests.py"))
            .args(["--url", &served.url])
            .args(args)
            .current_dir(&lake)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    until("the inference log lands 500 rows", &|| {
        let out = tarn(
            &lake,
            &[
                "sql",
                "SELECT count(*) AS n FROM flights.service.inference_arrival_delay",
                "--format",
                "json",
            ],
        );
        out.status.success() && json_of(&String::from_utf8_lossy(&out.stdout))[0]["n"] == 500
    });
    ok(&tarn(&lake, &["monitors", "run", "arrival_delay"]));
    until("the alert retrains a version pending approval", &|| {
        let out = tarn(&lake, &["models", "versions", "delays", "--format", "json"]);
        out.status.success()
            && json_of(&String::from_utf8_lossy(&out.stdout))
                .as_array()
                .is_some_and(|v| v.len() == 2)
    });
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
            "hostile-table",
            "slow-executions",
            "execution-running",
            "execution-cancelled",
            "overview",
            "catalog",
            "table",
            "sql-editor",
            "sql-result",
            "dashboard-saved",
            "executions",
            "execution",
            "pipelines",
            "pipeline",
            "experiments",
            "experiment",
            "run",
            "dashboards",
            "dashboard",
            "monitors",
            "monitor",
            "models",
            "model",
            "model-approved",
            "model-aliased",
            "version-run",
            "run-artifacts",
            "endpoints",
            "endpoint",
            "endpoint-answered"
        ]),
        "{seen:#}"
    );
    assert_eq!(seen["titles"]["table"], "flights.trusted.flights");
    // Markup in a column's name (which the crawler turns into an identifier), a cell and a log
    // line is shown as text and never runs.
    assert!(
        seen["hostile_header"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("_img_src_x_onerror_alert_1__")),
        "{seen:#}"
    );
    assert!(
        seen["hostile_cells"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("<script>alert(3)</script>")),
        "{seen:#}"
    );
    assert_eq!(seen["log_line"], "<script>alert(2)</script>", "{seen:#}");
    assert_eq!(seen["attempt_after_cancel"], "cancelled", "{seen:#}");
    assert_eq!(
        seen["logs_after_cancel"], "<script>alert(2)</script>",
        "a cancelled attempt keeps what it printed: {seen:#}"
    );
    assert_eq!(
        seen["hostile_result_header"],
        serde_json::json!(["<img src=x onerror=alert(1)>", "n"]),
        "{seen:#}"
    );
    assert!(
        seen["hostile_chart_choices"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("<img src=x onerror=alert(1)>")),
        "{seen:#}"
    );
    assert_eq!(seen["no_alert_in_sql"], true);
    assert_eq!(seen["no_alert"], true);
    assert_eq!(seen["no_alert_in_logs"], true);
    assert_eq!(seen["after_cancel"], "cancelled", "{seen:#}");
    // The table page says what writes and reads it: the quickstart's pipeline merges a day
    // into it (its SQL step), the training reads it; and the rows its loads rejected, why.
    let uses = seen["table_uses"].as_array().unwrap();
    assert!(
        uses.contains(&serde_json::json!([
            "writes",
            "pipeline daily_flights",
            "step `MergeDay` writes it (merge)"
        ])),
        "{seen:#}"
    );
    assert!(
        uses.iter()
            .any(|u| u[0] == "reads" && u[1] == "training delays"),
        "{seen:#}"
    );
    // Its data contract: each column's rule as contracts/flights.trusted.flights.yml says.
    let contract = seen["contract"].as_array().unwrap();
    assert!(
        contract.contains(&serde_json::json!(["air_time", "double", "no"]))
            && contract.contains(&serde_json::json!(["tailnum", "string", "yes"])),
        "{seen:#}"
    );
    let rejected = json_of(&ok(&tarn(
        &lake,
        &[
            "sql",
            "SELECT count(*) AS n FROM flights.trusted.flights_rejected",
            "--format",
            "json",
        ],
    )));
    assert_eq!(
        seen["rejected_heading"],
        format!("Rejected rows ({})", rejected[0]["n"]),
        "{seen:#}"
    );
    assert!(
        !seen["rejected_reasons"].as_array().unwrap().is_empty(),
        "{seen:#}"
    );
    // The query saved as a tile of a new dashboard, written beside tarn.yml.
    assert_eq!(
        seen["saved_tile"],
        serde_json::json!(["dashboards/browser", "Flights by <carrier>"]),
        "{seen:#}"
    );
    let saved = std::fs::read_to_string(lake.join("dashboards/browser.yml")).unwrap();
    assert!(saved.contains("chart: \"bar\""), "{saved}");
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
    // The pipeline's graph has a node per step; the training's runs are listed.
    assert_eq!(
        seen["graph_nodes"],
        serde_json::json!(["CheckFile", "MergeDay", "catch"]),
        "{seen:#}"
    );
    assert!(seen["runs"].as_u64().unwrap() >= 1, "{seen:#}");
    // The quickstart's dashboard: its numbers are what the same SQL gives, its charts drawn.
    assert_eq!(seen["tile_errors"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["tile_charts"], 2, "{seen:#}");
    let flights = json_of(&ok(&tarn(
        &lake,
        &[
            "sql",
            "SELECT count(*) AS flights FROM flights.trusted.flights",
            "--format",
            "json",
        ],
    )));
    assert_eq!(
        seen["tile_numbers"][0],
        flights[0]["flights"].to_string(),
        "{seen:#}"
    );
    // The monitor's page charts its checks and lists the distance alert.
    assert!(seen["monitor_charts"].as_u64().unwrap() >= 3, "{seen:#}");
    // The baseline it compares with: the training set's features, profiled.
    let baseline = seen["baseline_fields"].as_array().unwrap();
    for f in ["dep_delay", "distance", "hour", "minute"] {
        assert!(baseline.contains(&serde_json::json!(f)), "{seen:#}");
    }
    assert!(
        seen["monitor_alerts"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["drift", "distance"])),
        "{seen:#}"
    );
    // The pending version was approved in the browser: both versions approved, the decision
    // recorded with its reason and its event.
    assert_eq!(
        seen["approvals"],
        serde_json::json!(["Approved", "Approved"]),
        "{seen:#}"
    );
    let versions = json_of(&ok(&tarn(
        &lake,
        &["models", "versions", "delays", "--format", "json"],
    )));
    let v2 = versions
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == "2")
        .unwrap();
    assert_eq!(
        v2["approval"]["reason"],
        "retrained on drifted data; checked by the browser test"
    );
    let events = json_of(&ok(&tarn(
        &lake,
        &[
            "events",
            "--kind",
            "model.version.approved",
            "--format",
            "json",
        ],
    )));
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "delays/2"),
        "{events:#}"
    );
    // The alias set in the page, as the registry has it.
    assert!(
        seen["aliases"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["@browser", "→ version 2"])),
        "{seen:#}"
    );
    assert!(
        v2["aliases"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("browser")),
        "{v2:#}"
    );
    // From version 2 to its run, its model folder, and the MLmodel downloaded.
    assert!(
        seen["version_run"].as_str().unwrap().starts_with("Run "),
        "{seen:#}"
    );
    assert!(
        seen["artifact_files"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("MLmodel")),
        "{seen:#}"
    );
    assert_eq!(
        seen["mlmodel_download"],
        serde_json::json!([
            "attachment; filename=\"MLmodel\"; filename*=UTF-8''MLmodel",
            true
        ]),
        "{seen:#}"
    );
    // The endpoint's page charts the 500 requests sent, builds its form from the signature
    // (the five features) and answers a request sent from it.
    assert_eq!(seen["endpoint_charts"], 3, "{seen:#}");
    assert_eq!(seen["endpoint_requests"], 500, "{seen:#}");
    assert_eq!(
        seen["form_fields"],
        serde_json::json!([
            "field.dep_delay",
            "field.distance",
            "field.hour",
            "field.minute",
            "field.day"
        ]),
        "{seen:#}"
    );
    assert_eq!(seen["answer"], serde_json::json!(["200", true]), "{seen:#}");
    for page in seen["pages"].as_array().unwrap() {
        assert!(shots
            .join(format!("{}.png", page.as_str().unwrap()))
            .exists());
    }
    served.stop();

    // Under --auth, signed in with a read-only token: no control that writes, a forged form
    // refused even with the page's own CSRF token; signing out ends the session.
    let out = ok(&tarn(
        &lake,
        &["token", "create", "--name", "viewer", "--read-only"],
    ));
    let token = out.trim().to_string();
    let served = Served::start_checked(&lake, &["--auth"]);
    let seen = crate::python_check(
        "ui_browser.py",
        &[
            &served.url,
            shots.to_str().unwrap(),
            &format!("read-only:{token}"),
        ],
        None,
    );
    assert_eq!(seen["problems"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["redirected_to"], "sign-in", "{seen:#}");
    assert_eq!(seen["who"], "viewer (read-only) Sign out", "{seen:#}");
    assert_eq!(seen["write_controls"], 0, "{seen:#}");
    assert_eq!(seen["execution_controls"], 0, "{seen:#}");
    // The session cookie reaches the UI's logs path (the API takes bearer tokens only).
    assert_eq!(seen["logs_with_session"][0], 200, "{seen:#}");
    assert_eq!(seen["forged"], 403, "{seen:#}");
    assert_eq!(seen["after_sign_out"], "sign-in", "{seen:#}");
    let model = json_of(&ok(&tarn(
        &lake,
        &["models", "versions", "delays", "--format", "json"],
    )));
    assert!(!model.to_string().contains("forged"), "{model:#}");
    served.stop();
}
