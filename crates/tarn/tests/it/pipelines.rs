//! Pipelines as users run them: the seed's example folder unchanged, triggered by landing a
//! file through `tarn serve` on both deployments; failures through catch and topics to a real
//! HTTP receiver and a file; `tarn pipelines validate` on a broken folder.

use crate::server::Served;
use crate::{ok, tarn};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use tarn_lake::testing::{fresh_yml, Deployment};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/pipelines");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == ".tarn" || name == "lake" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(name));
        } else {
            std::fs::copy(e.path(), to.join(name)).unwrap();
        }
    }
}

/// The example lake in a fresh folder, on `deployment`, with `extra` appended to tarn.yml.
fn example_lake(deployment: Deployment, extra: &str) -> tempfile::TempDir {
    example_at(Path::new(EXAMPLE), deployment, extra)
}

/// The example lake at `example` in a fresh folder, on `deployment`, with `extra` appended to
/// tarn.yml.
pub(crate) fn example_at(example: &Path, deployment: Deployment, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(example, dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let place = rt.block_on(fresh_yml(deployment, dir.path()));
    let yml = std::fs::read_to_string(dir.path().join("tarn.yml")).unwrap();
    std::fs::write(dir.path().join("tarn.yml"), format!("{yml}{extra}{place}")).unwrap();
    dir
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn executions(dir: &Path) -> Vec<serde_json::Value> {
    json(&tarn(dir, &["executions", "list", "--format", "json"]))
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until `n` executions have ended; answers them.
fn ended(dir: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all = executions(dir);
        let done: Vec<_> = all
            .iter()
            .filter(|e| {
                ["succeeded", "failed", "cancelled"].contains(&e["status"].as_str().unwrap())
            })
            .cloned()
            .collect();
        if done.len() >= n {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "executions did not end: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn seed_example_runs_when_a_file_lands(deployment: Deployment) {
    let dir = example_lake(deployment, "");
    let checked = ok(&tarn(dir.path(), &["pipelines", "validate"]));
    assert!(checked.contains("1 pipeline(s), no problems"), "{checked}");

    let served = Served::start(dir.path(), &[]);
    let file = dir.path().join("orders.json");
    std::fs::write(&file, r#"{"order": 1}"#).unwrap();
    let land = |key: &str| {
        ok(&tarn(
            dir.path(),
            &["--server", &served.url, "land", file.to_str().unwrap(), key],
        ))
    };
    land("example/raw/example/orders.json");
    let done = ended(dir.path(), 1);
    assert_eq!(done[0]["status"], "succeeded", "{done:#?}");
    let id = done[0]["id"].as_str().unwrap();
    let shown = json(&tarn(
        dir.path(),
        &["executions", "show", id, "--format", "json"],
    ));
    let attempts = shown["attempts"].as_array().unwrap();
    let steps: Vec<&str> = attempts
        .iter()
        .map(|a| a["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["ExampleLambda", "ExampleChoice", "ExampleGlue"]);
    assert!(attempts.iter().all(|a| a["status"] == "succeeded"));
    // The trigger module turned the S3 notification into the contract's fields; the glue job
    // got them as --key1/--key2 and the lambda used its shared module.
    let glue_logs = attempts[2]["logs"].as_str().unwrap();
    assert!(
        glue_logs.contains("got key1=example-lake-example-raw key2=example/orders.json"),
        "{glue_logs}"
    );
    assert!(attempts[0]["logs"]
        .as_str()
        .unwrap()
        .contains("object example/orders.json of example-lake-example-raw"));
    let logs = ok(&tarn(dir.path(), &["executions", "logs", id]));
    assert!(
        logs.contains("== ExampleGlue attempt 1 (succeeded)"),
        "{logs}"
    );

    // The same bytes again: no new event, no new execution. A key outside the trigger's
    // prefix/suffix starts nothing; a custom event matching the event_rule starts one.
    land("example/raw/example/orders.json");
    land("example/raw/elsewhere/orders.json");
    land("example/raw/example/orders.csv");
    ok(&tarn(
        dir.path(),
        &[
            "events",
            "put",
            "--source",
            "example_source",
            "--detail-type",
            "example_detail",
            "--detail",
            r#"{"key1": "billing", "key2": "invoice-7.json"}"#,
        ],
    ));
    let done = ended(dir.path(), 2);
    std::thread::sleep(Duration::from_millis(800));
    let all = executions(dir.path());
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(done.iter().all(|e| e["status"] == "succeeded"), "{done:#?}");
    assert!(
        all.iter().any(|e| e["input"]["key1"] == "billing"),
        "{all:#?}"
    );
    served.stop();
}

#[test]
fn seed_example_runs_when_a_file_lands_embedded() {
    seed_example_runs_when_a_file_lands(Deployment::Embedded);
}

#[test]
fn seed_example_runs_when_a_file_lands_shared() {
    seed_example_runs_when_a_file_lands(Deployment::Shared);
}

/// A one-request HTTP receiver on loopback; answers the body it got.
pub(crate) fn receiver() -> (String, std::thread::JoinHandle<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut len = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .unwrap();
        String::from_utf8(body).unwrap()
    });
    (url, handle)
}

#[test]
fn a_failed_step_is_retried_then_caught_and_reported_to_topics() {
    let (url, got) = receiver();
    let dir = example_lake(
        Deployment::Embedded,
        &format!("      - protocol: webhook\n        endpoint: {url}\n"),
    );
    // Make the lambda fail, and let it be tried twice.
    let p = dir.path().join("pipelines/pipeline_example");
    std::fs::write(
        p.join("steps/example_lambda_folder/src/index.py"),
        "def handler(event, context):\n    print('about to fail')\n    raise ValueError('the order has no lines')\n",
    )
    .unwrap();
    let cfg = std::fs::read_to_string(p.join("config.yml")).unwrap();
    std::fs::write(
        p.join("config.yml"),
        cfg.replace(
            "      memory_size: 128\n",
            "      memory_size: 128\n      retry: {max_attempts: 2, interval_seconds: 0}\n",
        ),
    )
    .unwrap();
    let run = tarn(
        dir.path(),
        &[
            "pipelines",
            "run",
            "pipeline_example",
            "--event",
            &format!("{EXAMPLE}/event.json"),
        ],
    );
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("ValueError: the order has no lines"), "{err}");
    assert!(err.contains("  | about to fail"), "live step output: {err}");
    let all = executions(dir.path());
    assert_eq!(all[0]["status"], "failed");
    assert_eq!(
        all[0]["step"], "ExampleLambda",
        "a failed execution keeps its step"
    );
    let id = all[0]["id"].as_str().unwrap();
    let shown = json(&tarn(
        dir.path(),
        &["executions", "show", id, "--format", "json"],
    ));
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert!(attempts.iter().all(|a| a["status"] == "failed"));

    // catch/ got the error; the error topic reached the file and the webhook.
    let caught = std::fs::read_to_string(dir.path().join(".tarn/caught.jsonl")).unwrap();
    let caught: serde_json::Value = serde_json::from_str(caught.lines().next().unwrap()).unwrap();
    assert_eq!(caught["step"], "ExampleLambda");
    assert_eq!(caught["execution_id"], id);
    let body: serde_json::Value = serde_json::from_str(&got.join().unwrap()).unwrap();
    assert_eq!(body["topic"], "failures");
    assert_eq!(body["detail"]["pipeline"], "pipeline_example");
    assert!(body["text"]
        .as_str()
        .unwrap()
        .contains("failed at step ExampleLambda"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Ok(t) = std::fs::read_to_string(dir.path().join(".tarn/failures.jsonl")) {
            if !t.is_empty() {
                break t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the file subscription got nothing"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(line.contains(id), "{line}");
    let log = json(&tarn(
        dir.path(),
        &["notify", "deliveries", "--format", "json"],
    ));
    let mut reached: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["delivered"] == true)
        .map(|d| d["protocol"].as_str().unwrap())
        .collect();
    reached.sort();
    assert_eq!(reached, ["file", "webhook"], "{log:#}");

    // Retried by hand after fixing the step: it resumes at the failed step and succeeds.
    std::fs::write(
        p.join("steps/example_lambda_folder/src/index.py"),
        "def handler(event, context):\n    return {**event, 'example': 'value1'}\n",
    )
    .unwrap();
    ok(&tarn(dir.path(), &["executions", "retry", id]));
    let served = Served::start(dir.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while executions(dir.path())[0]["status"] != "succeeded" {
        assert!(Instant::now() < deadline, "{:#?}", executions(dir.path()));
        std::thread::sleep(Duration::from_millis(100));
    }
    served.stop();
}

#[test]
fn a_step_past_its_timeout_is_killed_with_its_children() {
    let dir = example_lake(Deployment::Embedded, "");
    let p = dir.path().join("pipelines/slow");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("config.yml"),
        "name: slow\ndomain: example\nlayers: {origin: raw, target: trusted}\nsteps:\n  Sleep:\n    type: command\n    properties:\n      command: [sh, -c, 'sleep 300 & sleep 300']\n      timeout_seconds: 1\n",
    )
    .unwrap();
    let event = dir.path().join("e.json");
    std::fs::write(&event, "{}").unwrap();
    let started = Instant::now();
    let run = tarn(
        dir.path(),
        &[
            "pipelines",
            "run",
            "slow",
            "--event",
            event.to_str().unwrap(),
        ],
    );
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("States.Timeout"), "{err}");
    // The backgrounded `sleep 300` held stdout: had it survived, the run would not have ended.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn validate_reports_every_problem_with_its_line() {
    let dir = example_lake(Deployment::Embedded, "");
    let p = dir.path().join("pipelines/broken");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("config.yml"),
        "name: broken
domain: sales
layers:
  origin: raw
  target: gold
steps:
  First:
    type: lambda_function
  Second:
    type: choice
    properties:
      choices:
        - variable: x
          equals: 1
          next_step: Third
  Third:
    type: command
    properties:
      command: [./run]
      next_step: Second
  Fourth:
    type: command
    properties:
      command: [./run]
      next_step: Nowhere
",
    )
    .unwrap();
    let out = tarn(dir.path(), &["pipelines", "validate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let file = p.join("config.yml").display().to_string();
    for (line, what) in [
        (2, "domain `sales` is not declared"),
        (5, "layer `gold` is not a layer of the lake"),
        (8, "unknown type `lambda_function`"),
        (25, "goes to `Nowhere`, which is not a step"),
        (9, "step `Second` is unreachable"),
        (21, "step `Fourth` is unreachable"),
        (18, "the steps form a cycle: Second -> Third -> Second"),
    ] {
        assert!(
            err.contains(&format!("{file}:{line}: ")) && err.contains(what),
            "line {line}: {what}\n{err}"
        );
    }
    assert!(err.contains("did you mean `lambda`?"), "{err}");
}

#[test]
fn a_cron_schedule_starts_executions_under_serve() {
    let dir = example_lake(Deployment::Embedded, "");
    let p = dir.path().join("pipelines/every_second");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("config.yml"),
        "name: every_second\ndomain: example\nlayers: {origin: raw, target: trusted}\ntriggers:\n  - schedule: \"* * * * * *\"\nsteps:\n  Tick:\n    type: command\n    properties:\n      command: [cat]\n",
    )
    .unwrap();
    let served = Served::start(dir.path(), &[]);
    let done = ended(dir.path(), 2);
    served.stop();
    let ticks: Vec<_> = done
        .iter()
        .filter(|e| e["pipeline"] == "every_second")
        .collect();
    assert!(ticks.len() >= 2, "{done:#?}");
    for t in &ticks {
        assert_eq!(t["status"], "succeeded");
        assert_eq!(t["input"]["event"], "schedule.fired");
        // `cat` echoes its input: the step's output is the execution's input.
        assert_eq!(t["output"]["schedule"], "* * * * * *");
    }
    // One execution per second fired, never two for the same second.
    let mut times: Vec<&str> = ticks
        .iter()
        .map(|t| t["input"]["time"].as_str().unwrap())
        .collect();
    let n = times.len();
    times.sort();
    times.dedup();
    assert_eq!(times.len(), n, "{ticks:#?}");
}

/// A pipeline of a slow lambda step and a SQL step appending one row per landed file.
fn crashy_pipeline(dir: &Path) {
    let p = dir.join("pipelines/crashy");
    std::fs::create_dir_all(p.join("steps/pick/src")).unwrap();
    std::fs::write(
        p.join("config.yml"),
        "name: crashy
domain: example
layers: {origin: raw, target: trusted}
triggers:
  - s3: {prefix: crash/, suffix: .json}
steps:
  Pick:
    type: lambda
    properties:
      module: pick
      next_step: Write
  Write:
    type: sql
    properties:
      query: \"SELECT {{key}} AS key, {{size}} AS size, {{n}} AS n\"
      table: crash_rows
      mode: append
",
    )
    .unwrap();
    std::fs::write(p.join("steps/pick/requirements.json"), "{\"packages\": []}").unwrap();
    std::fs::write(
        p.join("steps/pick/src/index.py"),
        "import random, time\n\ndef handler(event, context):\n    time.sleep(random.uniform(0.1, 0.4))\n    return {**event, 'n': int(event['key'].split('-')[1].split('.')[0])}\n",
    )
    .unwrap();
}

/// `tarn serve` is killed with SIGKILL again and again while steps run; after a last restart
/// every execution has ended exactly once, each step succeeded once, and the trusted table
/// has one row per landed file.
fn executions_survive_sigkill(deployment: Deployment, files: usize, kills: usize) {
    let dir = example_lake(deployment, "");
    crashy_pipeline(dir.path());
    ok(&tarn(dir.path(), &["pipelines", "validate"]));
    let src = dir.path().join("landing");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..files {
        std::fs::write(src.join(format!("f-{i}.json")), format!("{{\"i\": {i}}}")).unwrap();
    }
    ok(&tarn(
        dir.path(),
        &["land", src.to_str().unwrap(), "example/raw/crash/"],
    ));
    for round in 0..kills {
        let served = Served::start(dir.path(), &[]);
        // Somewhere between 0.3 s and 1 s into the run: inside a step most of the time.
        std::thread::sleep(Duration::from_millis(300 + (round as u64 * 397) % 700));
        served.kill();
    }
    let served = Served::start(dir.path(), &[]);
    let done = ended(dir.path(), files);
    served.stop();
    let all = executions(dir.path());
    assert_eq!(all.len(), files, "one execution per landed file: {all:#?}");
    let mut abandoned = 0;
    for e in &done {
        assert_eq!(e["status"], "succeeded", "{e:#?}");
        let id = e["id"].as_str().unwrap();
        let shown = json(&tarn(
            dir.path(),
            &["executions", "show", id, "--format", "json"],
        ));
        let attempts = shown["attempts"].as_array().unwrap();
        for step in ["Pick", "Write"] {
            let won = attempts
                .iter()
                .filter(|a| a["step"] == step && a["status"] == "succeeded")
                .count();
            assert_eq!(won, 1, "{step} of {id}: {attempts:#?}");
        }
        abandoned += attempts
            .iter()
            .filter(|a| a["status"] == "abandoned")
            .count();
    }
    assert!(abandoned > 0, "no kill landed inside a step: {done:#?}");
    let counted = json(&tarn(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) AS n, count(DISTINCT key) AS keys, count(DISTINCT n) AS ns FROM example.trusted.crash_rows",
            "--format",
            "json",
        ],
    ));
    let row = &counted[0];
    assert_eq!(row["n"], files as i64, "{counted}");
    assert_eq!(row["keys"], files as i64, "{counted}");
    assert_eq!(row["ns"], files as i64, "{counted}");
}

#[test]
fn executions_survive_sigkill_embedded() {
    executions_survive_sigkill(Deployment::Embedded, 40, 8);
}

#[test]
fn executions_survive_sigkill_shared() {
    executions_survive_sigkill(Deployment::Shared, 20, 4);
}

/// Events in and executions out through `tarn serve --auth`, with the CLI as its client: a
/// custom event starts the seed's pipeline; list, show, logs; a running execution cancelled
/// and retried; a read-only token may look but not put events.
#[test]
fn events_and_executions_through_the_api() {
    use crate::server::client;
    let dir = example_lake(Deployment::Embedded, "");
    let p = dir.path().join("pipelines/waits");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("config.yml"),
        "name: waits\ndomain: example\nlayers: {origin: raw, target: trusted}\ntriggers:\n  - event_rule: {source: [ops], detail_type: [wait]}\nsteps:\n  Wait:\n    type: command\n    properties:\n      command: [sh, -c, 'sleep 30; cat']\n",
    )
    .unwrap();
    let writer = ok(&tarn(dir.path(), &["token", "create", "--name", "ci"]));
    let writer = writer.trim();
    let reader = ok(&tarn(
        dir.path(),
        &["token", "create", "--name", "bi", "--read-only"],
    ));
    let reader = reader.trim();
    let served = Served::start(dir.path(), &["--auth"]);
    let url = served.url.clone();
    let put = |token: &str, source: &str, kind: &str, detail: &str| {
        client(
            &url,
            Some(token),
            &[
                "events",
                "put",
                "--source",
                source,
                "--detail-type",
                kind,
                "--detail",
                detail,
                "--format",
                "json",
            ],
        )
    };
    let refused = put(reader, "example_source", "example_detail", "{}");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("read-only"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let bad = put(writer, "ops", "wait", "[1, 2]");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must be a JSON object"));

    let id: serde_json::Value = serde_json::from_str(&ok(&put(
        writer,
        "example_source",
        "example_detail",
        r#"{"key1": "billing", "key2": "invoice-7.json"}"#,
    )))
    .unwrap();
    assert!(id["event_id"].as_str().unwrap().len() > 10);
    ok(&put(writer, "ops", "wait", r#"{"why": "to be cancelled"}"#));

    let list = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut a = vec!["executions", "list", "--format", "json"];
        a.extend_from_slice(args);
        serde_json::from_str(&ok(&client(&url, Some(reader), &a))).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (seed, waiting) = loop {
        let seed = list(&["--pipeline", "pipeline_example", "--status", "succeeded"]);
        let waiting = list(&["--pipeline", "waits", "--status", "running"]);
        if seed.len() == 1 && waiting.len() == 1 {
            break (seed[0].clone(), waiting[0].clone());
        }
        assert!(Instant::now() < deadline, "{:#?}", list(&[]));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(seed["input"]["key1"], "billing");
    let seed_id = seed["id"].as_str().unwrap();
    let shown: serde_json::Value = serde_json::from_str(&ok(&client(
        &url,
        Some(reader),
        &["executions", "show", seed_id, "--format", "json"],
    )))
    .unwrap();
    assert_eq!(shown["attempts"].as_array().unwrap().len(), 3);
    let logs = ok(&client(
        &url,
        Some(reader),
        &["executions", "logs", seed_id],
    ));
    assert!(
        logs.contains("== ExampleGlue attempt 1 (succeeded)"),
        "{logs}"
    );
    let missing = client(&url, Some(reader), &["executions", "show", "nope"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no execution has id `nope`"));

    // A succeeded execution cannot be retried; the running one is cancelled (its step is
    // killed), then retried, and it runs again.
    let again = client(&url, Some(writer), &["executions", "retry", seed_id]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is succeeded; only failed or cancelled"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let wait_id = waiting["id"].as_str().unwrap();
    ok(&client(
        &url,
        Some(writer),
        &["executions", "cancel", wait_id],
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown: serde_json::Value = serde_json::from_str(&ok(&client(
            &url,
            Some(reader),
            &["executions", "show", wait_id, "--format", "json"],
        )))
        .unwrap();
        if shown["attempts"][0]["status"] == "cancelled" {
            assert_eq!(shown["execution"]["status"], "cancelled");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the step was not stopped: {shown:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(&client(
        &url,
        Some(writer),
        &["executions", "retry", wait_id],
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while list(&["--pipeline", "waits", "--status", "running"]).is_empty() {
        assert!(Instant::now() < deadline, "{:#?}", list(&[]));
        std::thread::sleep(Duration::from_millis(100));
    }
    served.stop();
}

/// A private CA and a server certificate for 127.0.0.1 signed by it, made with openssl.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tarn test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// The error topic's email subscription reaches a real SMTP server (aiosmtpd) that requires
/// STARTTLS with a certificate from a private CA, and a login; a wrong password is reported
/// without showing it.
#[test]
fn email_reaches_a_real_smtp_server_over_starttls_with_a_login() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mailbox = certs.path().join("mailbox.jsonl");
    let mut server = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/smtp_server.py"
        ))
        .arg(&mailbox)
        .arg(port.to_string())
        .args(["alerts", "s3cret-pw"])
        .arg(certs.path().join("srv.pem"))
        .arg(certs.path().join("srv.key"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");

    let dir = example_lake(
        Deployment::Embedded,
        &format!(
            "      - protocol: email\n        endpoint: data-team@example.com\nsmtp:\n  host: 127.0.0.1\n  port: {port}\n  tls: starttls\n  username: alerts\n  from: \"tarn <tarn@example.com>\"\n  ca_file: {}\n",
            certs.path().join("ca.pem").display()
        ),
    );
    let notify = |password: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tarn"))
            .arg("--dir")
            .arg(dir.path())
            .args(["notify", "test", "failures", "--format", "json"])
            .env("TARN_SMTP_PASSWORD", password)
            .output()
            .unwrap()
    };
    let sent = notify("s3cret-pw");
    let report: serde_json::Value = serde_json::from_str(&ok(&sent)).unwrap();
    let email = report
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["protocol"] == "email")
        .unwrap();
    assert_eq!(email["delivered"], true, "{report:#}");
    let got = std::fs::read_to_string(&mailbox).unwrap();
    let mail: serde_json::Value = serde_json::from_str(got.lines().next().unwrap()).unwrap();
    assert_eq!(mail["to"][0], "data-team@example.com");
    assert_eq!(mail["from"], "tarn@example.com");
    let data = mail["data"].as_str().unwrap();
    assert!(
        data.contains("Subject: [failures] test message from tarn (example-lake)"),
        "{data}"
    );
    assert!(data.contains("\"test\": true"), "{data}");

    let refused = notify("wrong-pw");
    assert!(!refused.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        all.contains("NOT delivered") || all.contains("\"delivered\": false"),
        "{all}"
    );
    assert!(all.contains("refused"), "{all}");
    assert!(!all.contains("wrong-pw"), "the password leaked: {all}");
    assert_eq!(
        std::fs::read_to_string(&mailbox).unwrap().lines().count(),
        1
    );

    // Every delivery is recorded: the email that arrived, the one that did not and why.
    let log = json(&tarn(
        dir.path(),
        &[
            "notify",
            "deliveries",
            "--topic",
            "failures",
            "--format",
            "json",
        ],
    ));
    let emails: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["protocol"] == "email")
        .collect();
    assert_eq!(emails.len(), 2, "{log:#}");
    assert_eq!(emails[0]["delivered"], false);
    // A refused login is permanent (5xx): not tried again.
    assert_eq!(emails[0]["attempts"], 1);
    assert!(
        emails[0]["error"].as_str().unwrap().contains("535"),
        "{log:#}"
    );
    assert_eq!(emails[1]["delivered"], true);
    assert!(!log.to_string().contains("wrong-pw"));
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Objects that arrive without tarn (a file copied into the embedded lake's zone folder; an
/// object put into the S3 zone by another tool) are noticed by `tarn serve`'s watcher and
/// start the pipeline, once each; a half-written object is not taken before it settles.
fn objects_arriving_outside_tarn_start_pipelines(deployment: Deployment) {
    let dir = example_lake(deployment, "");
    // The start-up check looks over whole zones (objects left without their event by a
    // crash); the watcher alone, looking at trigger prefixes, is what this test is about.
    let served = Served::start_checked(dir.path(), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lake = rt
        .block_on(tarn_lake::Lake::open(dir.path(), &Default::default()))
        .unwrap();
    let zone = lake.zones.zone("example", "raw").unwrap();
    use object_store::ObjectStoreExt;
    let put = |key: &str, body: &str| match deployment {
        Deployment::Embedded => {
            let url = lake.zones.url_of(&zone.root());
            let folder = std::path::PathBuf::from(url.strip_prefix("file://").unwrap());
            let path = folder.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        Deployment::Shared => {
            rt.block_on(
                lake.zones
                    .store()
                    .put(&zone.path(key), body.as_bytes().to_vec().into()),
            )
            .unwrap();
        }
    };
    put("example/copied.json", r#"{"order": 7}"#);
    put("elsewhere/ignored.json", r#"{"order": 8}"#);
    let done = ended(dir.path(), 1);
    assert_eq!(done[0]["status"], "succeeded", "{done:#?}");
    assert_eq!(done[0]["input"]["key1"], "example-lake-example-raw");
    assert_eq!(done[0]["input"]["key2"], "example/copied.json");
    // Seen once: later looks start nothing more; a changed object is a new event.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(executions(dir.path()).len(), 1);
    put("example/copied.json", r#"{"order": 7, "amended": true}"#);
    let done = ended(dir.path(), 2);
    assert_eq!(done.len(), 2, "{done:#?}");
    let events = json(&tarn(
        dir.path(),
        &["events", "--kind", "object.created", "--format", "json"],
    ));
    // Only the trigger's prefix is watched: `elsewhere/` is nobody's business.
    assert_eq!(events.as_array().unwrap().len(), 2, "{events:#}");
    served.stop();
}

#[test]
fn objects_arriving_outside_tarn_start_pipelines_embedded() {
    objects_arriving_outside_tarn_start_pipelines(Deployment::Embedded);
}

#[test]
fn objects_arriving_outside_tarn_start_pipelines_shared() {
    objects_arriving_outside_tarn_start_pipelines(Deployment::Shared);
}

/// Under `tarn serve --auth`, a step reaches tarn with `TARN_SERVER` and a token of its own:
/// it may land into its pipeline's domain, not into another; the token is revoked when the
/// execution ends and never shows in the execution's record.
#[test]
fn steps_get_a_token_scoped_to_their_domain() {
    let dir = example_lake(Deployment::Embedded, "");
    let yml = std::fs::read_to_string(dir.path().join("tarn.yml")).unwrap();
    std::fs::write(
        dir.path().join("tarn.yml"),
        yml.replace("domains: [example]", "domains: [example, other]"),
    )
    .unwrap();
    let p = dir.path().join("pipelines/writer");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("step.py"),
        r#"import json, os, urllib.error, urllib.request
server, token = os.environ["TARN_SERVER"], os.environ["TARN_TOKEN"]
def land(domain):
    req = urllib.request.Request(
        f"{server}/api/v1/zones/{domain}/raw/objects/from-step.json", data=b'{"a": 1}',
        method="PUT", headers={"Authorization": "Bearer " + token})
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code
print(json.dumps({"own": land("example"), "other": land("other"), "token_length": len(token)}))
"#,
    )
    .unwrap();
    std::fs::write(
        p.join("config.yml"),
        "name: writer\ndomain: example\nlayers: {origin: raw, target: trusted}\ntriggers:\n  - event_rule: {source: [ops], detail_type: [write]}\nsteps:\n  Write:\n    type: command\n    properties:\n      command: [python3, step.py]\n",
    )
    .unwrap();
    ok(&tarn(dir.path(), &["token", "create", "--name", "admin"]));
    let served = Served::start(dir.path(), &["--auth"]);
    ok(&tarn(
        dir.path(),
        &[
            "events",
            "put",
            "--source",
            "ops",
            "--detail-type",
            "write",
            "--detail",
            "{}",
        ],
    ));
    let done = ended(dir.path(), 1);
    served.stop();
    let e = &done[0];
    assert_eq!(e["status"], "succeeded", "{e:#}");
    assert_eq!(e["output"]["own"], 201, "{e:#}");
    assert_eq!(e["output"]["other"], 403, "{e:#}");
    assert!(e["output"]["token_length"].as_i64().unwrap() > 30);
    let tokens = json(&tarn(dir.path(), &["token", "list", "--format", "json"]));
    let step_tokens: Vec<_> = tokens
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap().starts_with("pipeline-writer-"))
        .collect();
    assert_eq!(step_tokens.len(), 1, "{tokens:#}");
    assert_eq!(step_tokens[0]["scope"], "example");
    assert_eq!(
        step_tokens[0]["policies"],
        serde_json::json!(["pipeline-step:example"]),
        "the step's grants are a policy"
    );
    assert!(step_tokens[0]["revoked_at"].is_string(), "{tokens:#}");
    assert!(step_tokens[0]["expires_at"].is_string(), "{tokens:#}");
    let objects = ok(&tarn(dir.path(), &["ls", "example/raw"]));
    assert!(objects.contains("from-step.json"), "{objects}");
    let shown = ok(&tarn(
        dir.path(),
        &[
            "executions",
            "show",
            e["id"].as_str().unwrap(),
            "--format",
            "json",
        ],
    ));
    assert!(
        !shown.contains("tarn_"),
        "a token leaked into the record: {shown}"
    );
}

/// A step that prints its whole environment, to its log and as its output, and one that fails
/// doing the same: no configured secret is in anything a run stores or shows.
fn no_secret_reaches_what_a_run_stores(deployment: Deployment) {
    let dir = example_lake(deployment, "");
    let p = dir.path().join("pipelines/leaky");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("config.yml"),
        "name: leaky\ndomain: example\nlayers: {origin: raw, target: trusted}\nsteps:\n  Print:\n    type: command\n    properties:\n      command: [python3, -c, 'import json, os, sys; print(json.dumps(dict(os.environ)), file=sys.stderr); print(json.dumps({\"env\": dict(os.environ)}))']\n      next_step: Fail\n  Fail:\n    type: command\n    properties:\n      command: [sh, -c, 'env; exit 3']\n",
    )
    .unwrap();
    let event = dir.path().join("e.json");
    std::fs::write(&event, "{}").unwrap();
    let smtp = "smtp-password-7731".to_string();
    // The shared deployment needs the real S3 secret (the step gets it to reach the lake).
    let aws = std::env::var("AWS_SECRET_ACCESS_KEY")
        .ok()
        .filter(|_| deployment == Deployment::Shared)
        .unwrap_or_else(|| "aws-secret-9921".into());
    let run_tarn = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tarn"))
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .env("TARN_SMTP_PASSWORD", &smtp)
            .env("AWS_SECRET_ACCESS_KEY", &aws)
            .output()
            .unwrap()
    };
    let run = run_tarn(&[
        "pipelines",
        "run",
        "leaky",
        "--event",
        event.to_str().unwrap(),
    ]);
    assert!(!run.status.success(), "the second step fails");
    let mut seen = String::new();
    seen += &String::from_utf8_lossy(&run.stdout);
    seen += &String::from_utf8_lossy(&run.stderr);
    let list = run_tarn(&["executions", "list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_string();
    for args in [
        vec!["executions", "show", &id, "--format", "json"],
        vec!["executions", "show", &id],
        vec!["executions", "logs", &id],
    ] {
        let out = run_tarn(&args);
        seen += &String::from_utf8_lossy(&out.stdout);
        seen += &String::from_utf8_lossy(&out.stderr);
    }
    // The steps ran and printed their environment.
    assert!(seen.contains("PATH="), "{seen}");
    for secret in [&smtp, &aws] {
        assert!(
            !seen.contains(secret.as_str()),
            "a secret was stored or shown:\n{seen}"
        );
    }
    if deployment == Deployment::Shared {
        // Given to the step to reach the lake's bucket, and hidden in what it printed.
        assert!(seen.contains("AWS_SECRET_ACCESS_KEY=***"), "{seen}");
    } else {
        assert!(!seen.contains("AWS_SECRET_ACCESS_KEY"), "{seen}");
    }
    assert!(!seen.contains("TARN_SMTP_PASSWORD"), "{seen}");
}

#[test]
fn no_secret_reaches_what_a_run_stores_embedded() {
    no_secret_reaches_what_a_run_stores(Deployment::Embedded);
}

#[test]
fn no_secret_reaches_what_a_run_stores_shared() {
    no_secret_reaches_what_a_run_stores(Deployment::Shared);
}
