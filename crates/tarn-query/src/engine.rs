//! Running SQL over the catalog: read-only checks, timeouts, and errors that point at the
//! place in the query.

use crate::cache::QueryCache;
use crate::guard::QueryLimits;
use crate::plans::{CachedPlan, PlanCache};
use crate::schema::{quote_versions, LayerSchema};
use crate::QueryError;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::context::SessionContext;
use deltalake::datafusion::execution::TaskContext;
use deltalake::datafusion::prelude::SessionConfig;
use deltalake::datafusion::sql::parser::Statement as DFStatement;
use deltalake::datafusion::sql::sqlparser::ast::Statement;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tarn_metadata::TableRecord;

/// Batches of a streamed query.
pub type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch, QueryError>>;

/// A table the engine can see, addressed `domain.layer.name`.
#[derive(Debug, Clone)]
pub struct Visible {
    pub domain: String,
    pub layer: String,
    pub record: TableRecord,
}

/// Limits on one query.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Stop the query after this long (waiting for a free query slot counts).
    pub timeout: Option<Duration>,
    /// Return at most this many rows (the rest are not computed).
    pub row_limit: Option<usize>,
    /// Which tables the caller may read (every one when none): each table the plan scans is
    /// checked before anything runs, and the first refused is named.
    pub may_read: Option<MayRead>,
}

/// A check of `domain`, `layer` and `table`.
pub type TableCheck = dyn Fn(&str, &str, &str) -> bool + Send + Sync;

/// Whether the caller may read `domain.layer.table`.
#[derive(Clone)]
pub struct MayRead(pub Arc<TableCheck>);

impl std::fmt::Debug for MayRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MayRead(..)")
    }
}

/// Rows a query returned.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Whether `row_limit` cut the result.
    pub truncated: bool,
}

impl QueryResult {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// The SQL engine over one lake's catalog.
pub struct Engine {
    ctx: SessionContext,
    addresses: Arc<Vec<String>>,
    limits: Arc<QueryLimits>,
    plans: Arc<PlanCache>,
    stores: tarn_tables::Stores,
}

impl Engine {
    /// An engine that sees `tables`.
    pub fn new(tables: Vec<Visible>) -> Self {
        Self::with_cache(tables, Arc::new(QueryCache::default()))
    }

    /// An engine that sees `tables` and shares `cache` with other engines of the process.
    pub fn with_cache(tables: Vec<Visible>, cache: Arc<QueryCache>) -> Self {
        Self::with_limits(
            tables,
            cache,
            Arc::new(QueryLimits::default()),
            tarn_tables::Stores::local(),
        )
    }

    /// An engine that sees `tables`, shares `cache`, and holds every query to `limits` (whose
    /// query slots it shares with the lake's other engines), reading through `stores`.
    pub fn with_limits(
        tables: Vec<Visible>,
        cache: Arc<QueryCache>,
        limits: Arc<QueryLimits>,
        stores: tarn_tables::Stores,
    ) -> Self {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(crate::pool::parallelism());
        // A file of a megabyte or more is split between the cores by byte ranges (row groups):
        // a table is often one file, and DataFusion's default (10 MB) read it on one core.
        config.options_mut().optimizer.repartition_file_min_size = 1024 * 1024;
        // The parser's own recursion (nested parentheses, NOT chains, subqueries) stops at
        // the same depth as the expression check.
        if let Ok(depth) =
            deltalake::datafusion::common::config::ConfigNonZeroUsize::try_new(limits.sql_depth)
        {
            config.options_mut().sql_parser.recursion_limit = depth;
        }
        // Aggregations grouped by small integers index their groups without hashing, and
        // every scan is wrapped so that a cancelled query stops at its next batch.
        let runtime =
            Arc::new(deltalake::datafusion::execution::runtime_env::RuntimeEnv::default());
        let ctx = SessionContext::new_with_state(
            deltalake::datafusion::execution::session_state::SessionStateBuilder::new()
                .with_config(config)
                .with_runtime_env(runtime.clone())
                .with_default_features()
                .with_physical_optimizer_rule(Arc::new(crate::small_groups::SmallGroups))
                .with_physical_optimizer_rule(Arc::new(crate::cancel::WrapScans))
                .build(),
        );
        if let Some((url, store)) = stores.bucket_store() {
            ctx.register_object_store(url, store.clone());
        }
        let mut by_zone: BTreeMap<(String, String), BTreeMap<String, TableRecord>> =
            BTreeMap::new();
        let mut addresses = Vec::new();
        for t in tables {
            addresses.push(format!("{}.{}.{}", t.domain, t.layer, t.record.name));
            by_zone
                .entry((t.domain, t.layer))
                .or_default()
                .insert(t.record.name.clone(), t.record);
        }
        let mut catalogs: BTreeMap<String, Arc<MemoryCatalogProvider>> = BTreeMap::new();
        for ((domain, layer), tables) in by_zone {
            let catalog = catalogs
                .entry(domain)
                .or_insert_with(|| Arc::new(MemoryCatalogProvider::new()))
                .clone();
            catalog
                .register_schema(
                    &layer,
                    Arc::new(LayerSchema {
                        tables,
                        cache: cache.clone(),
                        stores: stores.clone(),
                        runtime: runtime.clone(),
                    }),
                )
                .expect("memory catalog accepts schemas");
        }
        for (domain, catalog) in catalogs {
            ctx.register_catalog(domain, catalog);
        }
        Engine {
            ctx,
            addresses: Arc::new(addresses),
            limits,
            plans: Arc::default(),
            stores,
        }
    }

    /// How many query texts have a plan kept for them (see [`crate::PLANS`]).
    pub fn plans_kept(&self) -> usize {
        self.plans.len()
    }

    /// The context a query runs in: the engine's settings and object stores, a memory pool of
    /// the query's own, and its cancel flag. Operators find no functions by name in it (every
    /// plan holds its own), so the session's function registry is not copied for each query.
    fn task_context(
        &self,
        cancelled: &Arc<crate::cancel::Cancelled>,
    ) -> Result<Arc<TaskContext>, QueryError> {
        use deltalake::datafusion::execution::memory_pool::FairSpillPool;
        use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
        let runtime = RuntimeEnvBuilder::from_runtime_env(&self.ctx.runtime_env())
            .with_memory_pool(Arc::new(FairSpillPool::new(self.limits.memory as usize)))
            .build_arc()?;
        Ok(Arc::new(TaskContext::new(
            None,
            self.ctx.session_id(),
            self.ctx.copied_config().with_extension(cancelled.clone()),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            runtime,
        )))
    }

    /// Runs one read-only statement and streams its rows batch by batch (memory stays bounded
    /// whatever the result's size). The query runs on the query runtime; it stops when the
    /// stream is dropped, and the stream ends with [`QueryError::Timeout`] at the timeout.
    pub async fn sql_stream_with(
        &self,
        sql: &str,
        opts: &QueryOptions,
    ) -> Result<(SchemaRef, BatchStream), QueryError> {
        use futures::StreamExt;
        crate::guard::check_text(sql, &self.limits)?;
        let deadline = Deadline::after(opts.timeout);
        let cancelled = Arc::new(crate::cancel::Cancelled::default());
        let ctx = self.ctx.clone();
        let task = self.task_context(&cancelled)?;
        let job = Planned {
            sql: sql.to_string(),
            addresses: self.addresses.clone(),
            limits: self.limits.clone(),
            row_limit: opts.row_limit,
            may_read: opts.may_read.clone(),
        };
        // A statement past a limit (or not read-only) is refused before it waits for a query
        // slot: a busy lake answers it at once with the limit's name, never a timeout.
        // Parsing runs on a blocking thread of the query runtime (its deep stack, not the
        // caller's), so it never waits for a query thread that a long query keeps busy.
        // Text whose plan is kept, over the same table versions, is not parsed again; the
        // caller's read permission is checked on it all the same. Whether it is current is
        // one look-up of a file per table, made here without a hop to the query runtime.
        let kept = match self.plans.get(sql, opts.row_limit) {
            Some(plan) if deadline.wait(plan.current(&self.stores)).await? => Some(plan),
            Some(_) => {
                self.plans.forget(sql, opts.row_limit);
                None
            }
            None => None,
        };
        let (parsed, job, ctx) = match kept {
            Some(plan) => {
                let checked = match &job.may_read {
                    Some(may) => check_reads(&plan.logical, may),
                    None => Ok(()),
                };
                (checked.map(|_| Prepared::Kept(plan)), job, ctx)
            }
            None => deadline
                .wait(crate::pool::runtime().spawn_blocking(move || {
                    let parsed = job.parse(&ctx).map(Prepared::Parsed);
                    (parsed, job, ctx)
                }))
                .await?
                .map_err(|_| QueryError::Output("the query stopped before it was read".into()))?,
        };
        let statement = parsed?;
        let plans = self.plans.clone();
        let permit = deadline
            .wait(self.limits.slots.clone().acquire_owned())
            .await?
            .expect("the query slots are never closed");
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, QueryError>>(2);
        let (schema_tx, schema_rx) = tokio::sync::oneshot::channel();
        // A kept plan's columns are known: the caller waits for its first batch only, not for
        // the query to start (one wake-up fewer); a failure to start comes as the first item.
        let known = match &statement {
            Prepared::Kept(plan) => Some(plan.schema.clone()),
            Prepared::Parsed(_) => None,
        };
        let handle = crate::pool::runtime().spawn(async move {
            let _permit = permit;
            let stream = async {
                let (plan, schema) = match statement {
                    Prepared::Kept(plan) => {
                        (plan.fresh().map_err(|e| job.error(e))?, plan.schema.clone())
                    }
                    Prepared::Parsed(statement) => {
                        let df = job.plan(&ctx, statement).await?;
                        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                        let logical = df.logical_plan().clone();
                        let plan = df.create_physical_plan().await.map_err(|e| job.error(e))?;
                        if let Some(kept) = CachedPlan::new(&logical, plan.clone(), schema.clone())
                        {
                            plans.put(&job.sql, job.row_limit, kept);
                        }
                        (plan, schema)
                    }
                };
                let stream = deltalake::datafusion::physical_plan::execute_stream(plan, task)
                    .map_err(|e| job.error(e))?;
                Ok::<_, QueryError>((schema, stream))
            }
            .await;
            let mut stream = match stream {
                Ok((schema, stream)) => {
                    // The caller is gone, or knew the columns already: the first batch it
                    // is sent tells.
                    let _ = schema_tx.send(Ok(schema));
                    stream
                }
                Err(e) => {
                    if let Err(Err(e)) = schema_tx.send(Err(e)) {
                        let _ = tx.send(Err(e)).await;
                    }
                    return;
                }
            };
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                if tx.send(batch.map_err(|e| job.error(e))).await.is_err() || failed {
                    return;
                }
            }
        });
        let abort = crate::pool::AbortOnDrop(handle.abort_handle(), cancelled);
        let schema = match known {
            Some(schema) => schema,
            None => deadline
                .wait(schema_rx)
                .await?
                .map_err(|_| QueryError::Output("the query stopped before it answered".into()))??,
        };
        // The stream owns `abort`: dropping it (or the deadline passing) stops the query.
        let rows = futures::stream::unfold(
            (rx, abort, false),
            move |(mut rx, abort, done)| async move {
                if done {
                    return None;
                }
                match deadline.wait(rx.recv()).await {
                    Err(timeout) => Some((Err(timeout), (rx, abort, true))),
                    Ok(next) => next.map(|b| {
                        let failed = b.is_err();
                        (b, (rx, abort, failed))
                    }),
                }
            },
        );
        Ok((schema, rows.boxed()))
    }

    /// [`Engine::sql_stream_with`] without a timeout or row limit.
    pub async fn sql_stream(&self, sql: &str) -> Result<(SchemaRef, BatchStream), QueryError> {
        self.sql_stream_with(sql, &QueryOptions::default()).await
    }

    /// Runs one read-only statement and collects its rows.
    pub async fn sql(&self, sql: &str, opts: &QueryOptions) -> Result<QueryResult, QueryError> {
        use futures::StreamExt;
        let ask = QueryOptions {
            timeout: opts.timeout,
            row_limit: opts.row_limit.map(|l| l + 1),
            may_read: opts.may_read.clone(),
        };
        let (schema, mut rows) = self.sql_stream_with(sql, &ask).await?;
        let mut batches = Vec::new();
        let mut total = 0usize;
        let mut truncated = false;
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            if let Some(limit) = opts.row_limit {
                if total + batch.num_rows() > limit {
                    truncated = true;
                    let take = limit - total;
                    if take > 0 {
                        batches.push(batch.slice(0, take));
                    }
                    break;
                }
            }
            total += batch.num_rows();
            batches.push(batch);
        }
        Ok(QueryResult {
            schema,
            batches,
            truncated,
        })
    }
}

/// When a query must have answered by, if ever.
#[derive(Debug, Clone, Copy)]
struct Deadline(Option<(tokio::time::Instant, Duration)>);

impl Deadline {
    fn after(timeout: Option<Duration>) -> Self {
        Deadline(timeout.map(|t| (tokio::time::Instant::now() + t, t)))
    }

    /// Waits for `f`, or answers [`QueryError::Timeout`] once the deadline has passed.
    async fn wait<F: std::future::Future>(self, f: F) -> Result<F::Output, QueryError> {
        match self.0 {
            Some((at, timeout)) => tokio::time::timeout_at(at, f)
                .await
                .map_err(|_| QueryError::Timeout(timeout)),
            None => Ok(f.await),
        }
    }
}

/// A query's statement: parsed, or the plan kept for its text.
enum Prepared {
    Parsed(DFStatement),
    Kept(Arc<CachedPlan>),
}

/// One query on its way through the query runtime.
struct Planned {
    sql: String,
    addresses: Arc<Vec<String>>,
    limits: Arc<QueryLimits>,
    row_limit: Option<usize>,
    may_read: Option<MayRead>,
}

impl Planned {
    /// The one read-only statement of the text, within the limits.
    fn parse(&self, ctx: &SessionContext) -> Result<DFStatement, QueryError> {
        let rewritten = quote_versions(&self.sql);
        let state = ctx.state();
        let statement = state
            .sql_to_statement(
                &rewritten,
                &deltalake::datafusion::common::config::Dialect::Generic,
            )
            .map_err(|e| {
                use deltalake::datafusion::sql::sqlparser::parser::ParserError;
                if let DataFusionError::SQL(p, _) = e.find_root() {
                    if matches!(**p, ParserError::RecursionLimitExceeded) {
                        return QueryError::Limit {
                            what: format!("nests deeper than {} levels", self.limits.sql_depth),
                            limit: "sql_depth",
                            max: self.limits.sql_depth,
                        };
                    }
                }
                locate(&self.addresses, &self.sql, e.to_string())
            })?;
        crate::guard::check_statement(&statement, &self.limits)?;
        check_read_only(&statement)?;
        Ok(statement)
    }

    /// The plan of a statement [`Planned::parse`] read.
    async fn plan(
        &self,
        ctx: &SessionContext,
        statement: DFStatement,
    ) -> Result<deltalake::datafusion::dataframe::DataFrame, QueryError> {
        use deltalake::datafusion::logical_expr::LogicalPlan;
        let state = ctx.state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| locate(&self.addresses, &self.sql, e.to_string()))?;
        if let Some(may) = &self.may_read {
            check_reads(&plan, may)?;
        }
        // A plan's explanation is a few rows, and DataFusion runs it only at the plan's root.
        let explains = matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
        let mut df = ctx.execute_logical_plan(plan).await?;
        if let (Some(limit), false) = (self.row_limit, explains) {
            df = df.limit(0, Some(limit))?;
        }
        Ok(df)
    }

    /// What a failure while running means for the user.
    fn error(&self, e: DataFusionError) -> QueryError {
        if let DataFusionError::ResourcesExhausted(_) = e.find_root() {
            return QueryError::Memory {
                limit_mb: self.limits.memory / (1024 * 1024),
            };
        }
        locate(&self.addresses, &self.sql, e.to_string())
    }
}

/// Refuses a plan that scans a table `may` does not allow, naming the first such table.
fn check_reads(
    plan: &deltalake::datafusion::logical_expr::LogicalPlan,
    may: &MayRead,
) -> Result<(), QueryError> {
    use deltalake::datafusion::common::tree_node::TreeNodeRecursion;
    use deltalake::datafusion::logical_expr::LogicalPlan;
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        // A table is a scan, or (for tables read through a view, such as CSV's typed one) the
        // alias the view was inlined under; both carry the table's full name. Scans without a
        // catalog are a view's own inner reads (a lake table is always named in full).
        let name = match node {
            LogicalPlan::TableScan(scan) => &scan.table_name,
            LogicalPlan::SubqueryAlias(alias) => &alias.alias,
            _ => return Ok(TreeNodeRecursion::Continue),
        };
        if let (Some(domain), Some(layer)) = (name.catalog(), name.schema()) {
            let table = name.table();
            let base = table.rsplit_once("@v").map(|(b, _)| b).unwrap_or(table);
            if !(may.0)(domain, layer, base) {
                refused = Some(name.to_string());
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match refused {
        Some(table) => Err(QueryError::Denied(table)),
        None => Ok(()),
    }
}

/// Turns an engine message into a SQL error pointing at its place in the query.
fn locate(addresses: &[String], sql: &str, mut message: String) -> QueryError {
    // A backtrace the Delta kernel appends when `RUST_BACKTRACE` is set is for developers,
    // not for the answer: the cause before it is kept.
    if let Some(at) = message.find("\n   0: ") {
        message.truncate(at);
    }
    let mut message = message
        .trim_start_matches("SQL error: ")
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("Schema error: ")
        .trim_start_matches("External error: ")
        .to_string();
    // `ParserError("Expected: ..., found: x at Line: 1, Column: 5")` -> the sentence inside.
    if let Some(inner) = message
        .strip_prefix("ParserError(\"")
        .and_then(|m| m.strip_suffix("\")"))
    {
        message = format!("syntax error: {}", inner.replace("\\\"", "\""));
    }
    let (mut line, mut column) = (None, None);
    if let Some(i) = message.find("Line: ") {
        let rest = &message[i + 6..];
        line = rest.split(',').next().and_then(|n| n.trim().parse().ok());
        column = rest
            .split("Column: ")
            .nth(1)
            .and_then(|c| c.split(|ch: char| !ch.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok());
    }
    if let Some(p) = message.find(" at Line: ") {
        message.truncate(p);
    }
    let name = quoted(&message).or_else(|| {
        message.split("No field named ").nth(1).map(|rest| {
            rest.split(['.', '\n'])
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .to_string()
        })
    });
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        if line.is_none() {
            if let Some((l, c)) = find_in(sql, &name) {
                line = Some(l);
                column = Some(c);
            }
        }
        if message.contains("not found") {
            let best = addresses
                .iter()
                .map(|a| (strsim::jaro_winkler(&name, a), a))
                .filter(|(s, _)| *s > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match best {
                Some((_, a)) => message.push_str(&format!("; did you mean {a}?")),
                None => message.push_str("; run `tarn tables` to see what is catalogued"),
            }
        }
    }
    QueryError::Sql {
        message,
        query: sql.to_string(),
        line,
        column,
    }
}

/// The first name quoted with '...' or `...` in a message.
fn quoted(message: &str) -> Option<String> {
    for q in ['\'', '`'] {
        let mut parts = message.split(q);
        if let (Some(_), Some(name)) = (parts.next(), parts.next()) {
            if !name.is_empty() && parts.next().is_some() {
                return Some(name.to_string());
            }
        }
    }
    None
}

/// 1-based line and column of `needle` (or of its last dotted part) in `sql`, ignoring case.
fn find_in(sql: &str, needle: &str) -> Option<(usize, usize)> {
    let lower = sql.to_lowercase();
    let candidates = [
        needle.to_lowercase(),
        needle.rsplit('.').next().unwrap_or(needle).to_lowercase(),
    ];
    for n in candidates {
        if let Some(pos) = lower.find(&n) {
            let before = &sql[..pos];
            let line = before.matches('\n').count() + 1;
            let col = before
                .rsplit('\n')
                .next()
                .map(|s| s.chars().count())
                .unwrap_or(0)
                + 1;
            return Some((line, col));
        }
    }
    None
}

fn check_read_only(statement: &DFStatement) -> Result<(), QueryError> {
    match statement {
        DFStatement::Statement(s) => match s.as_ref() {
            Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::ExplainTable { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowVariable { .. } => Ok(()),
            other => {
                let kind = other.to_string();
                let word = kind
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                Err(QueryError::ReadOnly(word))
            }
        },
        DFStatement::Explain(_) => Ok(()),
        DFStatement::CreateExternalTable(_) => {
            Err(QueryError::ReadOnly("CREATE EXTERNAL TABLE".into()))
        }
        DFStatement::CopyTo(_) => Err(QueryError::ReadOnly("COPY".into())),
        _ => Err(QueryError::ReadOnly("this".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message with a backtrace appended (the Delta kernel's, under `RUST_BACKTRACE`) is
    /// answered with its cause alone.
    #[test]
    fn backtraces_never_reach_the_answer() {
        let message = "External error: Kernel error: Json error: Truncated record\n   0: with_backtrace\n             at src/error.rs:482:25\n   1: core::ops".to_string();
        let err = locate(&[], "SELECT 1", message).to_string();
        assert!(err.contains("Json error: Truncated record"), "{err}");
        assert!(
            !err.contains("with_backtrace") && !err.contains("   0: "),
            "{err}"
        );
    }

    /// `EXPLAIN` and `EXPLAIN ANALYZE` answer under a row limit (what the HTTP API always
    /// sets), as without one.
    #[tokio::test]
    async fn explanations_answer_under_a_row_limit() {
        let engine = Engine::new(Vec::new());
        for sql in ["EXPLAIN SELECT 1", "EXPLAIN ANALYZE SELECT 1"] {
            for row_limit in [None, Some(1000)] {
                let opts = QueryOptions {
                    row_limit,
                    ..Default::default()
                };
                let r = engine
                    .sql(sql, &opts)
                    .await
                    .unwrap_or_else(|e| panic!("{sql} with {row_limit:?}: {e}"));
                assert!(r.batches.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
            }
        }
    }

    /// A query past its timeout gives its slot back within one probe slice: every scan stops
    /// at its next batch once the query is cancelled, and a nested-loop join's probe side is
    /// checked again right below the join, so the next query of a one-slot engine answers
    /// instead of waiting for the first to run out. (With the check at the scans alone, the
    /// join went on through every slice the repartition above them had buffered, and the
    /// second query waited 14 s in a debug build.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_query_stops_and_frees_its_slot() {
        let limits = Arc::new(QueryLimits::new(1 << 20, 256, 10_000, 1 << 30, 1));
        let engine = Engine::with_limits(
            Vec::new(),
            Arc::default(),
            limits,
            tarn_tables::Stores::local(),
        );
        let slow = "SELECT count(*) FROM generate_series(1, 30000) a, generate_series(1, 30000) b WHERE a.value + b.value = 7";
        let explained = engine
            .sql(&format!("EXPLAIN {slow}"), &QueryOptions::default())
            .await
            .unwrap();
        let text = format!("{:?}", explained.batches);
        assert_eq!(text.matches("StopWhenCancelled").count(), 3, "{text}");
        for run in 0..2 {
            let opts = QueryOptions {
                timeout: Some(Duration::from_millis(300)),
                ..Default::default()
            };
            let err = engine.sql(slow, &opts).await.unwrap_err();
            assert!(matches!(err, QueryError::Timeout(_)), "run {run}: {err}");
            let quick = QueryOptions {
                timeout: Some(Duration::from_secs(10)),
                ..Default::default()
            };
            let r = engine.sql("SELECT 41 + 1 AS answer", &quick).await;
            assert_eq!(
                r.map(|r| r.rows()).map_err(|e| e.to_string()),
                Ok(1),
                "run {run}"
            );
        }
    }
}
