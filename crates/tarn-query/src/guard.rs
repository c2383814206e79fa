//! Limits on one query, checked before DataFusion plans it: the SQL text's length, the
//! deepest expression (`1+1+...+1` nests one level per operator, and planning, optimising and
//! even dropping such a tree recurse once per level), and the longest `IN` list. Past a limit
//! the query is refused with an error naming the limit, never a stack overflow.

use crate::QueryError;
use deltalake::datafusion::sql::parser::Statement as DFStatement;
use deltalake::datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What one query may be and use; shared by every engine of a lake.
#[derive(Debug)]
pub struct QueryLimits {
    /// Longest SQL text, in bytes.
    pub sql_length: usize,
    /// Deepest nesting of one expression.
    pub sql_depth: usize,
    /// Most values in one `IN (...)` list.
    pub sql_in_list: usize,
    /// Memory one query may hold for sorts, joins and aggregations (it spills past it where
    /// it can, and stops with [`QueryError::Memory`] where it cannot).
    pub memory: u64,
    /// One permit per query that may run at once.
    pub(crate) slots: Arc<Semaphore>,
}

impl QueryLimits {
    pub fn new(
        sql_length: usize,
        sql_depth: usize,
        sql_in_list: usize,
        memory: u64,
        concurrency: usize,
    ) -> Self {
        QueryLimits {
            sql_length,
            sql_depth,
            sql_in_list,
            memory,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits::new(
            1024 * 1024,
            256,
            10_000,
            2 * 1024 * 1024 * 1024,
            crate::pool::parallelism(),
        )
    }
}

/// Refuses SQL text longer than the limit (before it is parsed).
pub(crate) fn check_text(sql: &str, limits: &QueryLimits) -> Result<(), QueryError> {
    if sql.len() > limits.sql_length {
        return Err(QueryError::Limit {
            what: format!("text is {} bytes long", sql.len()),
            limit: "sql_length",
            max: limits.sql_length,
        });
    }
    Ok(())
}

/// Refuses a parsed statement whose expressions nest deeper, or whose `IN` lists are longer,
/// than the limits. The walk stops at the first level past the limit, so it never recurses
/// deeper than the limit itself.
pub(crate) fn check_statement(
    statement: &DFStatement,
    limits: &QueryLimits,
) -> Result<(), QueryError> {
    let DFStatement::Statement(s) = statement else {
        return Ok(());
    };
    let mut walk = Depth {
        depth: 0,
        limits,
        found: None,
    };
    let _ = s.visit(&mut walk);
    match walk.found {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct Depth<'a> {
    depth: usize,
    limits: &'a QueryLimits,
    found: Option<QueryError>,
}

impl Visitor for Depth<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > self.limits.sql_depth {
            self.found = Some(QueryError::Limit {
                what: format!(
                    "nests expressions deeper than {} levels",
                    self.limits.sql_depth
                ),
                limit: "sql_depth",
                max: self.limits.sql_depth,
            });
            return ControlFlow::Break(());
        }
        if let Expr::InList { list, .. } = expr {
            if list.len() > self.limits.sql_in_list {
                self.found = Some(QueryError::Limit {
                    what: format!("has an IN list of {} values", list.len()),
                    limit: "sql_in_list",
                    max: self.limits.sql_in_list,
                });
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}
