//! `tarn train`: runs a model folder's training (`models/<name>/train.yml`) on the lake: the
//! job (or a tuning's jobs) as tracking runs, the gate, the registration. The trainer's
//! `mlflow` client reaches a tracking server tarn starts on loopback for the training.

use crate::cli::Output;
use crate::print;
use anyhow::{bail, Context, Result};
use std::sync::Arc;
use tarn_lake::Lake;
use tarn_ml::{JobOutcome, TrainOptions, TrainReport};

/// Serves the lake's API on an ephemeral loopback port until the answer is dropped.
pub(crate) async fn loopback_server(
    lake: &Lake,
) -> Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let app = tarn_server::App::build(lake.clone(), Default::default());
    tokio::spawn(async move {
        let stop = async move {
            let _ = stop_rx.await;
        };
        let r = app
            .serve("127.0.0.1:0".parse().expect("an address"), stop, |b| {
                let _ = bound_tx.send(b);
            })
            .await;
        if let Err(e) = r {
            tracing::error!("the training's tracking server stopped: {e}");
        }
    });
    let bound = bound_rx
        .await
        .context("starting the tracking server for the trainer")?;
    Ok((format!("http://{bound}"), stop_tx))
}

/// A line above the spinner, or on stderr when there is no terminal to draw it on.
fn say(spinner: &indicatif::ProgressBar, line: &str) {
    if spinner.is_hidden() {
        eprintln!("{line}");
    } else {
        spinner.println(line);
    }
}

fn hp_summary(j: &JobOutcome) -> String {
    j.hyperparameters
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `tarn train [NAME]`.
pub async fn train(lake: &Lake, name: Option<&str>, logs: bool, out: Output) -> Result<()> {
    let specs = tarn_config::load_train_specs(&lake.config)?;
    let Some(name) = name else {
        if out.json() {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            return print::json(&names);
        }
        if specs.is_empty() {
            println!(
                "no models/<name>/{} here yet; write one (see README: Training) and run `tarn train NAME`",
                tarn_config::TRAIN_FILE
            );
        }
        for s in &specs {
            let trainer = match &s.trainer {
                tarn_config::Trainer::Builtin {
                    algorithm, target, ..
                } => {
                    format!("{} -> {target}", algorithm.name())
                }
                tarn_config::Trainer::Command { command, .. } => command.join(" "),
            };
            println!(
                "{:<20} {trainer}{}",
                s.name,
                if s.tuning.is_some() { " (tuned)" } else { "" }
            );
        }
        return Ok(());
    };
    let Some(spec) = specs.into_iter().find(|s| s.name == name) else {
        bail!(
            "no model folder `{name}` with a {}; `tarn train` lists them",
            tarn_config::TRAIN_FILE
        );
    };
    let (uri, _stop) = loopback_server(lake).await?;
    let mut opts = TrainOptions::new(lake, &uri, &crate::me());
    let spinner = if out.json() {
        indicatif::ProgressBar::hidden()
    } else {
        print::spinner(&format!("training {name}: exporting channels"))
    };
    let total = spec.tuning.as_ref().map(|t| t.max_jobs).unwrap_or(1);
    let done = Arc::new(std::sync::atomic::AtomicU32::new(0));
    {
        let spinner = spinner.clone();
        let done = done.clone();
        let objective = spec.tuning.as_ref().map(|t| t.objective.metric.clone());
        let quiet = out.json();
        opts.progress = Some(Arc::new(move |j: &JobOutcome| {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let line = match &j.failure {
                Some(f) => format!("job {n}/{total} {} failed: {f}", j.run_name),
                None => {
                    let shown = match &objective {
                        Some(m) => j
                            .metrics
                            .get(m)
                            .map(|v| format!("{m}={v:.6}"))
                            .unwrap_or_default(),
                        None => j
                            .metrics
                            .iter()
                            .filter(|(k, _)| !k.starts_with("train_"))
                            .map(|(k, v)| format!("{k}={v:.6}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                    };
                    format!("job {n}/{total} {} {shown}  {}", j.run_name, hp_summary(j))
                }
            };
            if !quiet {
                say(&spinner, &line);
            }
            spinner.set_message(format!("training: {n}/{total} jobs done"));
        }));
    }
    if logs && !out.json() {
        let spinner = spinner.clone();
        opts.sink = Some(Arc::new(move |l: &str| say(&spinner, &format!("  | {l}"))));
    }
    spinner.set_message(format!("training {name}"));
    let report = tarn_ml::train(lake, &spec, &opts).await?;
    spinner.finish_and_clear();
    if out.json() {
        print::json(&report)?;
    } else {
        summary(&report);
    }
    if report.status != "succeeded" {
        bail!(
            "training `{name}` failed: {}",
            report.reason.clone().unwrap_or_default()
        );
    }
    Ok(())
}

fn summary(r: &TrainReport) {
    println!("experiment {}  run {}", r.experiment_id, r.run_id);
    if let Some(b) = &r.best {
        let metrics: Vec<String> = b
            .metrics
            .iter()
            .map(|(k, v)| format!("{k}={v:.6}"))
            .collect();
        println!("best job   {} ({})", b.run_name, b.run_id);
        if !b.hyperparameters.is_empty() {
            println!("  hyperparameters  {}", hp_summary(b));
        }
        println!("  metrics          {}", metrics.join(" "));
    }
    for (ch, l) in &r.lineage {
        let tables: Vec<String> = l.tables.iter().map(|(t, v)| format!("{t}@v{v}")).collect();
        println!(
            "channel    {ch}: {} rows from {}",
            l.rows,
            tables.join(", ")
        );
    }
    if let Some(g) = &r.gate {
        println!(
            "gate       {} {} {}: {} ({})",
            g.metric,
            g.operator,
            g.threshold,
            g.value
                .map(|v| v.to_string())
                .unwrap_or_else(|| "not logged".into()),
            if g.passed { "passed" } else { "FAILED" }
        );
    }
    if let Some(reg) = &r.registered {
        println!(
            "registered {} version {} ({})",
            reg.model, reg.version, reg.approval_status
        );
        if reg.approval_status != tarn_lake::registry::APPROVED {
            println!(
                "next: tarn models approve {} {} --reason \"...\"",
                reg.model, reg.version
            );
        }
    }
}

/// `tarn transform`.
pub async fn transform(lake: &Lake, args: &tarn_ml::TransformArgs, out: Output) -> Result<()> {
    let query = if args.input.trim().split('.').count() == 3 && !args.input.contains(' ') {
        format!("SELECT * FROM {}", args.input.trim())
    } else {
        args.input.clone()
    };
    let total = lake
        .sql(
            &format!("SELECT count(*) AS n FROM ({query}) AS input"),
            &Default::default(),
        )
        .await
        .ok()
        .and_then(|r| {
            r.batches.first().and_then(|b| {
                arrow::array::AsArray::as_primitive_opt::<arrow::datatypes::Int64Type>(b.column(0))
                    .map(|a| a.value(0) as u64)
            })
        });
    let bar = if out.json() {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} scoring [{bar:30}] {human_pos}/{human_len} rows ({per_sec}, {eta})",
            )
            .expect("a template")
            .progress_chars("=> "),
        );
        bar
    };
    let progress = {
        let bar = bar.clone();
        Arc::new(move |n: u64| bar.set_position(n))
    };
    let python = tarn_pipelines::Python::new(&lake.config.root);
    let report = tarn_ml::transform(lake, args, &python, Some(progress)).await?;
    bar.finish_and_clear();
    if out.json() {
        return print::json(&report);
    }
    println!(
        "scored {} rows with {} ({}) into {} (version {}) in {:.1} s, {:.0} rows/s",
        report.rows,
        report.model_uri,
        report.runtime,
        report.table,
        report.table_version,
        report.seconds,
        report.rows_per_second
    );
    if let Some(c) = &report.csv {
        println!("landed the predictions as CSV at {c}");
    }
    Ok(())
}

/// `train` and `transform` pipeline steps.
pub(crate) struct Ml;

impl tarn_pipelines::MlSteps for Ml {
    fn train<'a>(
        &'a self,
        cx: tarn_pipelines::MlStepContext<'a>,
        model: &'a str,
    ) -> tarn_pipelines::MlFuture<'a> {
        Box::pin(async move {
            let dir = cx
                .lake
                .config
                .root
                .join(tarn_config::MODELS_DIR)
                .join(model);
            let spec =
                tarn_config::load_train_spec(&dir).map_err(|e| format!("TrainingConfig: {e}"))?;
            // Under `tarn serve` the trainer logs through it; otherwise through a loopback server.
            let (uri, token, _stop) = match &cx.server {
                Some((url, token)) => (
                    url.clone(),
                    (!token.is_empty()).then(|| token.clone()),
                    None,
                ),
                None => {
                    let (url, stop) = loopback_server(cx.lake)
                        .await
                        .map_err(|e| format!("ClientError: {e}"))?;
                    (url, None, Some(stop))
                }
            };
            let mut opts = TrainOptions::new(cx.lake, &uri, &format!("pipeline:{}", cx.pipeline));
            opts.tracking_token = token;
            opts.python = cx.python.clone();
            opts.sink = cx.sink.clone();
            opts.tags
                .insert("tarn.pipeline".into(), cx.pipeline.to_string());
            opts.tags
                .insert("tarn.execution_id".into(), cx.execution_id.to_string());
            opts.tags.insert("tarn.step".into(), cx.step.to_string());
            let report = tarn_ml::train(cx.lake, &spec, &opts)
                .await
                .map_err(|e| format!("TrainingError: {e}"))?;
            if report.status != "succeeded" {
                return Err(format!(
                    "TrainingFailed: {}",
                    report.reason.unwrap_or_default()
                ));
            }
            serde_json::to_value(&report).map_err(|e| format!("TrainingError: {e}"))
        })
    }

    fn transform<'a>(
        &'a self,
        cx: tarn_pipelines::MlStepContext<'a>,
        step: tarn_pipelines::TransformStep,
    ) -> tarn_pipelines::MlFuture<'a> {
        Box::pin(async move {
            let args = tarn_ml::TransformArgs {
                model_uri: step.model,
                input: step.input,
                output: step.output,
                id_columns: step.id_columns,
                csv: step.csv,
            };
            let report = tarn_ml::transform(cx.lake, &args, cx.python, None)
                .await
                .map_err(|e| format!("TransformError: {e}"))?;
            serde_json::to_value(&report).map_err(|e| format!("TransformError: {e}"))
        })
    }
}

/// What the quickstart's ML part did.
#[derive(serde::Serialize)]
pub(crate) struct QuickstartMl {
    pub train: TrainReport,
    pub approved: String,
    pub transform: tarn_ml::TransformReport,
}

/// The quickstart's ML part: train (tune, gate, register) the built-in delays model, approve
/// it as champion, and score January with it.
pub(crate) async fn quickstart_ml(lake: &Lake) -> Result<QuickstartMl> {
    let spec = tarn_config::load_train_spec(&lake.config.root.join("models/delays"))?;
    let (uri, _stop) = loopback_server(lake).await?;
    let opts = TrainOptions::new(lake, &uri, "quickstart");
    let report = tarn_ml::train(lake, &spec, &opts).await?;
    let Some(reg) = report.registered.clone() else {
        bail!(
            "the quickstart's delays model was not registered: {}",
            report.reason.clone().unwrap_or_default()
        );
    };
    lake.meta
        .decide(
            &reg.model,
            &reg.version,
            true,
            "quickstart",
            "passed its gate on January 4",
        )
        .await?;
    lake.meta
        .set_alias(&reg.model, "champion", &reg.version, "quickstart")
        .await?;
    let args = tarn_ml::TransformArgs {
        model_uri: format!("models:/{}@champion", reg.model),
        input: "SELECT flight, time_hour, dep_delay, distance, hour, minute, day, arr_delay FROM flights.trusted.flights".into(),
        output: "flights.service.delay_scores".into(),
        id_columns: vec!["flight".into(), "time_hour".into(), "arr_delay".into()],
        csv: None,
    };
    let python = tarn_pipelines::Python::new(&lake.config.root);
    let transform = tarn_ml::transform(lake, &args, &python, None).await?;
    Ok(QuickstartMl {
        approved: format!("{} version {} (alias champion)", reg.model, reg.version),
        train: report,
        transform,
    })
}

/// The quickstart's ML part for people.
pub(crate) fn print_quickstart_ml(ml: &QuickstartMl) {
    println!("\nMachine learning:");
    if let Some(b) = &ml.train.best {
        println!(
            "  trained {} jobs of models/delays (bayesian tuning); the best: rmse {:.2} min ({})",
            ml.train.jobs.len(),
            b.metrics.get("rmse").copied().unwrap_or(f64::NAN),
            hp_summary(b)
        );
    }
    if let Some(g) = &ml.train.gate {
        println!(
            "  gate {} {} {}: {}",
            g.metric,
            g.operator,
            g.threshold,
            if g.passed { "passed" } else { "failed" }
        );
    }
    println!("  registered and approved {}", ml.approved);
    println!(
        "  scored {} flights of January into {} ({})\n",
        ml.transform.rows, ml.transform.table, ml.transform.runtime
    );
}
