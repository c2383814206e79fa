//! A training: the channels exported once, one job (or a tuning's jobs as child runs of a
//! parent run, the best chosen by the objective), the gate, and the registration of a passing
//! model as a new version pending approval, with its lineage.

use crate::channels::{self, ChannelLineage};
use crate::job::{self, JobOutcome, Shared};
use crate::tuning::Tuner;
use crate::{MlError, TrainOptions};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::Path;
use tarn_config::TrainSpec;
use tarn_lake::registry::NewModelVersion;
use tarn_lake::tracking::{Batch, KeyValue, Metric};
use tarn_lake::{Lake, MetadataError};

/// The gate's verdict on the chosen model.
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub metric: String,
    pub operator: String,
    pub threshold: f64,
    pub value: Option<f64>,
    pub passed: bool,
}

/// The model version a training registered.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub model: String,
    pub version: String,
    pub approval_status: String,
    pub source: String,
    /// `models:/NAME/VERSION`, what a `transform` step scores with.
    pub model_uri: String,
}

/// What a training did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub job: String,
    pub experiment_id: String,
    /// The tuning's parent run, or the single job's run.
    pub run_id: String,
    /// `succeeded` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    /// The chosen job.
    pub best: Option<JobOutcome>,
    /// Every job, in the order they finished.
    pub jobs: Vec<JobOutcome>,
    pub gate: Option<GateResult>,
    pub registered: Option<Registered>,
    pub lineage: BTreeMap<String, ChannelLineage>,
    pub code_hash: String,
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

/// sha256 over the model folder's files (paths and contents), dot-folders left out.
pub fn code_hash(dir: &Path) -> String {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if hidden || p.file_name().is_some_and(|n| n == "__pycache__") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = sha2::Sha256::new();
    for f in files {
        h.update(
            f.strip_prefix(dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .as_bytes(),
        );
        h.update([0]);
        h.update(std::fs::read(&f).unwrap_or_default());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn stamp() -> String {
    chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string()
}

/// Runs the training `spec` describes, end to end.
pub async fn train(
    lake: &Lake,
    spec: &TrainSpec,
    opts: &TrainOptions,
) -> Result<TrainReport, MlError> {
    let experiment_id = match lake.tracking().experiment_by_name(&spec.experiment).await? {
        Some(e) if e.lifecycle_stage == "active" => e.experiment_id,
        Some(_) => {
            return Err(MlError::Usage(format!(
                "experiment `{}` is deleted; restore it (mlflow experiments restore) or set another `experiment:` in {}",
                spec.experiment,
                spec.dir.join(tarn_config::TRAIN_FILE).display()
            )))
        }
        None => match lake.tracking().create_experiment(&spec.experiment, None, &[]).await {
            Ok(e) => e,
            Err(MetadataError::Exists(_)) => lake
                .tracking().experiment_by_name(&spec.experiment)
                .await?
                .map(|e| e.experiment_id)
                .unwrap_or_default(),
            Err(e) => return Err(e.into()),
        },
    };
    let root = lake.config.root.join(".tarn/jobs").join(format!(
        "{}-{}",
        spec.name,
        uuid::Uuid::new_v4().simple()
    ));
    let data_dir = root.join("data");
    let (data, lineage) = channels::export(lake, spec, &data_dir).await?;
    let code_hash = code_hash(&spec.dir);
    let shared = Shared {
        lake,
        spec,
        opts,
        experiment_id: experiment_id.clone(),
        data: &data,
        data_dir,
        jobs_dir: root.clone(),
    };
    let base = format!("{}-{}", spec.name, stamp());
    let (run_id, jobs, best) = match &spec.tuning {
        None => {
            let outcome = job::run(&shared, &spec.hyperparameters, &base, None).await?;
            if let Some(p) = &opts.progress {
                p(&outcome);
            }
            let best = outcome.failure.is_none().then(|| outcome.clone());
            (outcome.run_id.clone(), vec![outcome], best)
        }
        Some(t) => tune(&shared, t, &base).await?,
    };
    let mut report = TrainReport {
        job: spec.name.clone(),
        experiment_id,
        run_id: run_id.clone(),
        status: "failed".into(),
        reason: None,
        best: best.clone(),
        jobs,
        gate: None,
        registered: None,
        lineage,
        code_hash,
    };
    let Some(best) = best else {
        report.reason = Some(match report.jobs.as_slice() {
            [one] => one.failure.clone().unwrap_or_default(),
            all => format!(
                "NoSuccessfulJob: none of the {} tuning jobs succeeded with the objective metric; first failure: {}",
                all.len(),
                all.iter()
                    .find_map(|j| j.failure.clone())
                    .unwrap_or_else(|| "the objective metric was never logged".into())
            ),
        });
        return Ok(report);
    };
    if let Some(g) = &spec.gate {
        let value = best.metrics.get(&g.metric).copied();
        let passed = value.is_some_and(|v| g.passes(v));
        report.gate = Some(GateResult {
            metric: g.metric.clone(),
            operator: g.operator.clone(),
            threshold: g.threshold,
            value,
            passed,
        });
        let verdict = if passed { "passed" } else { "failed" };
        lake.tracking()
            .log_batch(
                &run_id,
                &Batch {
                    tags: vec![kv("tarn.gate", verdict)],
                    ..Default::default()
                },
            )
            .await?;
        if !passed {
            report.reason = Some(match value {
                Some(v) => format!(
                    "Model_Metric_Gate_Failed: {} = {v} is not {} {}; nothing was registered",
                    g.metric, g.operator, g.threshold
                ),
                None => format!(
                    "Model_Metric_Gate_Failed: the model logged no metric `{}` (it logged: {}); nothing was registered",
                    g.metric,
                    best.metrics.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
            return Ok(report);
        }
    }
    if let Some(reg) = &spec.register {
        let registered = register(lake, spec, opts, reg, &best, &report).await?;
        lake.tracking()
            .log_batch(
                &best.run_id,
                &Batch {
                    tags: vec![kv(
                        "tarn.registered_version",
                        format!("{}/{}", registered.model, registered.version),
                    )],
                    ..Default::default()
                },
            )
            .await?;
        report.registered = Some(registered);
    }
    report.status = "succeeded".into();
    Ok(report)
}

async fn register(
    lake: &Lake,
    spec: &TrainSpec,
    opts: &TrainOptions,
    reg: &tarn_config::Register,
    best: &JobOutcome,
    report: &TrainReport,
) -> Result<Registered, MlError> {
    if lake
        .registry()
        .registered_model(&reg.model)
        .await?
        .is_none()
    {
        let description = reg.description.clone().unwrap_or_default();
        match lake
            .registry()
            .create_registered_model(&reg.model, &description, &[], &opts.user)
            .await
        {
            Ok(_) | Err(MetadataError::Exists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let source = format!("{}/model", best.artifact_uri);
    let mut tags = vec![
        kv("tarn.job", spec.name.clone()),
        kv("tarn.run_id", best.run_id.clone()),
        kv("tarn.code_hash", report.code_hash.clone()),
        kv(
            "tarn.lineage",
            serde_json::to_string(&report.lineage).unwrap_or_default(),
        ),
    ];
    for (k, v) in &reg.tags {
        tags.push(kv(k, v.clone()));
    }
    let v = lake
        .registry()
        .create_model_version(
            &NewModelVersion {
                name: reg.model.clone(),
                source: source.clone(),
                storage_location: source.clone(),
                run_id: best.run_id.clone(),
                run_link: String::new(),
                model_id: String::new(),
                description: reg.description.clone().unwrap_or_default(),
                tags,
            },
            &opts.user,
        )
        .await?;
    Ok(Registered {
        model_uri: format!("models:/{}/{}", v.name, v.version),
        model: v.name.clone(),
        version: v.version,
        approval_status: v.approval.status.clone(),
        source,
    })
}

/// Runs a tuning's jobs as children of a parent run; answers the parent, every job, and
/// the best by the objective.
async fn tune(
    shared: &Shared<'_>,
    t: &tarn_config::Tuning,
    base: &str,
) -> Result<(String, Vec<JobOutcome>, Option<JobOutcome>), MlError> {
    let strategy = match t.strategy {
        tarn_config::Strategy::Grid => "grid",
        tarn_config::Strategy::Random => "random",
        tarn_config::Strategy::Bayesian => "bayesian",
    };
    let goal = if t.objective.maximize {
        "maximize"
    } else {
        "minimize"
    };
    let mut tags = vec![
        kv("tarn.job", shared.spec.name.clone()),
        kv("tarn.tuning.strategy", strategy),
        kv(
            "tarn.tuning.objective",
            format!("{} ({goal})", t.objective.metric),
        ),
        kv("mlflow.user", shared.opts.user.clone()),
    ];
    tags.extend(shared.opts.tags.iter().map(|(k, v)| kv(k, v.clone())));
    let parent = shared
        .lake
        .tracking()
        .create_run(
            &shared.experiment_id,
            &shared.opts.user,
            Some(base),
            None,
            &tags,
        )
        .await?;
    let parent_id = parent.info.run_id.as_str();
    let seed = u64::from_str_radix(&code_hash_of(&shared.spec.name)[..12], 16).unwrap_or(42);
    let mut tuner = Tuner::new(t, seed);
    let mut seen: Vec<(BTreeMap<String, serde_json::Value>, Option<f64>)> = Vec::new();
    let mut jobs: Vec<JobOutcome> = Vec::new();
    let mut running = FuturesUnordered::new();
    let mut launched = 0u32;
    let mut exhausted = false;
    loop {
        while !exhausted && running.len() < t.max_parallel as usize && launched < t.max_jobs {
            match tuner.next(&seen) {
                Some(ranged) => {
                    let mut hp = shared.spec.hyperparameters.clone();
                    hp.extend(ranged);
                    launched += 1;
                    let name = format!("{base}-{launched:03}");
                    running.push(async move {
                        let r = job::run(shared, &hp, &name, Some(parent_id)).await;
                        (hp, r)
                    });
                }
                None => exhausted = true,
            }
        }
        let Some((hp, r)) = running.next().await else {
            break;
        };
        let outcome = r?;
        if let Some(p) = &shared.opts.progress {
            p(&outcome);
        }
        let value = outcome
            .failure
            .is_none()
            .then(|| outcome.metrics.get(&t.objective.metric).copied())
            .flatten()
            .map(|v| if t.objective.maximize { -v } else { v });
        seen.push((hp, value));
        jobs.push(outcome);
    }
    let parent_id = parent.info.run_id.clone();
    let best = jobs
        .iter()
        .filter(|j| j.failure.is_none())
        .filter_map(|j| j.metrics.get(&t.objective.metric).map(|v| (j, *v)))
        .fold(None::<(&JobOutcome, f64)>, |acc, (j, v)| match acc {
            Some((_, b)) if !t.objective.better(v, b) => acc,
            _ => Some((j, v)),
        })
        .map(|(j, _)| j.clone());
    let now = chrono::Utc::now().timestamp_millis();
    let mut batch = Batch::default();
    if let Some(b) = &best {
        batch.tags.push(kv("tarn.best_run_id", b.run_id.clone()));
        batch.metrics = b
            .metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| Metric {
                key: k.clone(),
                value: *v,
                timestamp: now,
                step: 0,
                ..Default::default()
            })
            .collect();
        batch.params = b
            .hyperparameters
            .iter()
            .map(|(k, v)| kv(&format!("best.{k}"), job::hp_text(v)))
            .collect();
    }
    batch
        .tags
        .push(kv("tarn.tuning.jobs", jobs.len().to_string()));
    shared.lake.tracking().log_batch(&parent_id, &batch).await?;
    let status = if best.is_some() { "FINISHED" } else { "FAILED" };
    shared
        .lake
        .tracking()
        .update_run(&parent_id, Some(status), Some(now), None)
        .await?;
    Ok((parent_id, jobs, best))
}

fn code_hash_of(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}
