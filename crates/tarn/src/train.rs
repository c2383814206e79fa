//! `tarn train`: runs a model folder's training (`models/<name>/train.yml`) on the lake: the
//! job (or a tuning's jobs) as tracking runs, the gate, the registration. The trainer's
//! `mlflow` client reaches a tracking server tarn starts on loopback for the training.

use crate::cli::Output;
use crate::print;
use anyhow::{bail, Result};
use std::sync::Arc;
use tarn_lake::Lake;
use tarn_ml::{JobOutcome, TrainOptions, TrainReport};

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
    let (uri, _stop) = tarn_node::loopback_server(lake).await?;
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

/// The quickstart's ML part for people.
pub(crate) fn print_quickstart_ml(ml: &tarn_node::QuickstartMl) {
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
