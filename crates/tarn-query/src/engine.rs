//! Running SQL over the catalog: read-only checks, timeouts, and errors that point at the
//! place in the query.

use crate::cache::QueryCache;
use crate::schema::{quote_versions, LayerSchema};
use crate::QueryError;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use deltalake::datafusion::execution::context::SessionContext;
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
    /// Stop the query after this long.
    pub timeout: Option<Duration>,
    /// Return at most this many rows (the rest are not computed).
    pub row_limit: Option<usize>,
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
    addresses: Vec<String>,
}

impl Engine {
    /// An engine that sees `tables`.
    pub fn new(tables: Vec<Visible>) -> Self {
        Self::with_cache(tables, Arc::new(QueryCache::default()))
    }

    /// An engine that sees `tables` and shares `cache` with other engines of the process.
    pub fn with_cache(tables: Vec<Visible>, cache: Arc<QueryCache>) -> Self {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            );
        let ctx = SessionContext::new_with_config(config);
        for (url, store) in tarn_tables::registered_stores() {
            ctx.register_object_store(&url, store);
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
                    }),
                )
                .expect("memory catalog accepts schemas");
        }
        for (domain, catalog) in catalogs {
            ctx.register_catalog(domain, catalog);
        }
        Engine { ctx, addresses }
    }

    /// The plan of one read-only statement.
    async fn plan(
        &self,
        sql: &str,
    ) -> Result<deltalake::datafusion::dataframe::DataFrame, QueryError> {
        let rewritten = quote_versions(sql);
        let state = self.ctx.state();
        let statement = state
            .sql_to_statement(
                &rewritten,
                &deltalake::datafusion::common::config::Dialect::Generic,
            )
            .map_err(|e| self.locate(sql, e.to_string()))?;
        check_read_only(&statement)?;
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| self.locate(sql, e.to_string()))?;
        Ok(self.ctx.execute_logical_plan(plan).await?)
    }

    /// Runs one read-only statement and streams its rows batch by batch (memory stays bounded
    /// whatever the result's size).
    pub async fn sql_stream(&self, sql: &str) -> Result<(SchemaRef, BatchStream), QueryError> {
        use futures::StreamExt;
        let df = self.plan(sql).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await?;
        let sql = sql.to_string();
        Ok((
            schema,
            stream
                .map(move |r| r.map_err(|e| QueryError::Output(format!("{e} (in `{sql}`)"))))
                .boxed(),
        ))
    }

    /// Runs one read-only statement.
    pub async fn sql(&self, sql: &str, opts: &QueryOptions) -> Result<QueryResult, QueryError> {
        let mut df = self.plan(sql).await?;
        if let Some(limit) = opts.row_limit {
            df = df.limit(0, Some(limit + 1))?;
        }
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let run = df.collect();
        let mut batches = match opts.timeout {
            Some(t) => tokio::time::timeout(t, run)
                .await
                .map_err(|_| QueryError::Timeout(t.as_secs()))?,
            None => run.await,
        }
        .map_err(|e| self.locate(sql, e.to_string()))?;
        let mut truncated = false;
        if let Some(limit) = opts.row_limit {
            let total: usize = batches.iter().map(|b| b.num_rows()).sum();
            if total > limit {
                truncated = true;
                let mut left = limit;
                batches = batches
                    .into_iter()
                    .filter_map(|b| {
                        let take = b.num_rows().min(left);
                        left -= take;
                        (take > 0).then(|| b.slice(0, take))
                    })
                    .collect();
            }
        }
        Ok(QueryResult {
            schema,
            batches,
            truncated,
        })
    }

    /// Turns an engine message into a SQL error pointing at its place in the query.
    fn locate(&self, sql: &str, message: String) -> QueryError {
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
        let position = message.find(" at Line: ");
        let located = line.is_some();
        if let Some(p) = position {
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
            let _ = located;
            if line.is_none() {
                if let Some((l, c)) = find_in(sql, &name) {
                    line = Some(l);
                    column = Some(c);
                }
            }
            if message.contains("not found") {
                let best = self
                    .addresses
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
