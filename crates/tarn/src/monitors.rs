//! `tarn monitors`: the monitors of monitors/*.yml, checked, run now, and their figures read
//! back from their results tables, on the lake folder or through `--server` alike.

use crate::cli::Output;
use crate::print;
use anyhow::Result;
use clap::Subcommand;
use tarn_client::{ClientError, Operations};
use tarn_monitoring::{MonitorError, RunReport, Status};

#[derive(Subcommand)]
pub(crate) enum MonitorsCommand {
    /// The monitors of monitors/, with their model, window, schedule and checks.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Check every monitor file and report every problem at once, with file and line.
    Validate {
        #[command(flatten)]
        out: Output,
    },
    /// One monitor as tarn reads it: its fields, sources, window and checks.
    Show {
        name: String,
        #[command(flatten)]
        out: Output,
    },
    /// Run a monitor now: cut its serving data into windows, evaluate every check against the
    /// baseline, append the figures to DOMAIN.service.monitor_NAME and raise alerts.
    ///
    /// Examples:
    ///   tarn monitors run delays
    ///   tarn monitors run delays --window 7d
    ///   tarn monitors run delays --window all --format json
    #[command(verbatim_doc_comment)]
    Run {
        name: String,
        /// Another window than the file's: 1h, 1d, 7d, a row count (1000) or `all`.
        #[arg(long)]
        window: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// The runs of a monitor, newest first: windows, alerts, when.
    History {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        out: Output,
    },
    /// The figures of a monitor's latest run (or of --run), one table per window.
    Report {
        name: String,
        /// A run id from `tarn monitors history`.
        #[arg(long)]
        run: Option<String>,
        /// Only windows with an alert.
        #[arg(long)]
        alerts: bool,
        #[command(flatten)]
        out: Output,
    },
}

pub async fn monitors(ops: &dyn Operations, cmd: &MonitorsCommand) -> Result<()> {
    match cmd {
        MonitorsCommand::List { out } => list(ops, out).await?,
        MonitorsCommand::Validate { out } => match ops.monitors().await {
            Ok(l) => print::validation(Ok(l.len()), "monitor", "monitor files", *out)?,
            Err(ClientError::Monitor(e)) => match *e {
                MonitorError::Config(c) => {
                    print::validation(Err(c), "monitor", "monitor files", *out)?
                }
                e => return Err(ClientError::from(e).into()),
            },
            Err(e) => return Err(e.into()),
        },
        MonitorsCommand::Show { name, out } => show(ops, name, out).await?,
        MonitorsCommand::Run { name, window, out } => run(ops, name, window, out).await?,
        MonitorsCommand::History { name, limit, out } => history(ops, name, *limit, out).await?,
        MonitorsCommand::Report {
            name,
            run,
            alerts,
            out,
        } => report(ops, name, run, *alerts, out).await?,
    }
    Ok(())
}

async fn list(ops: &dyn Operations, out: &Output) -> Result<()> {
    let list = ops.monitors().await?;
    if out.json() {
        return print::json(&list);
    }
    let mut t = print::grid(&[
        "monitor", "model", "serving", "window", "schedule", "checks", "results",
    ]);
    for s in &list {
        t.add_row(vec![
            s.name.clone(),
            s.model.clone().unwrap_or_else(|| "-".into()),
            s.endpoint
                .as_ref()
                .map(|e| format!("endpoint {e}"))
                .unwrap_or_else(|| "query".into()),
            s.window.clone(),
            s.schedule.clone().unwrap_or_else(|| "-".into()),
            s.checks.join(", "),
            s.results_table.clone(),
        ]);
    }
    println!("{t}\n{} monitor(s)", list.len());
    Ok(())
}

async fn show(ops: &dyn Operations, name: &str, out: &Output) -> Result<()> {
    let s = ops.monitor(name).await?;
    if out.json() {
        return print::json(&s);
    }
    println!("monitor {} ({})", s.name, s.file);
    if let Some(m) = &s.model {
        println!(
            "model:    {m}{}",
            s.model_type
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        );
    }
    println!(
        "serving:  {}",
        s.serving_query.clone().unwrap_or_else(|| format!(
            "the inference table of endpoint {}",
            s.endpoint.clone().unwrap_or_default()
        ))
    );
    println!("          id {}, time {}", s.id_column, s.timestamp_column);
    if let Some(a) = &s.actuals_query {
        println!("actuals:  {a} (id {})", s.id_column);
    }
    println!(
        "baseline: {}",
        if s.baseline == "training" {
            "the version's training data"
        } else {
            &s.baseline
        }
    );
    println!(
        "window:   {}{}",
        s.window,
        s.schedule
            .as_ref()
            .map(|c| format!(", run at `{c}`"))
            .unwrap_or_default()
    );
    println!("results:  {}", s.results_table);
    if let Some(topic) = &s.alert_topic {
        println!(
            "alerts:   topic {topic} ({})",
            s.severity.clone().unwrap_or_default()
        );
    }
    let mut t = print::grid(&["group", "field", "type", "from"]);
    for f in &s.fields {
        t.add_row(vec![
            f.group.clone(),
            f.name.clone(),
            f.field_type.clone(),
            f.from.clone(),
        ]);
    }
    println!("{t}");
    for c in &s.check_settings {
        println!("check: {c}");
    }
    Ok(())
}

async fn run(
    ops: &dyn Operations,
    name: &str,
    window: &Option<String>,
    out: &Output,
) -> Result<()> {
    let bar = (!out.json()).then(|| print::spinner(&format!("running monitor {name}")));
    let report = ops.run_monitor(name, window.as_deref()).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = report?;
    if out.json() {
        return print::json(&report);
    }
    print_report(&report, false);
    Ok(())
}

async fn history(ops: &dyn Operations, name: &str, limit: usize, out: &Output) -> Result<()> {
    let runs = ops.monitor_runs(name, limit).await?;
    if out.json() {
        return print::json(&runs);
    }
    let mut t = print::grid(&["run", "evaluated at", "windows", "figures", "alerts"]);
    for r in &runs {
        t.add_row(vec![
            r.run_id.clone(),
            r.evaluated_at.clone(),
            r.windows.to_string(),
            r.figures.to_string(),
            r.alerts.to_string(),
        ]);
    }
    println!("{t}\n{} run(s) of monitor {name}", runs.len());
    Ok(())
}

async fn report(
    ops: &dyn Operations,
    name: &str,
    run: &Option<String>,
    alerts: bool,
    out: &Output,
) -> Result<()> {
    let figures = ops.monitor_figures(name, run.as_deref(), alerts).await?;
    if out.json() {
        return print::json(&figures);
    }
    if figures.is_empty() {
        if alerts {
            println!("no window of this run of monitor {name} alerted");
        } else {
            println!("monitor {name} has no figures yet; run `tarn monitors run {name}`");
        }
        return Ok(());
    }
    let mut current = String::new();
    let mut t = None;
    for x in &figures {
        let f = &x.result;
        let w = format!("{} .. {}", x.window_start, x.window_end);
        if w != current {
            if let Some(t) = t.take() {
                println!("{t}");
            }
            println!("\nwindow {w} (model version {})", f.model_version);
            current = w;
            t = Some(print::grid(&[
                "check",
                "field",
                "method",
                "value",
                "threshold",
                "status",
                "rows",
                "detail",
            ]));
        }
        if let Some(t) = t.as_mut() {
            t.add_row(vec![
                f.check.clone(),
                f.field.clone(),
                f.method.clone(),
                figure(f.value),
                figure(f.threshold),
                status_mark(f.status.name()),
                f.rows_compared.to_string(),
                f.detail.clone(),
            ]);
        }
    }
    if let Some(t) = t {
        println!("{t}");
    }
    println!("\nrun {}", figures[0].run_id);
    Ok(())
}

fn figure(v: Option<f64>) -> String {
    match v {
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e6) => format!("{x:.3e}"),
        Some(x) => format!("{x:.4}"),
        None => String::new(),
    }
}

fn status_mark(s: &str) -> String {
    match s {
        "alert" => "ALERT".into(),
        other => other.to_string(),
    }
}

/// A run for people: a line per window, the figures that breached, the alerts raised.
pub fn print_report(r: &RunReport, all: bool) {
    if let Some(note) = &r.note {
        println!("monitor {}: {note}", r.monitor);
        return;
    }
    println!(
        "monitor {}: {} row(s) in {} window(s) of {}; baseline {} row(s){}",
        r.monitor,
        r.rows,
        r.windows.len(),
        r.window,
        r.baseline_rows,
        if r.baseline_reused {
            " (kept profile)"
        } else {
            ""
        }
    );
    let mut t = print::grid(&[
        "window",
        "rows",
        "labelled",
        "version",
        "figures",
        "alerts",
        "not enough data",
    ]);
    for w in &r.windows {
        let count = |s: Status| w.results.iter().filter(|x| x.status == s).count();
        t.add_row(vec![
            format!("{} .. {}", w.start, w.end),
            w.rows.to_string(),
            w.labelled.to_string(),
            w.model_versions.join(","),
            w.results.len().to_string(),
            count(Status::Alert).to_string(),
            count(Status::NotEnoughData).to_string(),
        ]);
    }
    println!("{t}");
    let breaches: Vec<_> = r
        .windows
        .iter()
        .flat_map(|w| w.results.iter().map(move |x| (w, x)))
        .filter(|(_, x)| all || x.status == Status::Alert || x.status == Status::Error)
        .collect();
    if !breaches.is_empty() {
        let mut t = print::grid(&[
            "window",
            "check",
            "field",
            "method",
            "value",
            "threshold",
            "status",
            "detail",
        ]);
        for (w, x) in breaches {
            t.add_row(vec![
                w.start.clone(),
                x.check.clone(),
                x.field.clone(),
                x.method.clone(),
                x.value.map(|v| format!("{v:.4}")).unwrap_or_default(),
                x.threshold.map(|v| format!("{v}")).unwrap_or_default(),
                status_mark(x.status.name()),
                x.detail.clone(),
            ]);
        }
        println!("{t}");
    }
    println!(
        "{} alert(s) raised, {} recovered; figures in {} (run {}); `tarn monitors report {}` shows them all",
        r.alerts.len(),
        r.recovered.len(),
        r.table,
        r.run_id,
        r.monitor
    );
}
