//! Scans of a table version's cached rows that skip the batches a query's filters rule out.
//! Each cached batch keeps its columns' minimum, maximum and null count; a scan gives the
//! query's filters and those statistics to DataFusion's `PruningPredicate`, and reads only
//! the batches that may hold a matching row. Tables are usually written in the order their
//! rows arrived (by date, say), so a filter on such a column reads a fraction of the rows, as
//! row-group statistics let a Parquet reader do. The filters still run on the rows read: a
//! batch is only skipped when its statistics prove no row of it matches.

use async_trait::async_trait;
use deltalake::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::{MemTable, Session, TableProvider};
use deltalake::datafusion::common::pruning::PruningStatistics;
use deltalake::datafusion::common::{Column, DFSchema, ScalarValue};
use deltalake::datafusion::error::Result;
use deltalake::datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use deltalake::datafusion::logical_expr::utils::conjunction;
use deltalake::datafusion::logical_expr::{
    Accumulator, Expr, TableProviderFilterPushDown, TableType,
};
use deltalake::datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use std::collections::HashSet;
use std::sync::Arc;

/// Rows of one table version, split for parallel scans, with each batch's statistics.
#[derive(Debug)]
pub(crate) struct CachedRows {
    pub schema: SchemaRef,
    pub partitions: Vec<Vec<RecordBatch>>,
    /// The batches' statistics, partition after partition, batch after batch.
    stats: BatchStats,
    pub bytes: usize,
}

impl CachedRows {
    /// `batches` spread over `parts` partitions (one batch each in turn), with their
    /// statistics.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>, parts: usize) -> CachedRows {
        let bytes = batches.iter().map(|b| b.get_array_memory_size()).sum();
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts.max(1)];
        let n = partitions.len();
        for (i, b) in batches.into_iter().enumerate() {
            partitions[i % n].push(b);
        }
        let stats = BatchStats::of(&schema, partitions.iter().flatten());
        CachedRows {
            schema,
            partitions,
            stats,
            bytes,
        }
    }
}

/// Per column, each batch's minimum and maximum (null where unknown: a column of a type
/// without an order, or of nulls only) and null count.
#[derive(Debug)]
struct BatchStats {
    mins: Vec<Option<ArrayRef>>,
    maxes: Vec<Option<ArrayRef>>,
    nulls: Vec<ArrayRef>,
    rows: ArrayRef,
    schema: SchemaRef,
}

impl BatchStats {
    fn of<'a>(
        schema: &SchemaRef,
        batches: impl Iterator<Item = &'a RecordBatch> + Clone,
    ) -> BatchStats {
        let fields = schema.fields();
        let bound = |c: usize, min: bool| -> Option<ArrayRef> {
            let values: Option<Vec<ScalarValue>> = batches
                .clone()
                .map(|b| {
                    let t = fields[c].data_type();
                    let mut acc: Box<dyn Accumulator> = if min {
                        Box::new(MinAccumulator::try_new(t).ok()?)
                    } else {
                        Box::new(MaxAccumulator::try_new(t).ok()?)
                    };
                    acc.update_batch(&[b.column(c).clone()]).ok()?;
                    acc.evaluate().ok()
                })
                .collect();
            ScalarValue::iter_to_array(values?).ok()
        };
        BatchStats {
            mins: (0..fields.len()).map(|c| bound(c, true)).collect(),
            maxes: (0..fields.len()).map(|c| bound(c, false)).collect(),
            nulls: (0..fields.len())
                .map(|c| {
                    Arc::new(UInt64Array::from_iter_values(
                        batches.clone().map(|b| b.column(c).null_count() as u64),
                    )) as ArrayRef
                })
                .collect(),
            rows: Arc::new(UInt64Array::from_iter_values(
                batches.map(|b| b.num_rows() as u64),
            )),
            schema: schema.clone(),
        }
    }

    fn index(&self, column: &Column) -> Option<usize> {
        self.schema.index_of(&column.name).ok()
    }
}

impl PruningStatistics for BatchStats {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.mins.get(self.index(column)?)?.clone()
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.maxes.get(self.index(column)?)?.clone()
    }

    fn num_containers(&self) -> usize {
        self.rows.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        self.nulls.get(self.index(column)?).cloned()
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(self.rows.clone())
    }

    fn contained(&self, _: &Column, _: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// A table version read from its cached rows.
#[derive(Debug)]
pub(crate) struct CachedTable(pub Arc<CachedRows>);

impl CachedTable {
    /// Which batches (partition after partition) may hold a row passing `filters`: all of
    /// them when the filters say nothing about the statistics or cannot be planned.
    fn may_match(&self, state: &dyn Session, filters: &[Expr]) -> Option<Vec<bool>> {
        let rows = &self.0;
        let expr = conjunction(filters.iter().cloned())?;
        let schema = DFSchema::try_from(rows.schema.as_ref().clone()).ok()?;
        let physical = state.create_physical_expr(expr, &schema).ok()?;
        PruningPredicateBuilder::new()
            .with_file_schema(rows.schema.clone())
            .build(physical)?
            .prune(&rows.stats)
            .ok()
    }
}

#[async_trait]
impl TableProvider for CachedTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: the filters only choose batches, and still run on their rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = &self.0;
        let partitions = match self.may_match(state, filters) {
            Some(keep) => {
                let mut keep = keep.into_iter();
                rows.partitions
                    .iter()
                    .map(|p| {
                        p.iter()
                            .filter(|_| keep.next().unwrap_or(true))
                            .cloned()
                            .collect()
                    })
                    .collect()
            }
            None => rows.partitions.clone(),
        };
        MemTable::try_new(rows.schema.clone(), partitions)?
            .scan(state, projection, &[], limit)
            .await
    }
}
