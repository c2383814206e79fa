//! `tarn models`: the model registry (what `mlflow.register_model` and
//! `log_model(..., registered_model_name=...)` recorded) with tarn's approvals, locally or
//! through `--server`.

use crate::cli::ModelsCommand;
use crate::print;
use anyhow::{bail, Result};
use tarn_client::Operations;
use tarn_lake::registry::{ModelVersion, DEFAULT_APPROVAL_TAG, PENDING, REQUIRED_FOR_TAG};

fn ms(t: i64) -> String {
    if t == 0 {
        return String::new();
    }
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn versions_grid(versions: &[ModelVersion]) -> comfy_table::Table {
    let mut t = print::grid(&[
        "version", "stage", "aliases", "approval", "by", "when", "reason", "run",
    ]);
    for v in versions {
        t.add_row(vec![
            v.version.clone(),
            v.current_stage.clone(),
            v.aliases.join(", "),
            v.approval.status.clone(),
            v.approval.by.clone(),
            ms(v.approval.time),
            v.approval.reason.clone(),
            v.run_id.clone(),
        ]);
    }
    t
}

pub async fn models(ops: &dyn Operations, cmd: &ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::List { out } => {
            let models = ops.models().await?;
            if out.json() {
                return print::json(&models);
            }
            let mut t = print::grid(&["name", "latest", "aliases", "updated", "description"]);
            for m in &models {
                let latest = m
                    .latest_versions
                    .iter()
                    .map(|v| format!("{} ({})", v.version, v.current_stage))
                    .collect::<Vec<_>>()
                    .join(", ");
                let aliases = m
                    .aliases
                    .iter()
                    .map(|a| format!("{}→{}", a.alias, a.version))
                    .collect::<Vec<_>>()
                    .join(", ");
                t.add_row(vec![
                    m.name.clone(),
                    latest,
                    aliases,
                    ms(m.last_updated_timestamp),
                    m.description.clone(),
                ]);
            }
            println!("{t}\n{} model(s)", models.len());
        }
        ModelsCommand::Show { name, out } => {
            let (m, versions) = ops.model(name).await?;
            if out.json() {
                return print::json(&serde_json::json!({ "model": m, "versions": versions }));
            }
            let tag = |k: &str| m.tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
            println!(
                "model {} (created {}, by {})",
                m.name,
                ms(m.creation_timestamp),
                m.user_id
            );
            if !m.description.is_empty() {
                println!("{}", m.description);
            }
            println!(
                "new versions start {}; approval required for: {}",
                tag(DEFAULT_APPROVAL_TAG).unwrap_or_else(|| PENDING.into()),
                tag(REQUIRED_FOR_TAG).unwrap_or_else(|| "nothing".into())
            );
            for a in &m.aliases {
                println!("alias {} → version {}", a.alias, a.version);
            }
            for t in m
                .tags
                .iter()
                .filter(|t| !t.key.starts_with("tarn.approval."))
            {
                println!("tag {} = {}", t.key, t.value);
            }
            println!(
                "{}\n{} version(s)",
                versions_grid(&versions),
                versions.len()
            );
        }
        ModelsCommand::Versions {
            name,
            approval,
            out,
        } => {
            let (_, mut versions) = ops.model(name).await?;
            if let Some(a) = approval {
                versions.retain(|v| v.approval.status.eq_ignore_ascii_case(a));
            }
            if out.json() {
                return print::json(&versions);
            }
            println!(
                "{}\n{} version(s)",
                versions_grid(&versions),
                versions.len()
            );
        }
        ModelsCommand::Approve {
            name,
            version,
            reason,
            out,
        }
        | ModelsCommand::Reject {
            name,
            version,
            reason,
            out,
        } => {
            let approve = matches!(cmd, ModelsCommand::Approve { .. });
            if reason.trim().is_empty() {
                bail!("--reason is required: say why the version is approved or rejected");
            }
            let v = ops
                .decide(name, version, approve, reason, &crate::me())
                .await?;
            if out.json() {
                return print::json(&v);
            }
            println!(
                "version {} of {} is {} (by {}: {})",
                v.version, v.name, v.approval.status, v.approval.by, v.approval.reason
            );
        }
        ModelsCommand::Alias {
            name,
            alias,
            version,
            delete,
        } => match (version, delete) {
            (Some(v), false) => {
                ops.set_alias(name, alias, Some(v), &crate::me()).await?;
                println!("{name}@{alias} → version {v}");
            }
            (None, true) => {
                ops.set_alias(name, alias, None, &crate::me()).await?;
                println!("removed alias {alias} of {name}");
            }
            _ => bail!("give a VERSION to point the alias at, or --delete to remove it"),
        },
    }
    Ok(())
}
