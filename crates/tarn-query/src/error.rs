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
    #[error("queries are read-only: {0} statements are refused; use --into DOMAIN.service.TABLE to materialise a SELECT")]
    ReadOnly(String),
    #[error("the query ran longer than {0} seconds and was stopped")]
    Timeout(u64),
    #[error(transparent)]
    Tables(#[from] tarn_tables::TablesError),
    #[error("query engine: {0}")]
    Engine(#[from] deltalake::datafusion::error::DataFusionError),
    #[error("cannot write results: {0}")]
    Output(String),
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
