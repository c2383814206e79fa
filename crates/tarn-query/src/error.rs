//! The one error type of the query crate. SQL errors carry the position they point at.

/// What can go wrong with a query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query itself is wrong; `line`/`column` point into it (1-based) when known.
    #[error("{}", render(message, query, *line, *column))]
    Sql {
        message: String,
        query: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// The query reads a table its caller may not read.
    #[error("the query reads {0}, which this caller may not read: none of its token's policies grants read on it")]
    Denied(String),
    #[error("queries are read-only: {0} statements are refused; use --into DOMAIN.service.TABLE to materialise a SELECT")]
    ReadOnly(String),
    #[error("the query ran longer than its timeout of {} and was stopped; narrow it (a WHERE, a LIMIT) or give it more time (--timeout, timeout_ms, limits.query_timeout)", seconds(.0))]
    Timeout(std::time::Duration),
    /// The query is past one of the lake's `limits:`.
    #[error("the query {what}, over the limit of {max} (limits.{limit} in tarn.yml); simplify it or raise the limit")]
    Limit {
        what: String,
        limit: &'static str,
        max: usize,
    },
    /// The query needed more memory than one query may hold, and could not spill.
    #[error("the query needs more than {limit_mb} MB of memory (limits.query_memory in tarn.yml); filter or aggregate earlier, or raise the limit")]
    Memory { limit_mb: u64 },
    #[error(transparent)]
    Tables(#[from] tarn_tables::TablesError),
    #[error("query engine: {0}")]
    Engine(#[from] deltalake::datafusion::error::DataFusionError),
    #[error("cannot write results: {0}")]
    Output(String),
}

fn seconds(d: &std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn render(message: &str, query: &str, line: Option<usize>, column: Option<usize>) -> String {
    let (Some(l), Some(c)) = (line, column) else {
        return message.to_string();
    };
    let text = query.lines().nth(l - 1).unwrap_or("");
    format!(
        "{message} (line {l}, column {c})\n  {text}\n  {}^",
        " ".repeat(c.saturating_sub(1))
    )
}
