//! The pipeline commands: `tarn pipelines`, `tarn executions`, `tarn events put`,
//! `tarn notify test`, and the engine `tarn serve` runs beside the API.

use crate::cli::{ExecutionsCommand, Output, PipelinesCommand};
use crate::print;
use anyhow::{bail, Context, Result};
use std::sync::Arc;
use tarn_client::Operations;
use tarn_lake::{status, Lake, NewEvent};
use tarn_pipelines::Progress;

pub async fn pipelines(lake: &Lake, cmd: &PipelinesCommand) -> Result<()> {
    match cmd {
        PipelinesCommand::List { out } => {
            let engine = tarn_node::engine(lake)?;
            if out.json() {
                let list: Vec<_> = engine.pipelines.iter().map(|p| serde_json::json!({
                    "name": p.name, "domain": p.domain, "origin": p.origin, "target": p.target,
                    "dir": p.dir, "triggers": p.triggers.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>(),
                    "steps": p.steps.iter().map(|s| serde_json::json!({"name": s.name, "type": s.kind.type_name(), "next_step": s.next})).collect::<Vec<_>>(),
                })).collect();
                return print::json(&list);
            }
            let mut t = print::grid(&["pipeline", "domain", "layers", "triggers", "steps"]);
            for p in engine.pipelines.iter() {
                t.add_row(vec![
                    p.name.clone(),
                    p.domain.clone(),
                    format!("{} -> {}", p.origin, p.target),
                    p.triggers
                        .iter()
                        .map(trigger_text)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    p.steps
                        .iter()
                        .map(|s| format!("{} ({})", s.name, s.kind.type_name()))
                        .collect::<Vec<_>>()
                        .join(" -> "),
                ]);
            }
            println!("{t}\n{} pipeline(s)", engine.pipelines.len());
        }
        PipelinesCommand::Validate { out } => print::validation(
            tarn_config::load_pipelines(&lake.config).map(|p| p.len()),
            "pipeline",
            "pipeline folders",
            *out,
        )?,
        PipelinesCommand::Run { name, event, out } => run_once(lake, name, event, *out).await?,
    }
    Ok(())
}

fn trigger_text(t: &tarn_config::Trigger) -> String {
    match t {
        tarn_config::Trigger::S3 { prefix, suffix } => format!("s3: {prefix}*{suffix}"),
        tarn_config::Trigger::EventRule {
            source,
            detail_type,
        } => {
            format!("event: {} / {}", source.join("|"), detail_type.join("|"))
        }
        tarn_config::Trigger::Schedule(c) => format!("schedule: {c}"),
    }
}

async fn run_once(lake: &Lake, name: &str, event: &std::path::Path, out: Output) -> Result<()> {
    let text = if event == std::path::Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        std::fs::read_to_string(event).with_context(|| format!("reading {}", event.display()))?
    };
    let detail: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: not JSON: {e}",
            event.display(),
            e.line(),
            e.column()
        )
    })?;
    let quiet = out.json();
    let engine = tarn_node::engine(lake)?.with_sink(Arc::new(move |line: &str| {
        if !quiet {
            eprintln!("  | {line}");
        }
    }));
    engine.pipeline(name)?;
    let e = NewEvent {
        kind: tarn_pipelines::MANUAL_EVENT.into(),
        zone: String::new(),
        key: name.into(),
        etag: uuid::Uuid::new_v4().to_string(),
        size: text.len() as u64,
        detail,
    };
    let event_id = lake.events().record_event_id(&e).await?.unwrap_or_default();
    let recorded = lake
        .events()
        .event(&event_id)
        .await?
        .context("the event just recorded is missing")?;
    let wanted = engine.executions_for(&recorded, Some(name)).await?;
    let created = lake.executions().dispatch(&event_id, &wanted).await?;
    let id = created
        .first()
        .context("the trigger module declined the event (it returned None)")?
        .clone();
    if !quiet {
        eprintln!("execution {id} of {name}");
    }
    loop {
        match engine.work_once(Some(&id)).await? {
            Some((_, Progress::Ended(_))) | Some((_, Progress::Lost)) => break,
            Some((_, Progress::Waiting)) | None => {
                if !quiet {
                    eprintln!("  (waiting to retry)");
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
        }
    }
    engine.flush(std::time::Duration::from_secs(30)).await;
    show(lake, &id, out).await?;
    let exec = lake
        .executions()
        .execution(&id)
        .await?
        .context("execution vanished")?;
    if exec.status != status::SUCCEEDED {
        bail!(
            "execution {id} {}: {}",
            exec.status,
            exec.error.unwrap_or_default()
        );
    }
    Ok(())
}

async fn show(ops: &dyn Operations, id: &str, out: Output) -> Result<()> {
    let detail = ops.execution(id).await?;
    if out.json() {
        return print::json(&detail);
    }
    let (exec, attempts) = (detail.execution, detail.attempts);
    println!(
        "execution {} of {}: {}\nstarted by event {} at {}{}",
        exec.id,
        exec.pipeline,
        exec.status,
        exec.event_id,
        exec.created_at.chars().take(19).collect::<String>(),
        exec.error
            .as_ref()
            .map(|e| format!("\nerror: {e}"))
            .unwrap_or_default()
    );
    let mut t = print::grid(&[
        "step",
        "attempt",
        "status",
        "started",
        "ms",
        "node",
        "output / error",
    ]);
    for a in &attempts {
        let ms = match (
            &a.finished_at,
            chrono::DateTime::parse_from_rfc3339(&a.started_at),
        ) {
            (Some(f), Ok(s)) => chrono::DateTime::parse_from_rfc3339(f)
                .map(|f| (f - s).num_milliseconds().to_string())
                .unwrap_or_default(),
            _ => String::new(),
        };
        let what = match (&a.error, &a.output) {
            (Some(e), _) => e.clone(),
            (None, Some(o)) => truncate(&o.to_string(), 80),
            _ => String::new(),
        };
        t.add_row(vec![
            a.step.clone(),
            a.attempt.to_string(),
            a.status.clone(),
            a.started_at.chars().skip(11).take(12).collect(),
            ms,
            a.node.clone(),
            what,
        ]);
    }
    println!("{t}");
    if let Some(o) = &exec.output {
        println!("output: {}", truncate(&o.to_string(), 400));
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

pub async fn executions(ops: &dyn Operations, cmd: &ExecutionsCommand) -> Result<()> {
    match cmd {
        ExecutionsCommand::List {
            pipeline,
            status,
            limit,
            out,
        } => {
            let list = ops
                .executions(pipeline.as_deref(), status.as_deref(), *limit)
                .await?;
            if out.json() {
                return print::json(&list);
            }
            let mut t = print::grid(&[
                "execution",
                "pipeline",
                "status",
                "step",
                "created",
                "error",
            ]);
            for e in &list {
                t.add_row(vec![
                    e.id.clone(),
                    e.pipeline.clone(),
                    e.status.clone(),
                    e.step.clone().unwrap_or_default(),
                    e.created_at.chars().take(19).collect(),
                    truncate(e.error.as_deref().unwrap_or(""), 60),
                ]);
            }
            println!("{t}\n{} execution(s)", list.len());
        }
        ExecutionsCommand::Show { id, out } => show(ops, id, *out).await?,
        ExecutionsCommand::Logs { id } => {
            let text = ops.execution_logs(id).await?;
            print!("{text}");
        }
        ExecutionsCommand::Retry { id } => {
            ops.retry_execution(id).await?;
            println!("execution {id} will run again from the step it stopped at (a running `tarn serve` picks it up)");
        }
        ExecutionsCommand::Cancel { id } => {
            ops.cancel_execution(id).await?;
            println!("cancelled execution {id}");
        }
    }
    Ok(())
}

pub async fn notify_test(lake: &Lake, topic: &str, out: Output) -> Result<()> {
    let n = tarn_notify::Notifier::for_lake(&lake.config);
    let msg = tarn_notify::Message::new(
        format!("test message from tarn ({})", lake.config.lake),
        serde_json::json!({"lake": lake.config.lake, "topic": topic, "test": true}),
    );
    let report = n.deliver(topic, &msg).await?;
    lake.record_deliveries(topic, &msg.subject, &report).await;
    if out.json() {
        print::json(&report)?;
    } else {
        for d in &report {
            println!(
                "{} {}: {} after {} attempt(s){}",
                d.protocol,
                d.endpoint,
                if d.delivered {
                    "delivered"
                } else {
                    "NOT delivered"
                },
                d.attempts,
                d.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
        if report.is_empty() {
            println!("topic `{topic}` has no subscriptions");
        }
    }
    if report.iter().any(|d| !d.delivered) {
        bail!("some subscriptions of `{topic}` were not reached");
    }
    Ok(())
}

pub fn print_quickstart_pipeline(p: &tarn_node::QuickstartPipeline) {
    let e = &p.execution.execution;
    println!(
        "5. landed {}: pipelines/daily_flights ran (execution {}, {}):",
        p.landed, e.id, e.status
    );
    for a in &p.execution.attempts {
        println!("     {} ({})", a.step, a.status);
    }
    println!(
        "     {} rows of that day merged into flights.trusted.flights, {} rejected; it now has {} rows\n",
        p.merged["rows_written"], p.merged["rows_rejected"], p.merged["row_count"]
    );
}

pub async fn deliveries(lake: &Lake, topic: Option<&str>, limit: i64, out: Output) -> Result<()> {
    let list = lake.deliveries().list(topic, limit).await?;
    if out.json() {
        return print::json(&list);
    }
    let mut t = print::grid(&[
        "time",
        "topic",
        "protocol",
        "endpoint",
        "delivered",
        "tries",
        "subject / error",
    ]);
    for d in &list {
        t.add_row(vec![
            d.created_at.chars().take(19).collect(),
            d.topic.clone(),
            d.protocol.clone(),
            d.endpoint.clone(),
            if d.delivered {
                "yes".into()
            } else {
                "NO".into()
            },
            d.attempts.to_string(),
            truncate(d.error.as_deref().unwrap_or(&d.subject), 70),
        ]);
    }
    println!("{t}\n{} deliver(ies)", list.len());
    Ok(())
}
