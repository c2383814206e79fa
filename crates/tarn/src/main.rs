//! The `tarn` command: parses arguments, calls the library that does the work (a lake opened
//! here, or a running `tarn serve` through `tarn-client`), prints for people or for programs.

#![cfg_attr(not(test), deny(unused_crate_dependencies))]
#![forbid(unsafe_code)]

/// `println!` for the whole binary: when stdout is closed early (`tarn ... | head -1`) the
/// process ends quietly, as Unix tools do, instead of panicking.
macro_rules! println {
    () => {
        $crate::emit(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` with the same care as `println!`.
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::emit(format_args!($($arg)*))
    };
}

/// mimalloc: about a tenth faster on queries than the system allocator (see bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod commands;
mod endpoints;
mod models;
mod monitors;
mod pipelines;
mod print;
mod taps;
mod tracking;
mod train;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Command, EventsCommand, NotifyCommand, TableCommand, TokenCommand};
use commands::Ctx;

fn main() {
    let cli = Cli::parse();
    // delta-kernel logs an ERROR when it probes a folder that holds no table yet, delta-rs a
    // WARN on every merge about a metric it derives itself and an ERROR on every commit that
    // loses a race (which tarn tries again); tarn reports real failures itself, so that noise
    // stays off unless asked for (TARN_LOG).
    let serving = matches!(cli.command, Command::Serve { .. } | Command::Worker { .. });
    let merge = "deltalake_core::operations::merge=error,deltalake_core::kernel::transaction=off";
    let filter = std::env::var("TARN_LOG").unwrap_or_else(|_| {
        if cli.verbose || serving {
            format!("info,buoyant_kernel=warn,{merge}")
        } else {
            format!("warn,buoyant_kernel=off,{merge}")
        }
    });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(cli)) {
        if closed_pipe(&e) {
            std::process::exit(0);
        }
        eprintln!("error: {}", render_error(&e));
        std::process::exit(1);
    }
}

/// Writes to stdout; a reader that went away ends the process quietly.
pub(crate) fn emit(args: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Whether a failure is only stdout's reader having gone away (`| head`).
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .map(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            .unwrap_or(false)
            || c.to_string().contains("Broken pipe (os error 32)")
    })
}

/// An error and its causes, each said once: a cause whose text the message already holds
/// (an OS error repeated by every layer that wraps it) is not repeated.
fn render_error(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// Who the CLI says is acting (approvals, aliases, trainings, deployments) when no server
/// token names them: the login name, else `cli`.
pub(crate) fn me() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "cli".into())
}

/// Where a command may run: anywhere (on the lake folder, or through `--server` with the same
/// operation: `None`), or only where the lake's folder is: the command's name and why
/// `--server` is refused. Every command is placed here; a new one does not compile until it is.
fn place(command: &Command) -> Option<(&'static str, &'static str)> {
    use endpoints::EndpointsCommand as E;
    match command {
        Command::Land { .. }
        | Command::Ls { .. }
        | Command::Events { .. }
        | Command::Crawl { .. }
        | Command::Tables { .. }
        | Command::Table(_)
        | Command::Load { .. }
        | Command::Doctor { .. }
        | Command::Sql { .. }
        | Command::Executions(_)
        | Command::Models(_)
        | Command::Monitors(_)
        | Command::Endpoints(E::List { .. } | E::Show { .. }) => None,
        Command::Init { .. } => Some(("init", "it writes a lake folder here")),
        Command::Quickstart { .. } => Some(("quickstart", "it builds a lake folder here")),
        Command::Serve { .. } => Some(("serve", "it serves the lake folder it runs in")),
        Command::Worker { .. } => Some(("worker", "it runs executions of the lake folder it runs in")),
        Command::Token(_) => Some(("token", "tokens are made and revoked where the server's lake is, so that no token can mint others")),
        Command::Endpoints(E::Deploy { .. }) => Some(("endpoints deploy", ENDPOINTS)),
        Command::Endpoints(E::Delete { .. }) => Some(("endpoints delete", ENDPOINTS)),
        Command::Taps(_) => Some(("taps", "taps run on the machine where the lake's tarn.yml is (a running `tarn serve` runs those with a `schedule:`)")),
        Command::Secrets(_) => Some(("secrets", "secrets are sealed with a key kept where the lake's folder is, never sent over the API")),
        Command::Pipelines(_) => Some(("pipelines", "pipelines are the lake folder's pipelines/ (on a server they start by themselves when their trigger fires)")),
        Command::Notify { .. } => Some(("notify", "topics and their subscriptions are the lake folder's tarn.yml")),
        Command::Experiments(_) => Some(("experiments", TRACKING)),
        Command::Runs(_) => Some(("runs", TRACKING)),
        Command::Train { .. } => Some(("train", "its trainers run on this machine; run it as a `train` step of a pipeline on the server")),
        Command::Transform { .. } => Some(("transform", "it runs the model on this machine; run it as a `transform` step of a pipeline on the server")),
    }
}

const ENDPOINTS: &str = "it changes the lake's endpoints: run it where the lake's tarn.yml is (a running `tarn serve` picks the change up within seconds), or declare the endpoint under `endpoints:` in tarn.yml";
const TRACKING: &str = "it reads the lake folder's tracking store; point the mlflow client at the server (MLFLOW_TRACKING_URI) to read tracking there";

async fn run(cli: Cli) -> Result<()> {
    if let (Some((name, why)), Some(_)) = (place(&cli.command), &cli.server) {
        anyhow::bail!(
            "`tarn {name}` does not work through --server: {why}; drop --server (or unset TARN_SERVER)"
        );
    }
    let ctx = Ctx::new(&cli)?;
    match &cli.command {
        Command::Init { dir, force } => commands::init(&ctx, dir.as_deref(), *force),
        Command::Quickstart {
            dir,
            storage,
            metadata,
            s3_endpoint,
            out,
        } => {
            let place = tarn_lake::QuickstartPlace {
                storage: storage.clone(),
                metadata: metadata.clone(),
                s3_endpoint: s3_endpoint.clone(),
            };
            commands::quickstart(dir, &place, *out).await
        }
        Command::Land {
            path,
            target,
            force,
            out,
        } => commands::land(&ctx, path, target, *force, *out).await,
        Command::Ls { target, out } => commands::ls(&ctx, target, *out).await,
        Command::Events {
            put:
                Some(EventsCommand::Put {
                    source,
                    detail_type,
                    detail,
                    out,
                }),
            ..
        } => commands::put_event(&ctx, source, detail_type, detail, *out).await,
        Command::Events {
            put: None,
            kind,
            limit,
            oldest,
            out,
        } => commands::events(&ctx, kind.as_deref(), *limit, *oldest, *out).await,
        Command::Crawl { scope, out } => commands::crawl(&ctx, scope.as_deref(), *out).await,
        Command::Tables {
            filter,
            search,
            out,
        } => commands::tables(&ctx, filter.as_deref(), search.as_deref(), *out).await,
        Command::Table(TableCommand::Show { table, out }) => {
            commands::table(&ctx, table, *out).await
        }
        Command::Table(TableCommand::History { table, out }) => {
            commands::history(&ctx, table, *out).await
        }
        Command::Table(TableCommand::Files { table, out }) => {
            commands::table_files(&ctx, table, *out).await
        }
        Command::Load {
            table,
            source,
            input_format,
            mode,
            key,
            again,
            out,
        } => {
            let args =
                commands::load_args(table, source, input_format.as_deref(), mode, key, *again)?;
            commands::load(&ctx, &args, *out).await
        }
        Command::Doctor {
            check,
            stale_after,
            out,
        } => commands::doctor(&ctx, *check, *stale_after, *out).await,
        Command::Sql {
            query,
            format,
            output,
            into,
            timeout,
        } => {
            commands::sql(
                &ctx,
                query,
                format,
                output.as_deref(),
                into.as_deref(),
                *timeout,
            )
            .await
        }
        Command::Serve {
            addr,
            auth,
            max_object_mb,
            endpoint_poll_ms,
        } => commands::serve(&ctx, *addr, *auth, *max_object_mb, *endpoint_poll_ms).await,
        Command::Worker { workers } => commands::worker(&ctx, *workers).await,
        Command::Token(TokenCommand::Create {
            name,
            read_only,
            aws,
            policies,
            out,
        }) => commands::token_create(&ctx, name, *read_only, *aws, policies, *out).await,
        Command::Token(TokenCommand::List { out }) => commands::token_list(&ctx, *out).await,
        Command::Token(TokenCommand::Revoke { name }) => commands::token_revoke(&ctx, name).await,
        Command::Endpoints(cmd) => match &ctx.server {
            Some(c) => endpoints::remote(c, cmd).await,
            None => endpoints::run(&ctx.lake().await?, cmd).await,
        },
        Command::Pipelines(cmd) => pipelines::pipelines(&ctx.lake().await?, cmd).await,
        Command::Taps(cmd) => taps::taps(&ctx.lake().await?, cmd).await,
        Command::Secrets(cmd) => taps::secrets(&ctx.lake().await?, cmd).await,
        Command::Monitors(cmd) => monitors::monitors(ctx.ops().await?.get(), cmd).await,
        Command::Executions(cmd) => pipelines::executions(ctx.ops().await?.get(), cmd).await,
        Command::Notify {
            what: NotifyCommand::Test { topic, out },
        } => pipelines::notify_test(&ctx.lake().await?, topic, *out).await,
        Command::Notify {
            what: NotifyCommand::Deliveries { topic, limit, out },
        } => pipelines::deliveries(&ctx.lake().await?, topic.as_deref(), *limit, *out).await,
        Command::Experiments(cmd) => tracking::experiments(&ctx.lake().await?, cmd).await,
        Command::Runs(cmd) => tracking::runs(&ctx.lake().await?, cmd).await,
        Command::Models(cmd) => models::models(ctx.ops().await?.get(), cmd).await,
        Command::Train { name, logs, out } => {
            train::train(&ctx.lake().await?, name.as_deref(), *logs, *out).await
        }
        Command::Transform {
            model_uri,
            input,
            output,
            id_columns,
            csv,
            out,
        } => {
            let args = tarn_ml::TransformArgs {
                model_uri: model_uri.clone(),
                input: input.clone(),
                output: output.clone(),
                id_columns: id_columns.clone(),
                csv: csv.clone(),
            };
            train::transform(&ctx.lake().await?, &args, *out).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command path (`["endpoints", "deploy"]`) down to the leaves, with the arguments
    /// each needs to parse: a placeholder for every required one.
    fn leaves(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        let subs: Vec<_> = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .collect();
        if subs.is_empty() || cmd.is_args_conflicts_with_subcommands_set() && !path.is_empty() {
            let mut argv = path.clone();
            for a in cmd.get_arguments().filter(|a| a.is_required_set()) {
                let value = a
                    .get_possible_values()
                    .first()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_else(|| "x".into());
                match a.get_long() {
                    Some(long) => argv.extend([format!("--{long}"), value]),
                    None => {
                        let n = a.get_num_args().map(|n| n.min_values()).unwrap_or(1).max(1);
                        argv.extend(std::iter::repeat_n(value, n));
                    }
                }
            }
            out.push(argv);
        }
        for s in subs {
            let mut p = path.clone();
            p.push(s.get_name().to_string());
            leaves(s, p, out);
        }
    }

    #[test]
    fn help_lists_every_command() {
        let mut cli = Cli::command();
        let help = cli.render_help().to_string();
        for sub in Cli::command().get_subcommands() {
            let name = sub.get_name();
            if name == "help" {
                continue;
            }
            assert!(
                help.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{name} "))),
                "`tarn --help` does not list `{name}`:\n{help}"
            );
        }
    }

    #[test]
    fn every_command_is_placed_and_refusals_name_it() {
        let mut all = Vec::new();
        leaves(&Cli::command(), Vec::new(), &mut all);
        assert!(all.len() > 40, "{all:?}");
        let mut through_server = Vec::new();
        for argv in &all {
            let cli = Cli::try_parse_from(
                ["tarn", "--server", "http://127.0.0.1:9"]
                    .into_iter()
                    .map(String::from)
                    .chain(argv.iter().cloned()),
            )
            .unwrap_or_else(|e| panic!("{argv:?} does not parse: {e}"));
            match place(&cli.command) {
                None => through_server.push(argv[..argv.len().min(2)].join(" ")),
                Some((name, why)) => {
                    assert!(
                        argv.join(" ").starts_with(name),
                        "{argv:?} is refused as `{name}`"
                    );
                    assert!(!why.is_empty());
                }
            }
        }
        // The ones the integration tests run through a real server.
        for expected in [
            "land x",
            "ls x",
            "crawl",
            "sql x",
            "executions list",
            "models list",
        ] {
            assert!(
                through_server
                    .iter()
                    .any(|t| t == expected || t.starts_with(expected)),
                "{expected} no longer works through --server: {through_server:?}"
            );
        }
    }

    #[test]
    fn every_command_takes_format_the_same_way() {
        let mut all = Vec::new();
        leaves(&Cli::command(), Vec::new(), &mut all);
        fn find<'a>(cmd: &'a clap::Command, path: &[String]) -> &'a clap::Command {
            match path.first() {
                None => cmd,
                Some(p) => find(cmd.find_subcommand(p).expect("a subcommand"), &path[1..]),
            }
        }
        let root = Cli::command();
        for argv in &all {
            let path: Vec<String> = argv
                .iter()
                .take_while(|a| !a.starts_with('-') && *a != "x")
                .cloned()
                .collect();
            let cmd = find(&root, &path);
            assert!(
                cmd.get_arguments().all(|a| a.get_long() != Some("json")),
                "`tarn {}` takes --json; use --format json",
                path.join(" ")
            );
        }
    }
}
