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
    /// The table's location and the version these rows are.
    pub location: String,
    pub version: i64,
    pub schema: SchemaRef,
    pub partitions: Vec<Vec<RecordBatch>>,
    /// The batches' statistics, partition after partition, batch after batch.
    stats: BatchStats,
    pub bytes: usize,
    /// Set when the cache lets these rows go: plans kept over them let go too.
    evicted: std::sync::atomic::AtomicBool,
}

impl CachedRows {
    /// `batches` of version `version` of the table at `location` (of `bytes` in memory),
    /// spread over `parts` partitions (one batch each in turn), with their statistics.
    pub fn new(
        (location, version): (&str, i64),
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        bytes: usize,
        parts: usize,
    ) -> CachedRows {
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts.max(1)];
        let n = partitions.len();
        for (i, b) in batches.into_iter().enumerate() {
            partitions[i % n].push(b);
        }
        let stats = BatchStats::of(&schema, partitions.iter().flatten());
        CachedRows {
            location: location.to_string(),
            version,
            schema,
            partitions,
            stats,
            bytes,
            evicted: Default::default(),
        }
    }

    pub(crate) fn evict(&self) {
        self.evicted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Per column, each batch's minimum and maximum (none for a column whose type has no
/// order; null for a batch of nulls only) and null count.
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

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Int64Array, ListArray, StringArray, StructArray};
    use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use deltalake::datafusion::prelude::SessionContext;

    /// Cached rows with nested columns (no order, so no minimum or maximum) still answer
    /// every filter, on them or beside them, as the same rows uncached do; and a filter on
    /// an ordered column beside them still skips batches.
    #[tokio::test]
    async fn nested_columns_answer_and_the_others_still_prune() {
        let inner = Arc::new(Field::new("b", DataType::Int64, true));
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("s", DataType::Struct(vec![inner.clone()].into()), true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                true,
            ),
            Field::new("t", DataType::Utf8, true),
        ]));
        let batches: Vec<RecordBatch> = (0..6)
            .map(|b| {
                let k: Vec<i64> = (b * 100..b * 100 + 100).collect();
                let s = StructArray::from(vec![(
                    inner.clone(),
                    Arc::new(Int64Array::from_iter(
                        k.iter().map(|v| (v % 7 != 0).then_some(v % 5)),
                    )) as ArrayRef,
                )]);
                let l = ListArray::from_iter_primitive::<Int64Type, _, _>(
                    k.iter().map(|v| Some(vec![Some(*v), None])),
                );
                let t =
                    StringArray::from_iter(k.iter().map(|v| (v % 3 != 0).then(|| format!("x{v}"))));
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from(k)),
                        Arc::new(s),
                        Arc::new(l),
                        Arc::new(t),
                    ],
                )
                .unwrap()
            })
            .collect();
        let cached = SessionContext::new();
        let bytes = batches.iter().map(|b| b.get_array_memory_size()).sum();
        let rows = Arc::new(CachedRows::new(
            ("file:///t", 0),
            schema.clone(),
            batches.clone(),
            bytes,
            2,
        ));
        cached
            .register_table("t", Arc::new(CachedTable(rows)))
            .unwrap();
        let plain = SessionContext::new();
        plain
            .register_table(
                "t",
                Arc::new(MemTable::try_new(schema, vec![batches]).unwrap()),
            )
            .unwrap();
        for filter in [
            "k BETWEEN 150 AND 249",
            "s['b'] = 3",
            "s IS NULL OR k < 10",
            "l[1] > 420",
            "array_length(l) = 2 AND k >= 500",
            "t > 'x5' AND k < 300",
            "t IS NULL",
        ] {
            let sql = format!("SELECT count(*), sum(k) FROM t WHERE {filter}");
            let answer = |ctx: &SessionContext| {
                let sql = sql.clone();
                let ctx = ctx.clone();
                async move {
                    let b = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                    deltalake::arrow::util::pretty::pretty_format_batches(&b)
                        .unwrap()
                        .to_string()
                }
            };
            assert_eq!(answer(&cached).await, answer(&plain).await, "{filter}");
        }
        let plan = cached
            .sql("EXPLAIN SELECT sum(k) FROM t WHERE k BETWEEN 150 AND 249")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let plan = deltalake::arrow::util::pretty::pretty_format_batches(&plan)
            .unwrap()
            .to_string();
        assert!(plan.contains("partition_sizes=[1, 1]"), "{plan}");
    }
}
