//! The lake core's commands, one small function each: they call an operation (on the lake
//! folder, or through `--server`: [`tarn_client::Operations`]) and print its answer.

use crate::cli::{Cli, Output};
use crate::print;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tarn_client::{Client, Operations};
use tarn_lake::{Lake, LoadArgs, LoadMode, OutputFormat, QueryOptions, Selection};

/// What one invocation acts on: the lake folder (`--dir`, `--env`, `--workspace`) or the
/// server of `--server`.
pub(crate) struct Ctx {
    dir: PathBuf,
    selection: Selection,
    pub(crate) server: Option<Client>,
}

/// An opened lake or a server's client, as [`Operations`].
pub(crate) enum Target {
    Lake(Box<Lake>),
    Server(Client),
}

impl Target {
    pub(crate) fn get(&self) -> &dyn Operations {
        match self {
            Target::Lake(l) => l.as_ref(),
            Target::Server(c) => c,
        }
    }
}

impl Ctx {
    pub(crate) fn new(cli: &Cli) -> Result<Ctx> {
        Ok(Ctx {
            dir: cli.dir.clone(),
            selection: Selection {
                env: cli.env.clone(),
                workspace: cli.workspace.clone(),
            },
            server: cli
                .server
                .as_deref()
                .map(|s| Client::new(s, cli.token.clone()))
                .transpose()?,
        })
    }

    /// The lake folder, opened for one command (for commands that only work there; `run`
    /// has refused `--server` for them already): without the row cache, which only a
    /// long-lived process gains from.
    pub(crate) async fn lake(&self) -> Result<Lake> {
        Ok(Lake::open(&self.dir, &self.selection)
            .await?
            .without_row_cache())
    }

    /// Where the operations go: the server when `--server` is given, else the lake folder.
    pub(crate) async fn ops(&self) -> Result<Target> {
        Ok(match &self.server {
            Some(c) => Target::Server(c.clone()),
            None => Target::Lake(Box::new(self.lake().await?)),
        })
    }
}

/// Prints `value` as JSON for programs, or with `text` for people.
fn answer<T: serde::Serialize>(out: Output, value: &T, text: impl FnOnce(&T)) -> Result<()> {
    if out.json() {
        return print::json(value);
    }
    text(value);
    Ok(())
}

pub(crate) fn init(ctx: &Ctx, dir: Option<&Path>, force: bool) -> Result<()> {
    let dir = dir.unwrap_or(&ctx.dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(tarn_config::CONFIG_FILE);
    if path.exists() && !force {
        anyhow::bail!(
            "{} already exists; pass --force to replace it",
            path.display()
        );
    }
    std::fs::write(&path, tarn_config::STARTER)
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::create_dir_all(dir.join("contracts"))?;
    println!(
        "wrote {}\nnext: edit its domains, then `tarn land FILE DOMAIN/raw/KEY`",
        path.display()
    );
    Ok(())
}

pub(crate) async fn quickstart(
    dir: &Path,
    place: &tarn_lake::QuickstartPlace,
    out: Output,
) -> Result<()> {
    let spinner = print::spinner("building the quickstart lake");
    let (lake, done) =
        tarn_node::quickstart(dir, place, &|step| spinner.set_message(step.to_string())).await?;
    spinner.finish_and_clear();
    if out.json() {
        return print::json(&done);
    }
    print::quickstart(&done.lake);
    crate::pipelines::print_quickstart_pipeline(&done.pipeline);
    crate::train::print_quickstart_ml(&done.ml);
    print::quickstart_next(dir);
    let result = lake
        .sql(
            "SELECT * FROM flights.service.delays_by_carrier LIMIT 5",
            &QueryOptions::default(),
        )
        .await?;
    tarn_lake::write_result(&result, OutputFormat::Table, &mut std::io::stdout())?;
    Ok(())
}

pub(crate) async fn land(
    ctx: &Ctx,
    path: &Path,
    target: &str,
    force: bool,
    out: Output,
) -> Result<()> {
    let ops = ctx.ops().await?;
    let total = print::size_of(path);
    let bar = print::bytes_bar(total, &format!("landing {}", path.display()));
    let landed = ops.get().land(path, target, force, &|n| bar.inc(n)).await?;
    bar.finish_and_clear();
    answer(out, &landed, |v| print::landed(v))
}

pub(crate) async fn ls(ctx: &Ctx, target: &str, out: Output) -> Result<()> {
    let objects = ctx.ops().await?.get().ls(target).await?;
    answer(out, &objects, |v| print::objects(v))
}

pub(crate) async fn put_event(
    ctx: &Ctx,
    source: &str,
    detail_type: &str,
    detail: &str,
    out: Output,
) -> Result<()> {
    let detail: serde_json::Value =
        serde_json::from_str(detail).context("--detail must be JSON, e.g. '{\"id\": 7}'")?;
    let id = ctx
        .ops()
        .await?
        .get()
        .put_event(source, detail_type, detail)
        .await?;
    if out.json() {
        return print::json(&serde_json::json!({"event_id": id}));
    }
    println!("recorded event {id}");
    Ok(())
}

pub(crate) async fn events(
    ctx: &Ctx,
    kind: Option<&str>,
    limit: i64,
    oldest: bool,
    out: Output,
) -> Result<()> {
    let limit = limit.max(1);
    // One more than asked tells whether there are more to mention.
    let mut events = ctx
        .ops()
        .await?
        .get()
        .events(kind, limit + 1, oldest)
        .await?;
    let more = events.len() as i64 > limit;
    if more {
        if oldest {
            events.truncate(limit as usize);
        } else {
            events.remove(0);
        }
    }
    if out.json() {
        return print::json(&events);
    }
    print::events(&events);
    if more {
        let which = if oldest { "oldest" } else { "newest" };
        eprintln!(
            "the {which} {limit} are shown and there are more: --limit N shows more{}",
            if oldest {
                ""
            } else {
                ", --oldest the first ones"
            }
        );
    }
    Ok(())
}

pub(crate) async fn crawl(ctx: &Ctx, scope: Option<&str>, out: Output) -> Result<()> {
    let ops = ctx.ops().await?;
    let spinner = print::spinner("crawling");
    let report = ops.get().crawl(scope).await?;
    spinner.finish_and_clear();
    answer(out, &report, print::crawl)
}

pub(crate) async fn tables(
    ctx: &Ctx,
    filter: Option<&str>,
    search: Option<&str>,
    out: Output,
) -> Result<()> {
    let tables = ctx.ops().await?.get().tables(filter, search).await?;
    answer(out, &tables, |v| print::tables(v))
}

pub(crate) async fn table(ctx: &Ctx, table: &str, out: Output) -> Result<()> {
    let detail = ctx.ops().await?.get().table(table).await?;
    answer(out, &detail, print::table)
}

pub(crate) async fn table_files(ctx: &Ctx, table: &str, out: Output) -> Result<()> {
    let files = ctx.ops().await?.get().table_files(table).await?;
    answer(out, &files, print::table_files)
}

pub(crate) async fn history(ctx: &Ctx, table: &str, out: Output) -> Result<()> {
    let history = ctx.ops().await?.get().history(table).await?;
    answer(out, &history, |v| print::history(table, v))
}

/// A load's arguments from the command line's.
pub(crate) fn load_args(
    table: &str,
    source: &str,
    input_format: Option<&str>,
    mode: &str,
    key: &[String],
    again: bool,
) -> Result<LoadArgs> {
    Ok(LoadArgs {
        table: table.to_string(),
        source: source.to_string(),
        format: input_format
            .map(|f| f.parse())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        mode: mode.parse::<LoadMode>().map_err(anyhow::Error::msg)?,
        key: key.to_vec(),
        again,
    })
}

pub(crate) async fn load(ctx: &Ctx, args: &LoadArgs, out: Output) -> Result<()> {
    let ops = ctx.ops().await?;
    let spinner = print::spinner(&format!("loading {} into {}", args.source, args.table));
    let report = ops.get().load(args).await?;
    spinner.finish_and_clear();
    answer(out, &report, print::load)
}

pub(crate) async fn doctor(ctx: &Ctx, check: bool, stale_after: u64, out: Output) -> Result<()> {
    let ops = ctx.ops().await?;
    let spinner = print::spinner("checking catalog, Delta logs, objects and events");
    let report = ops
        .get()
        .doctor(check, std::time::Duration::from_secs(stale_after))
        .await?;
    spinner.finish_and_clear();
    if out.json() {
        print::json(&report)?;
    } else {
        print::doctor(&report, check);
    }
    if check && !report.findings.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

pub(crate) async fn sql(
    ctx: &Ctx,
    query: &str,
    format: &str,
    output: Option<&Path>,
    into: Option<&str>,
    timeout: Option<u64>,
) -> Result<()> {
    let ops = ctx.ops().await?;
    if let Some(target) = into {
        let out = ops.get().sql_into(query, target).await?;
        println!(
            "materialised {} rows into {} (version {})",
            out.row_count, out.table, out.table_version
        );
        return Ok(());
    }
    let fmt: OutputFormat = format.parse().map_err(anyhow::Error::msg)?;
    if fmt == OutputFormat::Parquet && output.is_none() {
        anyhow::bail!("--format parquet writes binary data; add --output FILE");
    }
    // Rows stream from the query to the output: no format holds the whole result.
    let (schema, rows) = ops
        .get()
        .sql_stream(query, timeout.map(std::time::Duration::from_secs))
        .await?;
    match output {
        Some(path) => {
            let f = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            );
            let n = print::stream_rows(fmt, &schema, rows, f).await?;
            eprintln!("wrote {n} rows to {}", path.display());
        }
        None => {
            let stdout = std::io::BufWriter::new(std::io::stdout().lock());
            print::stream_rows(fmt, &schema, rows, stdout).await?;
        }
    }
    Ok(())
}

pub(crate) async fn token_create(
    ctx: &Ctx,
    name: &str,
    read_only: bool,
    aws: bool,
    policies: &[String],
    out: Output,
) -> Result<()> {
    let lake = ctx.lake().await?;
    lake.config.grants(policies).map_err(anyhow::Error::msg)?;
    let (record, token) = lake
        .tokens()
        .create_token_with_policies(name, read_only, policies)
        .await?;
    let keys = match aws {
        true => Some(lake.tokens().add_aws_key(name).await?),
        false => None,
    };
    if out.json() {
        let mut answer = serde_json::json!({"token": token, "name": record.name, "read_only": record.read_only, "policies": record.policies, "created_at": record.created_at});
        if let Some((id, secret)) = &keys {
            answer["aws_access_key_id"] = id.clone().into();
            answer["aws_secret_access_key"] = secret.clone().into();
        }
        return print::json(&answer);
    }
    println!("{token}");
    if let Some((id, secret)) = &keys {
        println!("AWS_ACCESS_KEY_ID={id}");
        println!("AWS_SECRET_ACCESS_KEY={secret}");
    }
    eprintln!(
        "token `{}` created ({}; policies: {}); it is shown this once: keep it in a secret store.\nuse it with: tarn --server URL --token TOKEN ..., or Authorization: Bearer TOKEN{}",
        record.name,
        if record.read_only { "read-only" } else { "read and write" },
        record.policies.join(", "),
        if keys.is_some() {
            "\nthe AWS key pair signs requests to the Glue API (region: the lake's s3.region, else us-east-1)"
        } else {
            ""
        }
    );
    Ok(())
}

pub(crate) async fn token_list(ctx: &Ctx, out: Output) -> Result<()> {
    let tokens = ctx.lake().await?.tokens().list().await?;
    answer(out, &tokens, |v| print::tokens(v))
}

pub(crate) async fn token_revoke(ctx: &Ctx, name: &str) -> Result<()> {
    if !ctx.lake().await?.tokens().revoke_token(name).await? {
        anyhow::bail!("no live token is named `{name}`; `tarn token list` shows them");
    }
    println!("revoked token `{name}`");
    Ok(())
}

/// `tarn serve`: the lake's HTTP API, its endpoints and its pipeline engine, until SIGINT or
/// SIGTERM; what it does goes to stderr.
pub(crate) async fn worker(ctx: &Ctx, workers: Option<usize>) -> Result<()> {
    let workers = workers
        .or_else(|| std::env::var("TARN_WORKERS").ok()?.parse().ok())
        .unwrap_or(4)
        .max(1);
    let say = std::sync::Arc::new(|line: String| eprintln!("tarn worker: {line}"));
    let lake = Lake::open(&ctx.dir, &ctx.selection).await?;
    Ok(tarn_node::work(lake, workers, say).await?)
}

pub(crate) async fn serve(
    ctx: &Ctx,
    addr: std::net::SocketAddr,
    auth: bool,
    max_object_mb: Option<u64>,
    endpoint_poll_ms: u64,
) -> Result<()> {
    let options = tarn_node::ServeOptions {
        addr,
        auth,
        max_object_bytes: max_object_mb.map(|mb| mb * 1024 * 1024),
        endpoint_poll: std::time::Duration::from_millis(endpoint_poll_ms.max(50)),
    };
    let say = std::sync::Arc::new(|line: String| eprintln!("tarn serve: {line}"));
    // A server is the long-lived process the row cache is for.
    let lake = Lake::open(&ctx.dir, &ctx.selection).await?;
    Ok(tarn_node::serve(lake, options, say).await?)
}
