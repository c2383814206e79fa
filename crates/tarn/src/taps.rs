//! `tarn taps` and `tarn secrets`: Singer taps declared under `taps:` in tarn.yml, run into
//! the lake's tables, and tarn's own secret store they read passwords from.

use crate::cli::Output;
use crate::print;
use anyhow::{bail, Result};
use clap::Subcommand;
use std::io::IsTerminal;
use tarn_lake::Lake;

#[derive(Subcommand)]
pub enum TapsCommand {
    /// The taps of tarn.yml: id, package, where they write, schedule, saved state.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Install a tap's package into its own virtualenv (done by `run` when needed) and say
    /// which program runs it.
    Install {
        name: String,
        #[command(flatten)]
        out: Output,
    },
    /// Run the tap's discovery, keep its catalog, and show its streams and which are selected.
    Discover {
        name: String,
        #[command(flatten)]
        out: Output,
    },
    /// Run a tap once: its streams into DOMAIN.LAYER.<name>_<stream>, its state saved after
    /// each commit, a progress line on a terminal.
    ///
    /// Examples:
    ///   tarn taps run warehouse
    ///   tarn sql "SELECT count(*) FROM flights.raw.warehouse_public_flights"
    ///   tarn taps state warehouse
    #[command(verbatim_doc_comment)]
    Run {
        name: String,
        /// Run discovery again first instead of using the kept catalog.
        #[arg(long)]
        discover: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Show a tap's saved state (its bookmarks), or clear it with --reset so the next run
    /// starts from the beginning.
    State {
        name: String,
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Store a secret, read from standard input (not echoed on a terminal); taps name it as
    /// `tarn:NAME` under `secrets:`.
    ///
    /// Examples:
    ///   tarn secrets set pg_password            (type it, then Enter)
    ///   printf %s "$PGPASSWORD" | tarn secrets set pg_password
    ///
    /// The value is sealed with ChaCha20-Poly1305 in the metadata store; the key is
    /// TARN_SECRET_KEY (64 hex digits), else the file TARN_SECRET_KEY_FILE, else
    /// ~/.config/tarn/secret.key (written on first use, mode 0600).
    #[command(verbatim_doc_comment)]
    Set { name: String },
    /// The stored secrets' names and when each was set (never their values).
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Delete a stored secret.
    Delete { name: String },
}

pub async fn taps(lake: &Lake, cmd: &TapsCommand) -> Result<()> {
    match cmd {
        TapsCommand::List { out } => list(lake, *out).await,
        TapsCommand::Install { name, out } => {
            let tap = tarn_ingest::spec(lake, name)?;
            let bar = print::spinner(&format!(
                "installing tap {name} ({})",
                tap.source
                    .clone()
                    .unwrap_or_else(|| format!("tap-{}", tap.id))
            ));
            let program = tarn_ingest::install(lake, tap).await;
            bar.finish_and_clear();
            let program = program?;
            if out.json() {
                return print::json(
                    &serde_json::json!({"tap": name, "program": program.script, "python": program.python}),
                );
            }
            println!("tap {name} is installed: {}", program.script.display());
            Ok(())
        }
        TapsCommand::Discover { name, out } => {
            let tap = tarn_ingest::spec(lake, name)?;
            let bar = print::spinner(&format!("discovering the streams of tap {name}"));
            let found = tarn_ingest::selected_catalog(lake, tap, true).await;
            bar.finish_and_clear();
            let found = found?;
            let (catalog, selected) = (found.catalog, found.streams);
            let streams: Vec<serde_json::Value> = catalog["streams"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    let id = s["tap_stream_id"].as_str().or(s["stream"].as_str()).unwrap_or_default().to_string();
                    serde_json::json!({
                        "stream": id,
                        "selected": selected.contains(&id),
                        "table": format!("{}.{}.{}", tap.domain, tap.layer(), tap.table_of(&id)),
                        "properties": s["schema"]["properties"].as_object().map(|o| o.len()).unwrap_or(0),
                        "key_properties": s["key_properties"],
                    })
                })
                .collect();
            if out.json() {
                return print::json(&streams);
            }
            let mut t = print::grid(&["stream", "selected", "table", "properties", "keys"]);
            for s in &streams {
                t.add_row(vec![
                    s["stream"].as_str().unwrap_or_default().to_string(),
                    if s["selected"] == true { "yes" } else { "no" }.to_string(),
                    s["table"].as_str().unwrap_or_default().to_string(),
                    s["properties"].to_string(),
                    s["key_properties"]
                        .as_array()
                        .map(|k| {
                            k.iter()
                                .filter_map(|x| x.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                ]);
            }
            println!(
                "{t}\n{} stream(s), {} selected; the catalog is kept in {}",
                streams.len(),
                selected.len(),
                tarn_ingest::tap_dir(lake, name)
                    .join("catalog.json")
                    .display()
            );
            Ok(())
        }
        TapsCommand::Run {
            name,
            discover,
            out,
        } => run(lake, name, *discover, *out).await,
        TapsCommand::State { name, reset, out } => {
            if *reset {
                let had = tarn_ingest::reset(lake, name).await?;
                if out.json() {
                    return print::json(&serde_json::json!({"tap": name, "reset": had}));
                }
                println!(
                    "{}",
                    if had {
                        format!("the state of tap {name} is cleared: its next run starts from the beginning")
                    } else {
                        format!("tap {name} had no saved state")
                    }
                );
                return Ok(());
            }
            let state = tarn_ingest::state(lake, name).await?;
            if out.json() {
                return print::json(&state);
            }
            match state {
                Some(s) if !s.state.is_null() => {
                    println!(
                        "tap {name}: state saved by flush {} at {}",
                        s.seq, s.updated_at
                    );
                    println!("{}", serde_json::to_string_pretty(&s.state)?);
                }
                _ => println!(
                    "tap {name} has no saved state: its next run starts from the beginning"
                ),
            }
            Ok(())
        }
    }
}

async fn list(lake: &Lake, out: Output) -> Result<()> {
    let states = lake.taps().states().await?;
    let rows: Vec<serde_json::Value> = lake
        .config
        .taps
        .iter()
        .map(|t| {
            let s = states.iter().find(|s| s.tap == t.name);
            serde_json::json!({
                "name": t.name, "id": t.id, "domain": t.domain, "layer": t.layer(),
                "tables": format!("{}.{}.{}_*", t.domain, t.layer(), t.name),
                "schedule": t.schedule, "select": t.select,
                "state_seq": s.map(|s| s.seq), "state_saved_at": s.map(|s| s.updated_at.clone()),
            })
        })
        .collect();
    if out.json() {
        return print::json(&rows);
    }
    let mut t = print::grid(&["tap", "id", "writes", "schedule", "state"]);
    for r in &rows {
        t.add_row(vec![
            r["name"].as_str().unwrap_or_default().to_string(),
            r["id"].as_str().unwrap_or_default().to_string(),
            r["tables"].as_str().unwrap_or_default().to_string(),
            r["schedule"].as_str().unwrap_or("-").to_string(),
            match (r["state_seq"].as_i64(), r["state_saved_at"].as_str()) {
                (Some(n), Some(at)) => format!("flush {n}, {at}"),
                _ => "none".to_string(),
            },
        ]);
    }
    println!("{t}\n{} tap(s)", rows.len());
    Ok(())
}

async fn run(lake: &Lake, name: &str, discover: bool, out: Output) -> Result<()> {
    let mut opts = tarn_ingest::RunOptions {
        discover,
        ..Default::default()
    };
    let bar = (!out.json() && std::io::stderr().is_terminal())
        .then(|| print::spinner(&format!("tap {name}: starting")));
    if let Some(bar) = &bar {
        let b = bar.clone();
        let name = name.to_string();
        opts.progress = Some(std::sync::Arc::new(move |p: &tarn_ingest::Progress| {
            let streams: Vec<String> = p
                .streams
                .iter()
                .map(|(s, n, rate)| format!("{s}: {n} records ({rate:.0}/s)"))
                .collect();
            b.set_message(format!(
                "tap {name}: {} [{:.0}s]",
                streams.join(", "),
                p.elapsed.as_secs_f64()
            ));
        }));
    }
    let done = tarn_ingest::run(lake, name, &opts).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = done?;
    if out.json() {
        return print::json(&report);
    }
    let mut t = print::grid(&["stream", "table", "records", "rejected", "committed"]);
    for (s, c) in &report.streams {
        t.add_row(vec![
            s.clone(),
            c.table.clone(),
            c.records.to_string(),
            c.rejected.to_string(),
            c.committed.to_string(),
        ]);
    }
    println!("{t}");
    println!(
        "tap {name} ran in {:.1}s; state saved by flush {}; log: {}",
        report.seconds,
        report.state_seq,
        report.log_file.display()
    );
    if report.streams.values().any(|c| c.rejected > 0) {
        println!("rejected records are in each table's _rejected table, with the reason");
    }
    Ok(())
}

pub async fn secrets(lake: &Lake, cmd: &SecretsCommand) -> Result<()> {
    match cmd {
        SecretsCommand::Set { name } => {
            let value = if std::io::stdin().is_terminal() {
                eprint!("value of secret {name} (not shown): ");
                read_hidden()?
            } else {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                s.trim_end_matches(['\n', '\r']).to_string()
            };
            tarn_ingest::secrets::set(lake, name, &value).await?;
            println!(
                "secret {name} is stored; a tap reads it with `secrets: {{SETTING: tarn:{name}}}`"
            );
            Ok(())
        }
        SecretsCommand::List { out } => {
            let list = tarn_ingest::secrets::list(lake).await?;
            if out.json() {
                return print::json(
                    &list
                        .iter()
                        .map(|(n, at)| serde_json::json!({"name": n, "updated_at": at}))
                        .collect::<Vec<_>>(),
                );
            }
            let mut t = print::grid(&["secret", "set at"]);
            for (n, at) in &list {
                t.add_row(vec![n.clone(), at.clone()]);
            }
            println!("{t}\n{} secret(s)", list.len());
            Ok(())
        }
        SecretsCommand::Delete { name } => {
            if !tarn_ingest::secrets::delete(lake, name).await? {
                bail!("there is no secret `{name}`; `tarn secrets list` shows them");
            }
            println!("secret {name} is deleted");
            Ok(())
        }
    }
}

/// A line from the terminal with echo turned off (through `stty`).
fn read_hidden() -> Result<String> {
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
    };
    let _ = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    let _ = stty("echo");
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
