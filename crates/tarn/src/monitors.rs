//! `tarn monitors`: the monitors of monitors/*.yml, checked, run now, and their figures read
//! back from their results tables.

use crate::cli::Output;
use crate::print;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use tarn_config::MonitorSpec;
use tarn_lake::{Lake, QueryOptions};
use tarn_monitoring::{RunOptions, RunReport, Status};

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

fn find(lake: &Lake, name: &str) -> Result<MonitorSpec> {
    let specs = tarn_config::load_monitors(&lake.config)?;
    let known: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    specs.into_iter().find(|s| s.name == name).with_context(|| {
        if known.is_empty() {
            format!(
                "no monitor `{name}`: monitors/ holds none; write monitors/{name}.yml (see `tarn help monitors`)"
            )
        } else {
            format!("no monitor `{name}`; monitors: {}", known.join(", "))
        }
    })
}

pub async fn monitors(lake: &Lake, cmd: &MonitorsCommand) -> Result<()> {
    match cmd {
        MonitorsCommand::List { out } => list(lake, out).await?,
        MonitorsCommand::Validate { out } => print::validation(
            tarn_config::load_monitors(&lake.config).map(|m| m.len()),
            "monitor",
            "monitor files",
            *out,
        )?,
        MonitorsCommand::Show { name, out } => show(lake, name, out).await?,
        MonitorsCommand::Run { name, window, out } => run(lake, name, window, out).await?,
        MonitorsCommand::History { name, limit, out } => history(lake, name, *limit, out).await?,
        MonitorsCommand::Report {
            name,
            run,
            alerts,
            out,
        } => report(lake, name, run, *alerts, out).await?,
    }
    Ok(())
}

async fn list(lake: &Lake, out: &Output) -> Result<()> {
    let specs = tarn_config::load_monitors(&lake.config)?;
    if out.json() {
        let list: Vec<_> = specs.iter().map(tarn_monitoring::summary).collect();
        return print::json(&list);
    }
    let mut t = print::grid(&[
        "monitor", "model", "serving", "window", "schedule", "checks", "results",
    ]);
    for s in &specs {
        t.add_row(vec![
            s.name.clone(),
            s.model
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
            s.endpoint
                .as_ref()
                .map(|e| format!("endpoint {e}"))
                .unwrap_or_else(|| "query".into()),
            s.window.to_string(),
            s.schedule.clone().unwrap_or_else(|| "-".into()),
            s.checks
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", "),
            s.results_table(),
        ]);
    }
    println!("{t}\n{} monitor(s)", specs.len());
    Ok(())
}

async fn show(lake: &Lake, name: &str, out: &Output) -> Result<()> {
    let s = find(lake, name)?;
    if out.json() {
        return print::json(&tarn_monitoring::summary(&s));
    }
    println!("monitor {} ({})", s.name, s.path.display());
    if let Some(m) = &s.model {
        println!(
            "model:    {m}{}",
            s.model_type
                .map(|t| format!(" ({})", t.name()))
                .unwrap_or_default()
        );
    }
    println!(
        "serving:  {}",
        s.serving.query.clone().unwrap_or_else(|| format!(
            "the inference table of endpoint {}",
            s.endpoint.clone().unwrap_or_default()
        ))
    );
    println!(
        "          id {}, time {}",
        s.serving.id_column, s.serving.timestamp_column
    );
    if let Some(a) = &s.actuals {
        println!("actuals:  {} (id {})", a.query, a.id_column);
    }
    println!(
        "baseline: {}",
        match &s.baseline {
            tarn_config::Baseline::Training => "the version's training data".to_string(),
            tarn_config::Baseline::Query(q) => q.clone(),
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
    println!("results:  {}", s.results_table());
    if let Some(a) = &s.alert {
        println!("alerts:   topic {} ({})", a.topic, a.severity);
    }
    let mut t = print::grid(&["group", "field", "type", "from"]);
    for f in &s.fields {
        t.add_row(vec![
            f.group.name().to_string(),
            f.name.clone(),
            f.field_type.name().to_string(),
            f.expression.clone(),
        ]);
    }
    println!("{t}");
    for c in &s.checks {
        println!("check: {c:?}");
    }
    Ok(())
}

async fn run(lake: &Lake, name: &str, window: &Option<String>, out: &Output) -> Result<()> {
    let spec = find(lake, name)?;
    let window = match window {
        Some(w) => Some(tarn_config::parse_window(w).with_context(|| {
            format!("`--window {w}` is not a window: write a length (30m, 1h, 1d, 7d), a row count (1000) or `all`")
        })?),
        None => None,
    };
    let bar = (!out.json()).then(|| print::spinner(&format!("running monitor {name}")));
    let report = tarn_monitoring::run(
        lake,
        &spec,
        &RunOptions {
            window,
            now_micros: None,
        },
    )
    .await;
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

async fn history(lake: &Lake, name: &str, limit: usize, out: &Output) -> Result<()> {
    let spec = find(lake, name)?;
    let table = spec.results_table();
    let sql = format!(
        "SELECT run_id, max(evaluated_at) AS evaluated_at, count(DISTINCT window_start) AS windows, \
         sum(CASE WHEN status = 'alert' THEN 1 ELSE 0 END) AS alerts, count(*) AS figures \
         FROM {table} GROUP BY run_id ORDER BY evaluated_at DESC LIMIT {limit}"
    );
    let rows = rows_of(lake, &sql, &table).await?;
    if out.json() {
        return print::json(&rows);
    }
    let mut t = print::grid(&["run", "evaluated at", "windows", "figures", "alerts"]);
    for r in &rows {
        t.add_row(
            ["run_id", "evaluated_at", "windows", "figures", "alerts"]
                .iter()
                .map(|k| text(&r[*k]))
                .collect::<Vec<_>>(),
        );
    }
    println!("{t}\n{} run(s) of monitor {name}", rows.len());
    Ok(())
}

async fn report(
    lake: &Lake,
    name: &str,
    run: &Option<String>,
    alerts: bool,
    out: &Output,
) -> Result<()> {
    let spec = find(lake, name)?;
    let table = spec.results_table();
    let run_filter = match run {
        Some(r) => format!("'{}'", r.replace('\'', "''")),
        None => format!("(SELECT run_id FROM {table} ORDER BY evaluated_at DESC LIMIT 1)"),
    };
    let sql = format!(
        "SELECT run_id, window_start, window_end, \"check\", field, method, value, threshold, status, \
         rows_compared, reference_rows, model_version, detail FROM {table} \
         WHERE run_id = {run_filter} ORDER BY window_start, \"check\", field"
    );
    let mut rows = rows_of(lake, &sql, &table).await?;
    if alerts {
        let alerting: std::collections::BTreeSet<String> = rows
            .iter()
            .filter(|r| r["status"] == "alert")
            .map(|r| text(&r["window_start"]))
            .collect();
        rows.retain(|r| alerting.contains(&text(&r["window_start"])));
    }
    if out.json() {
        return print::json(&rows);
    }
    if rows.is_empty() {
        println!("monitor {name} has no figures yet; run `tarn monitors run {name}`");
        return Ok(());
    }
    let mut current = String::new();
    let mut t = None;
    for r in &rows {
        let w = format!("{} .. {}", text(&r["window_start"]), text(&r["window_end"]));
        if w != current {
            if let Some(t) = t.take() {
                println!("{t}");
            }
            println!("\nwindow {w} (model version {})", text(&r["model_version"]));
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
                text(&r["check"]),
                text(&r["field"]),
                text(&r["method"]),
                figure(&r["value"]),
                figure(&r["threshold"]),
                status_mark(&text(&r["status"])),
                text(&r["rows_compared"]),
                text(&r["detail"]),
            ]);
        }
    }
    if let Some(t) = t {
        println!("{t}");
    }
    println!("\nrun {}", text(&rows[0]["run_id"]));
    Ok(())
}

/// A query over a results table as JSON rows; a monitor never run gets a clear message.
async fn rows_of(lake: &Lake, sql: &str, table: &str) -> Result<Vec<serde_json::Value>> {
    let res = match lake.sql(sql, &QueryOptions::default()).await {
        Ok(r) => r,
        Err(e) if e.to_string().contains("not found") || e.to_string().contains("no table") => {
            bail!("{table} does not exist yet: run the monitor first (`tarn monitors run NAME`)")
        }
        Err(e) => return Err(e.into()),
    };
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::ArrayWriter::new(&mut buf);
        for b in &res.batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice(&buf)?)
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn figure(v: &serde_json::Value) -> String {
    match v.as_f64() {
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
