//! `tarn experiments` and `tarn runs`: what the mlflow client tracked in this lake, read from
//! the metadata store (the same one `tarn serve` answers the client from).

use crate::cli::{ExperimentsCommand, RunsCommand};
use crate::print;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use tarn_lake::tracking::{run_maps, Run};
use tarn_lake::Lake;

pub async fn experiments(lake: &Lake, cmd: &ExperimentsCommand) -> Result<()> {
    match cmd {
        ExperimentsCommand::List { all, out } => {
            let list = lake
                .tracking()
                .experiments(if *all { None } else { Some("active") })
                .await?;
            if out.json() {
                return print::json(&list);
            }
            let mut t = print::grid(&["id", "name", "stage", "artifacts"]);
            for e in &list {
                t.add_row(vec![
                    e.experiment_id.clone(),
                    e.name.clone(),
                    e.lifecycle_stage.clone(),
                    e.artifact_location.clone(),
                ]);
            }
            println!("{t}\n{} experiment(s)", list.len());
        }
        ExperimentsCommand::Show { experiment, out } => {
            let id = experiment_id(lake, experiment).await?;
            let e = lake
                .tracking()
                .experiment(&id)
                .await?
                .context("the experiment vanished while reading it")?;
            let (active, deleted) = lake.tracking().run_counts(&id).await?;
            let models = lake
                .logged_models()
                .logged_models_of(std::slice::from_ref(&id))
                .await?;
            if out.json() {
                return print::json(&serde_json::json!({
                    "experiment": e, "runs": active + deleted, "active_runs": active,
                    "logged_models": models,
                }));
            }
            println!(
                "experiment {} ({}), {}, created {}\nartifacts: {}",
                e.name,
                e.experiment_id,
                e.lifecycle_stage,
                ms(e.creation_time),
                e.artifact_location
            );
            for t in &e.tags {
                println!("tag {} = {}", t.key, t.value);
            }
            println!(
                "{} run(s) ({active} active, {deleted} deleted); `tarn runs list --experiment {}` lists them",
                active + deleted,
                e.name
            );
            if !models.is_empty() {
                let mut t = print::grid(&["logged model", "name", "status", "run", "created"]);
                for m in &models {
                    t.add_row(vec![
                        m.info.model_id.clone(),
                        m.info.name.clone(),
                        m.info.status.clone(),
                        m.info.source_run_id.clone().unwrap_or_default(),
                        ms(m.info.creation_timestamp_ms),
                    ]);
                }
                println!("{t}");
            }
        }
    }
    Ok(())
}

async fn experiment_id(lake: &Lake, name_or_id: &str) -> Result<String> {
    if let Some(e) = lake.tracking().experiment_by_name(name_or_id).await? {
        return Ok(e.experiment_id);
    }
    if let Some(e) = lake.tracking().experiment(name_or_id).await? {
        return Ok(e.experiment_id);
    }
    bail!("no experiment is named `{name_or_id}` (or has that id); `tarn experiments list` shows them")
}

fn ms(t: i64) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub async fn runs(lake: &Lake, cmd: &RunsCommand) -> Result<()> {
    match cmd {
        RunsCommand::List {
            experiment,
            filter,
            order_by,
            limit,
            out,
        } => {
            let id = experiment_id(lake, experiment).await?;
            let (runs, _) = lake
                .tracking()
                .search_runs(
                    &[id],
                    Some("active"),
                    filter.as_deref().unwrap_or(""),
                    order_by,
                    0,
                    *limit,
                )
                .await
                .map_err(|e| match e {
                    tarn_lake::MetadataError::Refused(m) => {
                        anyhow::anyhow!("--filter/--order-by: {m}")
                    }
                    other => other.into(),
                })?;
            if out.json() {
                return print::json(&runs);
            }
            let metrics: BTreeSet<&str> = runs
                .iter()
                .flat_map(|r| r.data.metrics.iter().map(|m| m.key.as_str()))
                .collect();
            let mut header = vec!["run", "name", "status", "started"];
            header.extend(metrics.iter().copied());
            let mut t = print::grid(&header);
            for r in &runs {
                let (_, m, _) = run_maps(r);
                let mut row = vec![
                    r.info.run_id.clone(),
                    r.info.run_name.clone(),
                    r.info.status.clone(),
                    ms(r.info.start_time),
                ];
                row.extend(
                    metrics
                        .iter()
                        .map(|k| m.get(k).map(|v| v.to_string()).unwrap_or_default()),
                );
                t.add_row(row);
            }
            println!("{t}\n{} run(s)", runs.len());
        }
        RunsCommand::Show { run, out } => {
            let r = get(lake, run).await?;
            if out.json() {
                return print::json(&r);
            }
            println!(
                "run {} ({}) in experiment {}: {}, started {}{}",
                r.info.run_id,
                r.info.run_name,
                r.info.experiment_id,
                r.info.status,
                ms(r.info.start_time),
                r.info
                    .end_time
                    .map(|e| format!(", ended {}", ms(e)))
                    .unwrap_or_default()
            );
            let mut t = print::grid(&["kind", "key", "value"]);
            for p in &r.data.params {
                t.add_row(vec!["param".into(), p.key.clone(), p.value.clone()]);
            }
            for m in &r.data.metrics {
                t.add_row(vec![
                    "metric".into(),
                    m.key.clone(),
                    format!("{} (step {})", m.value, m.step),
                ]);
            }
            for g in r.data.tags.iter().filter(|g| !g.key.starts_with("mlflow.")) {
                t.add_row(vec!["tag".into(), g.key.clone(), g.value.clone()]);
            }
            println!("{t}\nartifacts: {}", r.info.artifact_uri);
        }
        RunsCommand::Compare { runs, out } => {
            let mut got = Vec::new();
            for id in runs {
                got.push(get(lake, id).await?);
            }
            if out.json() {
                return print::json(&got);
            }
            let maps: Vec<_> = got.iter().map(run_maps).collect();
            let params: BTreeSet<&str> = maps.iter().flat_map(|m| m.0.keys().copied()).collect();
            let metrics: BTreeSet<&str> = maps.iter().flat_map(|m| m.1.keys().copied()).collect();
            let mut header = vec!["".to_string()];
            header.extend(got.iter().map(|r| r.info.run_name.clone()));
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            let mut t = print::grid(&header);
            for p in &params {
                let mut row = vec![format!("params.{p}")];
                row.extend(
                    maps.iter()
                        .map(|m| m.0.get(p).map(|v| v.to_string()).unwrap_or_default()),
                );
                t.add_row(row);
            }
            for k in &metrics {
                let mut row = vec![format!("metrics.{k}")];
                row.extend(
                    maps.iter()
                        .map(|m| m.1.get(k).map(|v| v.to_string()).unwrap_or_default()),
                );
                t.add_row(row);
            }
            println!("{t}");
        }
    }
    Ok(())
}

async fn get(lake: &Lake, id: &str) -> Result<Run> {
    lake.tracking().run(id).await?.with_context(|| {
        format!("no run has id `{id}`; `tarn runs list --experiment NAME` shows them")
    })
}
