//! Plans kept for repeated query text. A dashboard, a monitor or a notebook cell asks the
//! same SQL again and again; parsing, planning and optimising it takes about 2 ms each time,
//! often more than running it over rows already in memory. An engine keeps the physical plans
//! of its last [`PLANS`] distinct texts (with their row limit) and runs one again, reset, when
//! every table it reads is still the version whose rows are cached (texts up to
//! [`PLAN_TEXT`] bytes): each table's log is asked for the commit after that version (one
//! look-up of a file), so a commit since, or rows dropped from the cache, plans the text
//! afresh. Plans over rows the cache has let go are dropped, so
//! kept plans hold no rows beyond the cache's budget.
//!
//! Kept only when running the plan again answers as planning it again would: every scan reads
//! cached rows (whose version is checked), no function depends on the time or on chance
//! (`now()`, `random()`: planning folds the time in), no operator keeps state that a reset
//! does not clear (dynamic filters pushed into a scan; operators outside the list in
//! [`resettable`], such as sort-merge and nested-loop joins; a hash join's reset builds its
//! joined side anew), and no `EXPLAIN`.

use crate::cached::{CachedRows, CachedTable};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::TableProvider;
use deltalake::datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use deltalake::datafusion::common::Result;
use deltalake::datafusion::datasource::source_as_provider;
use deltalake::datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use deltalake::datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use deltalake::datafusion::physical_plan::execution_plan::reset_plan_states;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Distinct query texts whose plans an engine keeps.
pub const PLANS: usize = 64;

/// The longest text whose plan is kept (longer ones are planned every time), so that kept
/// texts hold at most `PLANS` times this much memory.
pub const PLAN_TEXT: usize = 16 * 1024;

/// A plan kept for its text.
#[derive(Debug)]
pub(crate) struct CachedPlan {
    plan: Arc<dyn ExecutionPlan>,
    pub(crate) schema: SchemaRef,
    /// The statement's logical plan, for the read permission check of each caller.
    pub(crate) logical: LogicalPlan,
    /// The cached rows of each table the plan scans (each knows its table and version).
    scans: Vec<Arc<CachedRows>>,
}

impl CachedPlan {
    /// The plan of `logical` when it can be run again (see the module's documentation).
    pub(crate) fn new(
        logical: &LogicalPlan,
        plan: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
    ) -> Option<CachedPlan> {
        if matches!(logical, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)) {
            return None;
        }
        let mut scans = Vec::new();
        let mut keep = true;
        logical
            .apply_with_subqueries(|node| {
                if let LogicalPlan::TableScan(scan) = node {
                    let rows = source_as_provider(&scan.source).ok().and_then(|p| {
                        let p: &dyn TableProvider = p.as_ref();
                        p.downcast_ref::<CachedTable>().map(|t| t.0.clone())
                    });
                    match rows {
                        Some(rows) => scans.push(rows),
                        None => keep = false,
                    }
                }
                node.apply_expressions(|e| {
                    if e.exists(|e| Ok(!immutable(e)))? {
                        keep = false;
                    }
                    Ok(TreeNodeRecursion::Continue)
                })?;
                Ok(walk_on(keep))
            })
            .ok()?;
        if !keep || scans.is_empty() || !resettable(&plan) {
            return None;
        }
        Some(CachedPlan {
            plan,
            schema,
            logical: logical.clone(),
            scans,
        })
    }

    /// Whether every table the plan scans is still the cached version it was planned on: its
    /// rows are still cached, and its log holds no newer commit (one look-up of the next
    /// commit's file each; an engine's tables keep their locations for its whole life, since
    /// a changed catalog makes a new engine).
    pub(crate) async fn current(&self, stores: &tarn_tables::Stores) -> bool {
        if self.stale() {
            return false;
        }
        for rows in &self.scans {
            if tarn_tables::committed_after(stores, &rows.location, rows.version).await {
                return false;
            }
        }
        true
    }

    /// Whether rows it scans have left the row cache: the plan is let go with them, so that
    /// kept plans never hold more rows than the cache's budget.
    fn stale(&self) -> bool {
        self.scans.iter().any(|rows| rows.is_evicted())
    }

    /// The plan, its operators' state reset, ready to run.
    pub(crate) fn fresh(&self) -> Result<Arc<dyn ExecutionPlan>> {
        reset_plan_states(self.plan.clone())
    }
}

/// Walks on while the plan can still be kept.
fn walk_on(keep: bool) -> TreeNodeRecursion {
    if keep {
        TreeNodeRecursion::Continue
    } else {
        TreeNodeRecursion::Stop
    }
}

/// Whether `e` answers the same every time on the same rows.
fn immutable(e: &Expr) -> bool {
    match e {
        Expr::ScalarFunction(f) => f.func.signature().volatility == Volatility::Immutable,
        Expr::AggregateFunction(f) => f.func.signature().volatility == Volatility::Immutable,
        _ => true,
    }
}

/// Whether every operator of `plan` is one that runs again as new once reset, and none but
/// a sort or a hash join holds a dynamic filter (a scan given one by a join or a top-N sort
/// would keep the last run's; cached rows' scans take none, so the filter is the sort's or
/// the join's own, which their resets make anew or drop).
fn resettable(plan: &Arc<dyn ExecutionPlan>) -> bool {
    const OPERATORS: [&str; 20] = [
        "ProjectionExec",
        // Its reset forgets the built side and its dynamic filter (a scan handed that filter
        // is refused below).
        "HashJoinExec",
        "FilterExec",
        "AggregateExec",
        "SmallGroupsExec",
        "RepartitionExec",
        "CoalesceBatchesExec",
        "CoalescePartitionsExec",
        "SortExec",
        "SortExec(TopK)",
        "SortPreservingMergeExec",
        "BoundedWindowAggExec",
        "WindowAggExec",
        "GlobalLimitExec",
        "LocalLimitExec",
        "UnionExec",
        "DataSourceExec",
        "StopWhenCancelled",
        "EmptyExec",
        "PlaceholderRowExec",
    ];
    let mut ok = true;
    let _ = plan.apply(|node| {
        if !OPERATORS.contains(&node.name()) {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        // A top-N sort makes a dynamic filter of its own, which its reset makes anew; a hash
        // join's reset drops its own (the scans below it are still looked at).
        if node.name().starts_with("SortExec") || node.name() == "HashJoinExec" {
            return Ok(TreeNodeRecursion::Continue);
        }
        node.apply_expressions(&mut |e| {
            if e.exists(|e| Ok(e.is::<DynamicFilterPhysicalExpr>()))? {
                ok = false;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(walk_on(ok))
    });
    ok
}

/// A plan kept for a text and a row limit.
type Entry = (String, Option<usize>, Arc<CachedPlan>);

/// The last [`PLANS`] plans kept, most recently used first.
#[derive(Debug, Default)]
pub(crate) struct PlanCache(Mutex<VecDeque<Entry>>);

impl PlanCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plan kept for `sql` with `row_limit`, if any.
    pub(crate) fn get(&self, sql: &str, row_limit: Option<usize>) -> Option<Arc<CachedPlan>> {
        let mut plans = self.lock();
        plans.retain(|(_, _, p)| !p.stale());
        let at = plans
            .iter()
            .position(|(s, l, _)| s == sql && *l == row_limit)?;
        let entry = plans.remove(at)?;
        let plan = entry.2.clone();
        plans.push_front(entry);
        Some(plan)
    }

    /// Keeps `plan` for `sql` with `row_limit`, in place of an older one for the same text.
    pub(crate) fn put(&self, sql: &str, row_limit: Option<usize>, plan: CachedPlan) {
        if sql.len() > PLAN_TEXT {
            return;
        }
        let mut plans = self.lock();
        plans.retain(|(s, l, p)| !(p.stale() || (s == sql && *l == row_limit)));
        plans.push_front((sql.to_string(), row_limit, Arc::new(plan)));
        plans.truncate(PLANS);
    }

    /// Drops a plan that no longer answers for its text.
    pub(crate) fn forget(&self, sql: &str, row_limit: Option<usize>) {
        self.lock()
            .retain(|(s, l, _)| !(s == sql && *l == row_limit));
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
