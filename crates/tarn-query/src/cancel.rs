//! Stopping a query that is past its time. Aborting a task only takes effect when it yields,
//! and some operators (a nested-loop join probing every buffered row) run for seconds inside
//! one poll. So every scan of a query's plan is wrapped: once the query is cancelled, the next
//! batch any scan is asked for is an error, and the operators above it stop at the next batch
//! they fetch instead of running to the end of their input. The probe side of a nested-loop
//! join is fed in small batches, so that one batch (probed against every buffered row) is
//! short work, and a cancelled join stops within it.

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::common::config::ConfigOptions;
use deltalake::datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use deltalake::datafusion::common::{DataFusionError, Result};
use deltalake::datafusion::execution::TaskContext;
use deltalake::datafusion::physical_expr::PhysicalExpr;
use deltalake::datafusion::physical_optimizer::PhysicalOptimizerRule;
use deltalake::datafusion::physical_plan::joins::NestedLoopJoinExec;
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set once when the query's caller stops waiting.
#[derive(Debug, Default)]
pub(crate) struct Cancelled(AtomicBool);

impl Cancelled {
    pub(crate) fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The physical optimizer rule (run last) that wraps every leaf of a plan.
#[derive(Debug)]
pub(crate) struct WrapScans;

impl PhysicalOptimizerRule for WrapScans {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.children().is_empty() {
                return Ok(Transformed::yes(Arc::new(StopWhenCancelled {
                    input: node,
                    slice: None,
                })
                    as Arc<dyn ExecutionPlan>));
            }
            if node.downcast_ref::<NestedLoopJoinExec>().is_some() {
                let children: Vec<Arc<dyn ExecutionPlan>> =
                    node.children().into_iter().cloned().collect();
                if children.len() == 2 {
                    let probe = children[1].clone().transform_up(|n| {
                        match n.downcast_ref::<StopWhenCancelled>() {
                            Some(s) => Ok(Transformed::yes(Arc::new(StopWhenCancelled {
                                input: s.input.clone(),
                                slice: Some(PROBE_ROWS),
                            })
                                as Arc<dyn ExecutionPlan>)),
                            None => Ok(Transformed::no(n)),
                        }
                    })?;
                    // And cut again right below the join: a repartition between the scans and
                    // the join buffers slices ahead of it, and once the query is cancelled the
                    // join must stop at its next slice, not drain what was buffered.
                    let probe: Arc<dyn ExecutionPlan> = Arc::new(StopWhenCancelled {
                        input: probe.data,
                        slice: Some(PROBE_ROWS),
                    });
                    #[allow(deprecated)]
                    let joined = node.with_new_children(vec![children[0].clone(), probe])?;
                    return Ok(Transformed::yes(joined));
                }
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "tarn_stop_when_cancelled"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Rows per batch on the probe side of a nested-loop join.
const PROBE_ROWS: usize = 256;

/// A scan that answers an error instead of its next batch once the query is cancelled (and
/// cuts its batches to `slice` rows when it feeds a join's probe side).
#[derive(Debug)]
struct StopWhenCancelled {
    input: Arc<dyn ExecutionPlan>,
    slice: Option<usize>,
}

impl DisplayAs for StopWhenCancelled {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "StopWhenCancelled")
    }
}

impl ExecutionPlan for StopWhenCancelled {
    fn name(&self) -> &str {
        "StopWhenCancelled"
    }

    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "StopWhenCancelled has one child".into(),
            ));
        }
        Ok(Arc::new(StopWhenCancelled {
            input: children.swap_remove(0),
            slice: self.slice,
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.input.schema();
        // The query's flag is in its context, not in the plan: a plan kept for repeated
        // text stops with the query that runs it.
        let flag: Arc<Cancelled> = context
            .session_config()
            .get_extension::<Cancelled>()
            .unwrap_or_default();
        let inner = self.input.execute(partition, context)?;
        let slice = self.slice;
        // Each batch (cut to `slice` rows for a probe side) is let through only while the
        // query is not cancelled.
        let stream = inner
            .flat_map(move |batch| {
                let parts: Vec<Result<RecordBatch>> = match (batch, slice) {
                    (Ok(b), Some(n)) if b.num_rows() > n => (0..b.num_rows())
                        .step_by(n)
                        .map(|at| Ok(b.slice(at, n.min(b.num_rows() - at))))
                        .collect(),
                    (other, _) => vec![other],
                };
                futures::stream::iter(parts)
            })
            .map(move |part| {
                if flag.is_set() {
                    Err(DataFusionError::Execution(
                        "the query was cancelled".to_string(),
                    ))
                } else {
                    part
                }
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
