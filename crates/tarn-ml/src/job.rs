//! One training job: a tracking run, a job folder laid out as SageMaker's training contract
//! (`input/data/<channel>/`, `input/config/{hyperparameters,inputdataconfig,resourceconfig}.json`,
//! `model/`, `output/data/`, `output/failure`), the trainer run in it, and what it left
//! (metrics from its log and from its own mlflow calls, the model folder and the log as
//! artifacts, the exit status, the failure reason) recorded on the run.

use crate::builtin;
use crate::channels::ChannelData;
use crate::{MlError, TrainOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tarn_config::{TrainSpec, Trainer};
use tarn_lake::tracking::{Batch, KeyValue, Metric};
use tarn_lake::Lake;
use tarn_process::process;

/// What one job ended with.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobOutcome {
    pub run_id: String,
    pub run_name: String,
    #[serde(skip)]
    pub artifact_uri: String,
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
    /// The latest value of every metric of the run (the log's, the code's and tarn's).
    pub metrics: BTreeMap<String, f64>,
    /// Why the job failed (none: it succeeded).
    pub failure: Option<String>,
    /// Files the trainer left in `model/`.
    pub model_files: usize,
    /// The job folder (kept after the job, for inspection).
    pub job_dir: String,
    /// How long the trainer ran (preparing the folder and uploading excluded).
    pub train_seconds: f64,
    /// A built-in trainer's model fit alone (no reading, scoring or saving); none for a
    /// command trainer.
    pub fit_seconds: Option<f64>,
}

/// What every job of one training shares.
pub(crate) struct Shared<'a> {
    pub lake: &'a Lake,
    pub spec: &'a TrainSpec,
    pub opts: &'a TrainOptions,
    pub experiment_id: String,
    pub data: &'a [ChannelData],
    /// The exported channels (`<channel>/<channel>.parquet`).
    pub data_dir: PathBuf,
    /// Job folders go here, one per run.
    pub jobs_dir: PathBuf,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

/// A hyperparameter as SageMaker hands it over: always text.
pub(crate) fn hp_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), MlError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(path, text).map_err(|e| MlError::io(path, e))
}

/// Lays out the job folder and links the exported channels into it.
fn prepare(
    shared: &Shared<'_>,
    dir: &Path,
    hp: &BTreeMap<String, serde_json::Value>,
) -> Result<(), MlError> {
    for sub in ["input/data", "input/config", "model", "output/data"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| MlError::io(&d, e))?;
    }
    let mut config = serde_json::Map::new();
    for ch in &shared.spec.channels {
        let link = dir.join("input/data").join(&ch.name);
        std::os::unix::fs::symlink(shared.data_dir.join(&ch.name), &link)
            .map_err(|e| MlError::io(&link, e))?;
        let content_type = match ch.format {
            tarn_config::ChannelFormat::Parquet => "application/x-parquet",
            tarn_config::ChannelFormat::Csv => "text/csv",
        };
        config.insert(
            ch.name.clone(),
            serde_json::json!({
                "ContentType": content_type,
                "TrainingInputMode": "File",
                "S3DistributionType": "FullyReplicated",
                "RecordWrapperType": "None",
            }),
        );
    }
    let hps: serde_json::Map<String, serde_json::Value> = hp
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(hp_text(v))))
        .collect();
    write_json(&dir.join("input/config/hyperparameters.json"), &hps.into())?;
    write_json(
        &dir.join("input/config/inputdataconfig.json"),
        &config.into(),
    )?;
    write_json(
        &dir.join("input/config/resourceconfig.json"),
        &serde_json::json!({
            "current_host": "algo-1",
            "hosts": ["algo-1"],
            "network_interface_name": "lo",
        }),
    )?;
    Ok(())
}

/// The SageMaker training toolkit's variables, MLflow's and tarn's.
fn variables(
    shared: &Shared<'_>,
    dir: &Path,
    run_id: &str,
    hp: &BTreeMap<String, serde_json::Value>,
) -> Vec<(String, String)> {
    let p = |s: &str| dir.join(s).display().to_string();
    let channels: Vec<&str> = shared
        .spec
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let hps: serde_json::Map<String, serde_json::Value> = hp
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(hp_text(v))))
        .collect();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut v = vec![
        ("TARN_JOB_DIR".to_string(), dir.display().to_string()),
        (
            "TARN_DIR".into(),
            shared.lake.config.root.display().to_string(),
        ),
        ("SM_MODEL_DIR".into(), p("model")),
        ("SM_INPUT_DIR".into(), p("input")),
        ("SM_INPUT_DATA_DIR".into(), p("input/data")),
        ("SM_INPUT_CONFIG_DIR".into(), p("input/config")),
        ("SM_OUTPUT_DIR".into(), p("output")),
        ("SM_OUTPUT_DATA_DIR".into(), p("output/data")),
        (
            "SM_CHANNELS".into(),
            serde_json::to_string(&channels).unwrap_or_default(),
        ),
        ("SM_HPS".into(), serde_json::Value::from(hps).to_string()),
        ("SM_NUM_CPUS".into(), cpus.to_string()),
        ("SM_NUM_GPUS".into(), "0".into()),
        ("SM_HOSTS".into(), "[\"algo-1\"]".into()),
        ("SM_CURRENT_HOST".into(), "algo-1".into()),
        (
            "MLFLOW_TRACKING_URI".into(),
            shared.opts.tracking_uri.clone(),
        ),
        ("MLFLOW_RUN_ID".into(), run_id.to_string()),
        ("MLFLOW_EXPERIMENT_ID".into(), shared.experiment_id.clone()),
    ];
    for ch in &shared.spec.channels {
        v.push((
            format!("SM_CHANNEL_{}", ch.name.to_uppercase()),
            p(&format!("input/data/{}", ch.name)),
        ));
    }
    for (k, val) in hp {
        v.push((format!("SM_HP_{}", k.to_uppercase()), hp_text(val)));
    }
    if let Some(t) = &shared.opts.tracking_token {
        v.push(("MLFLOW_TRACKING_TOKEN".into(), t.clone()));
    }
    v
}

/// Values matched by the metric definitions, per metric in log order.
type Parsed = Arc<Mutex<BTreeMap<String, Vec<f64>>>>;

fn metric_sink(
    spec: &TrainSpec,
    parsed: Parsed,
    forward: Option<process::LineSink>,
) -> process::LineSink {
    let defs: Vec<(String, regex::Regex)> = spec
        .metrics
        .iter()
        .filter_map(|m| {
            regex::Regex::new(&m.regex)
                .ok()
                .map(|r| (m.name.clone(), r))
        })
        .collect();
    Arc::new(move |line: &str| {
        for (name, re) in &defs {
            for caps in re.captures_iter(line) {
                if let Some(v) = caps.get(1).and_then(|m| m.as_str().parse::<f64>().ok()) {
                    parsed
                        .lock()
                        .expect("metrics lock")
                        .entry(name.clone())
                        .or_default()
                        .push(v);
                }
            }
        }
        if let Some(f) = &forward {
            f(line);
        }
    })
}

/// Runs one job with hyperparameters `hp` as a run named `run_name` (a child of `parent`).
pub(crate) async fn run(
    shared: &Shared<'_>,
    hp: &BTreeMap<String, serde_json::Value>,
    run_name: &str,
    parent: Option<&str>,
) -> Result<JobOutcome, MlError> {
    let spec = shared.spec;
    let tracking = shared.lake.tracking();
    let trainer = match &spec.trainer {
        Trainer::Builtin { algorithm, .. } => format!("builtin:{}", algorithm.name()),
        Trainer::Command { command, .. } => format!("command:{}", command.join(" ")),
    };
    let mut tags = vec![
        kv("tarn.job", spec.name.clone()),
        kv("tarn.trainer", trainer),
        kv("mlflow.source.type", "JOB"),
        kv(
            "mlflow.source.name",
            format!(
                "{}/{}/{}",
                tarn_config::MODELS_DIR,
                spec.name,
                tarn_config::TRAIN_FILE
            ),
        ),
        kv("mlflow.user", shared.opts.user.clone()),
    ];
    if let Some(p) = parent {
        tags.push(kv("mlflow.parentRunId", p));
    }
    tags.extend(shared.opts.tags.iter().map(|(k, v)| kv(k, v.clone())));
    let run = tracking
        .create_run(
            &shared.experiment_id,
            &shared.opts.user,
            Some(run_name),
            None,
            &tags,
        )
        .await?;
    let run_id = run.info.run_id.clone();
    let artifact_uri = run.info.artifact_uri.clone();
    let params: Vec<KeyValue> = hp.iter().map(|(k, v)| kv(k, hp_text(v))).collect();
    tracking
        .log_batch(
            &run_id,
            &Batch {
                params,
                ..Default::default()
            },
        )
        .await?;

    let dir = shared.jobs_dir.join(&run_id);
    let result = execute(shared, &dir, &run_id, hp).await;
    let (logs, mut metrics, mut failure, train_seconds, fit_seconds) = match result {
        Ok(r) => r,
        Err(e) => (
            String::new(),
            BTreeMap::new(),
            Some(format!("ClientError: {e}")),
            0.0,
            None,
        ),
    };
    // What the trainer wrote: the model folder, extra output, the log.
    let model_dir = dir.join("model");
    let model_files = match shared
        .lake
        .put_artifact_dir(&artifact_uri, "model", &model_dir)
        .await
    {
        Ok(n) => n,
        Err(e) => {
            failure.get_or_insert(format!(
                "ClientError: uploading the model folder failed: {e}"
            ));
            0
        }
    };
    let output = dir.join("output/data");
    if output.is_dir() {
        if let Err(e) = shared
            .lake
            .put_artifact_dir(&artifact_uri, "output", &output)
            .await
        {
            failure.get_or_insert(format!("ClientError: uploading output/data failed: {e}"));
        }
    }
    shared
        .lake
        .put_artifact(&artifact_uri, "tarn/train.log", logs.into_bytes())
        .await?;
    // Metrics the code logged itself are on the run already; merge them with ours.
    let logged = tracking.run(&run_id).await?;
    if let Some(r) = &logged {
        for m in &r.data.metrics {
            metrics.entry(m.key.clone()).or_insert(m.value);
        }
    }
    if failure.is_none() && model_files == 0 {
        failure = Some(format!(
            "AlgorithmError: the trainer succeeded but left nothing in its model folder (SM_MODEL_DIR); save the model under {}",
            model_dir.display()
        ));
    }
    let mut end = vec![kv("tarn.job_dir", dir.display().to_string())];
    if let Some(f) = &failure {
        end.push(kv("tarn.failure_reason", truncate(f, 4000)));
    }
    tracking
        .log_batch(
            &run_id,
            &Batch {
                tags: end,
                ..Default::default()
            },
        )
        .await?;
    let status = if failure.is_some() {
        "FAILED"
    } else {
        "FINISHED"
    };
    tracking
        .update_run(&run_id, Some(status), Some(now_ms()), None)
        .await?;
    Ok(JobOutcome {
        run_id,
        run_name: run_name.to_string(),
        artifact_uri,
        hyperparameters: hp.clone(),
        metrics,
        failure,
        model_files,
        job_dir: dir.display().to_string(),
        train_seconds,
        fit_seconds,
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Prepares the folder and runs the trainer: answers its log, the metrics tarn logged on the
/// run, and the failure reason.
/// What running a job's trainer left: its logs, metrics, failure, seconds and fit seconds.
type Executed = (
    String,
    BTreeMap<String, f64>,
    Option<String>,
    f64,
    Option<f64>,
);

async fn execute(
    shared: &Shared<'_>,
    dir: &Path,
    run_id: &str,
    hp: &BTreeMap<String, serde_json::Value>,
) -> Result<Executed, MlError> {
    prepare(shared, dir, hp)?;
    let started = std::time::Instant::now();
    let mut fit_seconds = None;
    let spec = shared.spec;
    let timeout = spec.resources.timeout;
    let (logs, mut failure, parsed) = match &spec.trainer {
        Trainer::Builtin {
            algorithm,
            target,
            features,
        } => {
            let job = builtin::Job {
                algorithm: *algorithm,
                target: target.clone(),
                features: features.clone(),
                hyperparameters: hp.clone(),
                data: shared.data.to_vec(),
                model_dir: dir.join("model"),
            };
            let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let c2 = cancel.clone();
            let task = tokio::task::spawn_blocking(move || builtin::train(&job, &c2));
            let joined = match timeout {
                Some(t) => match tokio::time::timeout(t, task).await {
                    Ok(j) => Some(j),
                    Err(_) => {
                        cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                        None
                    }
                },
                None => Some(task.await),
            };
            match joined {
                None => (
                    String::new(),
                    Some(format!(
                        "MaxRuntimeExceeded: training ran past its timeout of {} s and was stopped",
                        timeout.map(|t| t.as_secs()).unwrap_or_default()
                    )),
                    BTreeMap::new(),
                ),
                Some(Err(e)) => (
                    String::new(),
                    Some(format!("AlgorithmError: {e}")),
                    BTreeMap::new(),
                ),
                Some(Ok(Err(e))) => (
                    String::new(),
                    Some(format!("AlgorithmError: {e}")),
                    BTreeMap::new(),
                ),
                Some(Ok(Ok(done))) => {
                    fit_seconds = Some(done.fit_seconds);
                    if let Some(s) = &shared.opts.sink {
                        for l in done.log.lines() {
                            s(l);
                        }
                    }
                    (
                        done.log,
                        None,
                        done.metrics
                            .into_iter()
                            .map(|(k, v)| (k, vec![v]))
                            .collect(),
                    )
                }
            }
        }
        Trainer::Command {
            command,
            requirements,
            system_packages,
        } => {
            let parsed: Parsed = Default::default();
            let sink = metric_sink(spec, parsed.clone(), shared.opts.sink.clone());
            let mut vars = variables(shared, dir, run_id, hp);
            let mut program = PathBuf::from(&command[0]);
            let python = match requirements {
                Some(r) => {
                    let venv = shared
                        .opts
                        .python
                        .venv_for_requirements(r, *system_packages)
                        .await?;
                    let path = std::env::var("PATH").unwrap_or_default();
                    vars.push((
                        "PATH".into(),
                        format!("{}:{path}", venv.join("bin").display()),
                    ));
                    vars.push(("VIRTUAL_ENV".into(), venv.display().to_string()));
                    venv.join("bin/python")
                }
                None => shared.opts.python.base().to_path_buf(),
            };
            if command[0] == "python" || command[0] == "python3" {
                program = python;
            } else if spec.dir.join(&command[0]).is_file() {
                program = spec.dir.join(&command[0]);
            }
            let finished = process::run_limited(
                &program,
                &command[1..],
                &spec.dir,
                &vars,
                b"",
                timeout,
                spec.resources.max_memory,
                Some(sink),
            )
            .await
            .map_err(|e| {
                MlError::Usage(format!(
                    "cannot start the trainer `{}`: {e}; check `trainer.command` in {}",
                    command.join(" "),
                    spec.dir.join(tarn_config::TRAIN_FILE).display()
                ))
            })?;
            let failure_file =
                std::fs::read_to_string(dir.join("output/failure")).unwrap_or_default();
            let failure = if finished.timed_out {
                Some(format!(
                    "MaxRuntimeExceeded: the trainer ran past its timeout of {} s and was killed with its processes",
                    timeout.map(|t| t.as_secs()).unwrap_or_default()
                ))
            } else if !failure_file.trim().is_empty() {
                Some(format!("AlgorithmError: {}", failure_file.trim()))
            } else if !finished.success {
                let last = finished
                    .logs
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .to_string();
                Some(format!(
                    "AlgorithmError: the trainer exited with {}: {last}",
                    finished.how()
                ))
            } else {
                None
            };
            let parsed = parsed.lock().expect("metrics lock").clone();
            (finished.logs, failure, parsed)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let now = now_ms();
    let mut metrics = BTreeMap::new();
    let mut batch = Vec::new();
    for (name, values) in &parsed {
        for (step, v) in values.iter().enumerate() {
            if v.is_finite() {
                batch.push(Metric {
                    key: name.clone(),
                    value: *v,
                    timestamp: now,
                    step: step as i64,
                    ..Default::default()
                });
            }
        }
        if let Some(v) = values.last() {
            metrics.insert(name.clone(), *v);
        }
    }
    for chunk in batch.chunks(1000) {
        if let Err(e) = shared
            .lake
            .tracking()
            .log_batch(
                run_id,
                &Batch {
                    metrics: chunk.to_vec(),
                    ..Default::default()
                },
            )
            .await
        {
            failure.get_or_insert(format!("ClientError: logging metrics failed: {e}"));
        }
    }
    Ok((logs, metrics, failure, seconds, fit_seconds))
}
